"""Where spoken theses go: a track aligned with the input, or a live output device.

`play` returns when the chunk has started playing (real time) — the caller feeds one chunk at a
time, so an interruption (`stop`) is heard within one chunk.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Protocol

import numpy as np

from cluelypro.audio.devices import CHECK_EVERY_S, DeviceCallback, WatchedStream, open_output_stream
from cluelypro.config import SAMPLE_RATE
from cluelypro.metrics.timeline import Clock


class Earpiece(Protocol):
    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        """Queue a 16 kHz chunk no earlier than input time `at`; return its (start, end) times."""
        ...

    def stop(self) -> None:
        """Drop whatever is queued but not yet heard."""
        ...

    @property
    def busy_until(self) -> float:
        """Input time when the audio queued so far will have been heard."""
        ...

    def close(self) -> None: ...


class TrackEarpiece:
    """Renders the earpiece into a track on the input timeline (sample n = input time n/16000)."""

    def __init__(self, clock: Clock, length: int) -> None:
        self._clock = clock
        self._track = np.zeros(length, dtype=np.float32)
        self._busy_until = 0.0

    @property
    def track(self) -> np.ndarray:
        return self._track

    @property
    def busy_until(self) -> float:
        return self._busy_until

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        start = max(at, self._busy_until)
        first = round(start * SAMPLE_RATE)
        if first + len(chunk) > len(self._track):  # theses may run past the end of the input
            self._track = np.concatenate([self._track, np.zeros(first + len(chunk) - len(self._track), np.float32)])
        self._track[first : first + len(chunk)] += chunk
        self._busy_until = start + len(chunk) / SAMPLE_RATE
        if not self._clock.fast:
            await asyncio.sleep(max(0.0, start - self._clock.input_now()))
        return start, self._busy_until

    def stop(self) -> None:
        self._busy_until = 0.0

    def close(self) -> None:
        pass


class DeviceEarpiece:
    """One long-lived output stream for the whole session, fed chunk by chunk; `watch` runs it.

    A lost device is told to `on_device` and reopened (WatchedStream). While it is lost, `play`
    drops the chunk but takes its time, as if it were heard: the thesis plan runs on (repeats,
    deepening, the next question) and, once the earpiece is back, the thesis due then is heard —
    rather than a stuck answer, or a backlog of stale audio played late.
    """

    def __init__(self, clock: Clock, device: str | int | None = None, *, on_device: DeviceCallback) -> None:
        self._clock = clock
        self._queue: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._busy_until = 0.0
        self._on_device = on_device
        self._output = WatchedStream("output", open_output_stream, self._fill, self._changed)
        self._output.open(device)  # a missing device fails now; the stream starts in `watch`

    @property
    def busy_until(self) -> float:
        return self._busy_until

    async def watch(self) -> None:
        """Run the output until cancelled, beside the pipeline, checking on the device."""
        self._output.start()
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            self._output.check()

    def _changed(self, which: str, state: str, name: str) -> None:
        if state == "lost":
            with self._lock:
                self._queue.clear()  # what was queued for the dead stream will not be heard
        self._on_device(which, state, name)

    def _fill(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        out = outdata[:, 0]
        written = 0
        with self._lock:
            while written < frames and self._queue:
                head = self._queue[0]
                take = min(frames - written, len(head))
                out[written : written + take] = head[:take]
                written += take
                if take == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
        out[written:] = 0.0

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        now = self._clock.input_now()
        if self._output.flowing:
            start = max(now + self._output.latency, self._busy_until)
            with self._lock:
                self._queue.append(chunk)
        else:  # unheard, but on time
            start = max(now, self._busy_until)
        self._busy_until = start + len(chunk) / SAMPLE_RATE
        await asyncio.sleep(max(0.0, start - now))
        return start, self._busy_until

    def stop(self) -> None:
        with self._lock:
            self._queue.clear()
        self._busy_until = 0.0

    def close(self) -> None:
        self._output.close()
