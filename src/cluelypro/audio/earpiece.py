"""Where spoken theses go: a track aligned with the input, or a live output device.

`play` returns when the chunk has started playing (real time) — the caller feeds one chunk at a
time, so an interruption (`stop`) is heard within one chunk.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from cluelypro.audio.devices import CHECK_EVERY_S, DeviceCallback, WatchedStream, open_output_stream
from cluelypro.audio.echo import EchoGate
from cluelypro.audio.io import audio_writer, resampled
from cluelypro.config import SAMPLE_RATE
from cluelypro.metrics.timeline import Clock


class Earpiece(Protocol):
    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        """Queue a 16 kHz chunk no earlier than input time `at`; return its (start, end) times."""
        ...

    def stop(self) -> None:
        """Drop whatever is queued but not yet heard."""
        ...

    echo: EchoGate | None
    """Told until when the audio queued so far will have been heard (None: nobody asks)."""

    def close(self) -> None: ...


class TrackEarpiece:
    """Renders the earpiece into a track on the input timeline (sample n = input time n/16000).

    Memory stays flat however long the input: with `keep`, each chunk played is mixed into a
    private temporary file of 16 kHz float32 samples (sparse where the file system allows: the
    silence between answers takes no disk), and `write` streams it out at the end; without it
    nothing is kept. Use it as a context manager to delete that file (`close` only ends playback:
    the track outlives the pipeline).
    """

    RENDER_SAMPLES = SAMPLE_RATE  # written out a second at a time

    def __init__(self, clock: Clock, length: int, keep: bool = True) -> None:
        self._clock = clock
        self._length = length  # samples: the track covers at least the input
        self._samples = tempfile.TemporaryFile() if keep else None  # created 0600
        self._busy_until = 0.0
        self.echo: EchoGate | None = None

    def __enter__(self) -> TrackEarpiece:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._samples is not None:
            self._samples.close()

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        start = max(at, self._busy_until)
        if self._samples is not None:
            self._mix(round(start * SAMPLE_RATE), chunk)
        end = self._busy_until = start + len(chunk) / SAMPLE_RATE
        if self.echo is not None:
            self.echo.playing(end)
        if not self._clock.fast:
            await asyncio.sleep(max(0.0, start - self._clock.input_now()))
        return start, end  # not _busy_until: a stop() meanwhile (a thesis skipped) resets it

    def stop(self) -> None:
        self._busy_until = 0.0
        if self.echo is not None:
            self.echo.stopped()

    def close(self) -> None:
        pass

    @property
    def track(self) -> np.ndarray:
        """The whole track so far, in memory (for tests; `write` streams it)."""
        return np.concatenate([np.zeros(0, np.float32), *self._rendered()])

    def write(self, path: Path, rate: int = SAMPLE_RATE) -> None:
        """Write the track at `rate` as a private 16-bit file, a block at a time."""
        with audio_writer(path, rate) as write:
            for block in resampled(self._rendered(), SAMPLE_RATE, rate):
                write(block)

    def _mix(self, first: int, chunk: np.ndarray) -> None:
        """Add `chunk` to the track from sample `first` (an interrupted answer may overlap it)."""
        samples = self._samples
        assert samples is not None, "only a kept track is mixed"
        mixed = np.array(chunk, dtype="<f4")
        samples.seek(4 * first)
        heard = np.frombuffer(samples.read(4 * len(mixed)), "<f4")  # shorter past the end
        mixed[: len(heard)] += heard
        samples.seek(4 * first)
        samples.write(mixed.tobytes())

    def _rendered(self) -> Iterator[np.ndarray]:
        """The track in blocks of RENDER_SAMPLES, at least `length` samples long."""
        samples = self._samples
        recorded = 0 if samples is None else samples.seek(0, os.SEEK_END) // 4
        length = max(self._length, recorded)
        if samples is not None:
            samples.seek(0)
        for first in range(0, length, self.RENDER_SAMPLES):
            block = np.zeros(min(self.RENDER_SAMPLES, length - first), np.float32)
            if samples is not None and first < recorded:
                stored = np.frombuffer(samples.read(4 * len(block)), "<f4")
                block[: len(stored)] = stored
            yield block


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
        self.echo: EchoGate | None = None
        self._on_device = on_device
        self._output = WatchedStream("output", open_output_stream, self._fill, self._changed)
        self._output.open(device)  # a missing device fails now; the stream starts in `watch`

    @property
    def device_name(self) -> str:
        """The output device's name (as PortAudio lists it)."""
        return self._output.name

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
        end = self._busy_until = start + len(chunk) / SAMPLE_RATE
        if self.echo is not None:
            self.echo.playing(end)
        await asyncio.sleep(max(0.0, start - now))
        return start, end  # not _busy_until: a stop() meanwhile (a thesis skipped) resets it

    def stop(self) -> None:
        with self._lock:
            self._queue.clear()
        self._busy_until = 0.0
        if self.echo is not None:
            self.echo.stopped()

    def close(self) -> None:
        self._output.close()
