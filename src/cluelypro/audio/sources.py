"""Where the pipeline's audio comes from: a file replayed, or a microphone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from typing import TypeVar

import numpy as np

from cluelypro.audio.aligned import Resampler
from cluelypro.audio.devices import CHECK_EVERY_S, DeviceCallback, DeviceError, WatchedStream, open_input_stream
from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE
from cluelypro.metrics.timeline import Clock

log = logging.getLogger(__name__)


async def replay_file(blocks: Iterable[np.ndarray], clock: Clock) -> AsyncGenerator[np.ndarray, None]:
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


async def capture_microphone(
    clock: Clock,
    device: str | int | None = None,
    max_backlog_s: float = 10.0,
    *,
    on_device: DeviceCallback,
    named: Callable[[str], None] | None = None,
) -> AsyncGenerator[np.ndarray, None]:
    """Yield 16 kHz blocks from a microphone until cancelled.

    The device callback only hands blocks to the event loop; if the pipeline ever falls
    `max_backlog_s` behind, the oldest audio is dropped with a warning instead of blocking capture.
    A lost microphone is told to `on_device` and reopened (WatchedStream). Meanwhile silence is
    yielded, so input time (the samples yielded) keeps running with the clock: the segmenter
    ends an utterance the loss cut off, and what it stamps stays on the clock's timeline.
    `named` is told the device's name once it is open (a dashboard shows it).
    """
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[tuple[np.ndarray, int]] = asyncio.Queue()
    max_blocks = int(max_backlog_s * SAMPLE_RATE / BLOCK_SAMPLES)

    def deliver(block: tuple[np.ndarray, int]) -> None:
        if blocks.qsize() >= max_blocks:
            blocks.get_nowait()
            log.warning("audio capture is %.0f s ahead of processing; dropping old audio", max_backlog_s)
        blocks.put_nowait(block)

    def on_audio(indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        loop.call_soon_threadsafe(deliver, (indata[:, 0].copy(), microphone.samplerate))

    microphone = WatchedStream("input", open_input_stream, on_audio, on_device)
    microphone.open(device)
    if named is not None:
        named(microphone.name)
    to_16k = Resampler()
    yielded, in_gap = 0, False  # samples yielded (16 kHz); silence is standing in for the microphone
    clock.restart()
    try:
        microphone.start()
        while True:
            block = await _next_block(blocks)
            microphone.check()
            if block is None:
                if not microphone.flowing:
                    gap, in_gap = _silence_until_now(clock, yielded), True
                    yielded += len(gap)
                    yield gap
                continue
            audio = to_16k(*block)
            if not yielded:
                # Input time starts with the first sample heard, not when the stream was opened: a
                # device waking from suspend can take seconds to deliver, and that must not count.
                clock.restart(already_elapsed=len(audio) / SAMPLE_RATE)
            elif in_gap:  # the microphone is back: the rest of the gap, then its audio
                gap, in_gap = _silence_until_now(clock, yielded + len(audio)), False
                yielded += len(gap)
                yield gap
            yielded += len(audio)
            yield audio
    finally:
        microphone.close()


async def _next_block(blocks: asyncio.Queue[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int] | None:
    """The next block and its rate, or None after CHECK_EVERY_S without one."""
    return await get_within(blocks, CHECK_EVERY_S)


T = TypeVar("T")


async def get_within(queue: asyncio.Queue[T], seconds: float) -> T | None:
    """The next item of `queue`, or None after `seconds`. Unlike asyncio.wait_for on Python 3.11,
    a cancellation that comes as the item does is never swallowed (a task cancelled then would
    go on, and whoever awaits its end would wait for ever); nothing is lost on a time-out."""
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter}, timeout=seconds)
    finally:
        if not getter.done():
            getter.cancel()  # Queue.get leaves the item in the queue when cancelled
    return getter.result() if getter.done() and not getter.cancelled() else None


def _silence_until_now(clock: Clock, samples_so_far: int) -> np.ndarray:
    return np.zeros(max(0, round(clock.input_now() * SAMPLE_RATE) - samples_so_far), dtype=np.float32)


async def record_microphone(seconds: float, device: str | int | None = None, on_progress=None) -> np.ndarray:
    """Record `seconds` of 16 kHz audio from a microphone (for enrolment); a lost microphone
    ends the recording with a DeviceError."""
    blocks, total, wanted = [], 0, round(seconds * SAMPLE_RATE)
    async with aclosing(capture_microphone(Clock(), device, on_device=_fail_when_lost)) as microphone:
        async for block in microphone:
            blocks.append(block)
            total += len(block)
            if on_progress:
                on_progress(min(total, wanted), wanted)
            if total >= wanted:
                break
    return np.concatenate(blocks)[:wanted]


def _fail_when_lost(which: str, state: str, name: str) -> None:
    if state == "lost":
        raise DeviceError(f'the microphone "{name}" was lost while recording; plug it in and enrol again')
