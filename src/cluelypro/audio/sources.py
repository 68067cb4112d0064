"""Where the pipeline's audio comes from: a file replayed, or a microphone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing

import numpy as np
import soxr

from cluelypro.audio.devices import open_input_stream
from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE
from cluelypro.metrics.timeline import Clock

log = logging.getLogger(__name__)


async def replay_file(blocks: Iterable[np.ndarray], clock: Clock) -> AsyncIterator[np.ndarray]:
    """Yield 16 kHz blocks — a file streamed by `audio.io.stream_audio`, or `audio.io.in_blocks` of
    samples in memory: in real time (each block when its last sample 'arrives'), or with
    `clock.fast` as fast as the pipeline takes them."""
    clock.restart()
    position = 0
    for block in blocks:
        position += len(block)
        if clock.fast:
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(max(0.0, position / SAMPLE_RATE - clock.input_now()))
        yield block


async def capture_microphone(clock: Clock, device: str | int | None = None, max_backlog_s: float = 10.0) -> AsyncIterator[np.ndarray]:
    """Yield 16 kHz blocks from a microphone until cancelled.

    The device callback only hands blocks to the event loop; if the pipeline ever falls
    `max_backlog_s` behind, the oldest audio is dropped with a warning instead of blocking capture.
    """
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[np.ndarray] = asyncio.Queue()
    max_blocks = int(max_backlog_s * SAMPLE_RATE / BLOCK_SAMPLES)

    def deliver(block: np.ndarray) -> None:
        if blocks.qsize() >= max_blocks:
            blocks.get_nowait()
            log.warning("audio capture is %.0f s ahead of processing; dropping old audio", max_backlog_s)
        blocks.put_nowait(block)

    def on_audio(indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        loop.call_soon_threadsafe(deliver, indata[:, 0].copy())

    stream, rate = open_input_stream(device, on_audio)
    resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
    with stream:
        block = await blocks.get()
        # Input time starts with the first sample heard, not when the stream was opened: a device
        # waking from suspend can take seconds to deliver, and that must not count as latency.
        clock.restart(already_elapsed=len(block) / rate)
        while True:
            yield resampler.resample_chunk(block) if resampler else block
            block = await blocks.get()


async def record_microphone(seconds: float, device: str | int | None = None, on_progress=None) -> np.ndarray:
    """Record `seconds` of 16 kHz audio from a microphone (for enrolment)."""
    blocks, total, wanted = [], 0, round(seconds * SAMPLE_RATE)
    async with aclosing(capture_microphone(Clock(), device)) as microphone:
        async for block in microphone:
            blocks.append(block)
            total += len(block)
            if on_progress:
                on_progress(min(total, wanted), wanted)
            if total >= wanted:
                break
    return np.concatenate(blocks)[:wanted]
