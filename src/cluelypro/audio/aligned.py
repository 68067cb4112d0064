"""Several audio sources on one clock (call mode: the microphone and the system output).

Each source's blocks are resampled to 16 kHz and stamped with the input time at which they
arrived (`Clock.input_now()`, read in the capture thread). A source's *offset* is how far the
samples it has handed on are from where the clock says they should end. It strays for three
reasons, each bounded here:

- nothing comes at all (WASAPI loopback sends nothing during silence; a device was lost): the
  consumer asks for `silence_until(now)`, which fills up to DRIFT_BOUND_S short of the clock, so a
  block that is merely late still fits and a gap reads as silence, never as repeated audio;
- blocks come late and then in a burst (scheduling jitter): blocks are never early, so the
  least late block of the last LATE_WINDOW_S shows the true offset — jitter alone never resyncs;
- the device's crystal runs a little faster or slower than the monotonic clock (0.1 % is 3.6 s
  an hour): once the true offset leaves ±DRIFT_BOUND_S, samples are dropped (ahead: the oldest
  samples of the block in hand) or silence is inserted (behind: before the block) to bring it
  back to zero. With a 0.1 % error that is one 40 ms correction every 40 s; between two, every
  source stays within DRIFT_BOUND_S of the clock however long the call.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import soxr

from cluelypro.config import SAMPLE_RATE

DRIFT_BOUND_S = 0.040  # a source further than this from the clock is resynchronised
LATE_WINDOW_S = 0.5  # blocks this recent show the source's true offset (the least late of them)


class Resampler:
    """Device rate → 16 kHz, with one stateful resampler per rate (a reopened device may differ)."""

    def __init__(self) -> None:
        self.rate: int | None = None  # of the blocks taken last
        self._stream: soxr.ResampleStream | None = None
        self._taken = 0.0  # input taken by the current resampler, in 16 kHz samples
        self._given = 0  # output it has given

    @property
    def pending(self) -> int:
        """Samples taken in but not yet given out: soxr works in blocks of its own and holds back
        a varying 15–40 ms (so a source's offset counts them: it is latency, not drift)."""
        return max(0, round(self._taken) - self._given)

    def __call__(self, block: np.ndarray, rate: int) -> np.ndarray:
        if rate != self.rate:
            self.rate, self._taken, self._given = rate, 0.0, 0
            self._stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        if self._stream is None:
            return block
        audio = self._stream.resample_chunk(block)
        self._taken += len(block) * SAMPLE_RATE / rate
        self._given += len(audio)
        return audio


class AlignedSource:
    """One source's 16 kHz audio, kept within DRIFT_BOUND_S of the clock (see the module's doc).

    Pure logic: the caller says when each block arrived (input seconds), so time can be simulated.
    """

    def __init__(self, bound_s: float = DRIFT_BOUND_S, window_s: float = LATE_WINDOW_S) -> None:
        self.bound = round(bound_s * SAMPLE_RATE)
        self.window_s = window_s
        self.position = 0  # 16 kHz samples handed on
        self.padded = 0  # samples of silence inserted by resyncs and fills
        self.dropped = 0  # samples of audio dropped by resyncs
        self._to_16k = Resampler()
        self._recent: deque[tuple[float, int]] = deque()  # (arrived, offset at its end) of recent blocks

    def offset(self, t: float) -> int:
        """Samples taken (handed on, or still in the resampler) beyond (+) or short of (−) input
        time `t`."""
        return self.position + self._to_16k.pending - _samples(t)

    def take(self, block: np.ndarray, rate: int, arrived: float) -> np.ndarray:
        """`block` (at `rate`, arrived at input time `arrived`) as 16 kHz audio to hand on."""
        audio = self._to_16k(block, rate)
        self._recent.append((arrived, self.position + len(audio) + self._to_16k.pending - _samples(arrived)))
        while self._recent[0][0] < arrived - self.window_s:
            self._recent.popleft()
        true_offset = max(late for _, late in self._recent)
        if true_offset > self.bound:  # the device runs fast: drop its oldest samples
            cut = min(true_offset, len(audio))
            audio = audio[cut:]
            self.dropped += cut
            self._shift(-cut)
        elif true_offset < -self.bound:  # slow, or after a gap: silence where nothing came
            audio = np.concatenate([np.zeros(-true_offset, dtype=np.float32), audio])
            self.padded += -true_offset
            self._shift(-true_offset)
        self.position += len(audio)
        return audio

    def silence_until(self, t: float) -> np.ndarray:
        """Silence standing in for a source that has delivered nothing, up to input time `t` less
        the bound (a block merely late still fits after it). It goes through the resampler, so the
        audio still held there comes out first, in its place."""
        missing = max(0, -self.offset(t) - self.bound)
        self._recent.clear()  # their offsets were before this silence
        rate = self._to_16k.rate
        if rate is None or rate == SAMPLE_RATE:
            silence = np.zeros(missing, dtype=np.float32)
        else:
            silence = self._to_16k(np.zeros(missing * rate // SAMPLE_RATE, dtype=np.float32), rate)
        self.position += len(silence)
        self.padded += missing
        return silence

    def _shift(self, samples: int) -> None:
        """A resync moved the source by `samples`: so did the offsets it remembers (a late block
        among them keeps its lateness, and still cannot pass for a lag of the source)."""
        self._recent = deque((arrived, offset + samples) for arrived, offset in self._recent)


def _samples(t: float) -> int:
    return round(t * SAMPLE_RATE)
