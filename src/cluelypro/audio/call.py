"""Call mode's two sources on one clock: the user's microphone and the system output (the other
side of the call), each handed on as 16 kHz blocks kept within DRIFT_BOUND_S of the clock
(audio/aligned.py) — so the two segmenters that cut them stamp one timeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

import numpy as np

from cluelypro.audio.aligned import LATE_WINDOW_S, AlignedSource
from cluelypro.audio.devices import CHECK_EVERY_S, DeviceCallback, WatchedStream, open_input_stream
from cluelypro.audio.loopback import LoopbackStream, SystemDevice
from cluelypro.audio.process_tap import ProcessTapStream
from cluelypro.audio.sources import get_within
from cluelypro.metrics.timeline import Clock

log = logging.getLogger(__name__)

MAX_BACKLOG_BLOCKS = 500  # 10–16 s of blocks waiting for the pipeline: then its oldest are dropped


class Watched(Protocol):
    name: str

    @property
    def flowing(self) -> bool: ...

    def start(self) -> None: ...

    def check(self) -> None: ...

    def close(self) -> None: ...


Block = tuple[np.ndarray, int, float]  # samples, rate, arrival (time.monotonic())


class CallSources:
    """The microphone and the system output, opened now (a missing device is a DeviceError) and
    started together when the first of `microphone()` and `system()` is iterated; each yields its
    source's aligned 16 kHz blocks until cancelled. `close()` when done."""

    def __init__(
        self, clock: Clock, microphone_device: str | int | None, system: SystemDevice, on_device: DeviceCallback
    ) -> None:
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mic_blocks: asyncio.Queue[Block] = asyncio.Queue()
        self._system_blocks: asyncio.Queue[Block] = asyncio.Queue()
        self._microphone = WatchedStream("input", open_input_stream, self._on_microphone, on_device)
        self._microphone.open(microphone_device)
        self._system: Watched
        if system.kind == "loopback":
            self._system = LoopbackStream(system, self._deliver_to(self._system_blocks), on_device)
        elif system.kind == "tap":  # macOS 14.2+: a Core Audio process tap
            self._system = ProcessTapStream(system, self._deliver_to(self._system_blocks), on_device)
        else:  # macOS: a virtual input device carries the call
            as_system = _renamed(on_device, "input", "system")
            self._system = WatchedStream("input", open_input_stream, self._on_virtual_device, as_system)
            self._system.open(system.name)
        self._started = False

    @property
    def names(self) -> tuple[str, str]:
        return self._microphone.name, self._system.name

    def _start(self) -> None:
        """Both streams run from now; input time 0 is now (what a stream delivers later is padded)."""
        self._loop = asyncio.get_running_loop()
        self._started = True
        self._microphone.start()
        self._system.start()
        self.clock.restart()

    def close(self) -> None:
        self._microphone.close()
        self._system.close()

    def microphone(self) -> AsyncGenerator[np.ndarray, None]:
        return self._aligned(self._mic_blocks, self._microphone)

    def system(self) -> AsyncGenerator[np.ndarray, None]:
        return self._aligned(self._system_blocks, self._system)

    async def _aligned(self, blocks: asyncio.Queue[Block], stream: Watched) -> AsyncGenerator[np.ndarray, None]:
        """The source's blocks on the clock; silence while it delivers nothing (see AlignedSource).
        The stream is closed with the generator (a dashboard switching routes closes its source)."""
        if not self._started:
            self._start()
        aligned, last_block = AlignedSource(), time.monotonic()
        try:
            while True:
                item = await get_within(blocks, CHECK_EVERY_S)
                stream.check()
                if item is None:
                    if time.monotonic() - last_block >= LATE_WINDOW_S:
                        silence = aligned.silence_until(self.clock.input_now())
                        if len(silence):
                            yield silence
                    continue
                block, rate, arrived = item
                last_block = arrived
                audio = aligned.take(block, rate, self.clock.input_now() - (time.monotonic() - arrived))
                if len(audio):
                    yield audio
        finally:
            stream.close()

    # --- capture threads -> event loop ----------------------------------------------------------

    def _deliver_to(self, blocks: asyncio.Queue[Block]) -> Callable[[np.ndarray, int, float], None]:
        def deliver(block: np.ndarray, rate: int, arrived: float) -> None:
            self._hand_to_loop(blocks, (block, rate, arrived))

        return deliver

    def _on_microphone(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        block = (indata[:, 0].copy(), self._microphone.samplerate, time.monotonic())
        self._hand_to_loop(self._mic_blocks, block)

    def _on_virtual_device(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        rate = self._system.samplerate  # type: ignore[attr-defined]
        self._hand_to_loop(self._system_blocks, (indata.mean(axis=1), rate, time.monotonic()))

    def _hand_to_loop(self, blocks: asyncio.Queue[Block], block: Block) -> None:
        """In a capture thread: the block goes to the event loop (which may have just closed)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(_put_bounded, blocks, block)
        except RuntimeError:  # the loop is closed: the run is over
            pass


def _put_bounded(blocks: asyncio.Queue[Block], block: Block) -> None:
    """In the event loop: a block queued; capture never waits for a slow pipeline."""
    if blocks.qsize() >= MAX_BACKLOG_BLOCKS:
        blocks.get_nowait()
        log.warning("audio capture is far ahead of processing; dropping old audio")
    blocks.put_nowait(block)


def _renamed(on_device: DeviceCallback, which: str, as_which: str) -> DeviceCallback:
    def told(told_which: str, state: str, name: str) -> None:
        on_device(as_which if told_which == which else told_which, state, name)

    return told
