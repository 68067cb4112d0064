"""Two sources on one clock (audio/aligned.py): drift, a gap and jitter, with simulated time.

Each simulated device runs on a crystal 0.1 % off its nominal rate (48 kHz fast, 44.1 kHz slow),
delivers blocks of 10–30 ms (20–100 ms in the two-hour run) that arrive 2–27 ms after their last
sample was captured (now and then 150–300 ms late, then in a burst), and one of them sends
nothing at all for 2 s (WASAPI loopback during silence). Each sample's value is the time it was
captured (a slow ramp), so the merged stream shows both where each sample sits on the clock and
what it holds.
"""

from __future__ import annotations

import numpy as np

from cluelypro.audio.aligned import DRIFT_BOUND_S, LATE_WINDOW_S, AlignedSource
from cluelypro.config import SAMPLE_RATE

CLOCK_ERROR = 0.001  # the device crystal against the monotonic clock
RAMP_SCALE = 1 / 8000  # sample value = capture time (s) × this (< 1 over two hours)
POLL_S = 0.25  # the capture loop's look for a stalled source (audio/call.py: CHECK_EVERY_S)
STALL_S = LATE_WINDOW_S  # no block for this long: silence is filled up to the clock
SLACK_S = 0.010  # capture latency: a resync reads the offset from the least late block of its window
# (2 ms plus the least jitter, a few ms), so a sample may sit that much more than the bound from
# its capture time; soxr's filter delay adds well under 1 ms
RINGING_S = 0.06  # not checked this near the gap's edges: the resampler rings where the ramp jumps
REPEAT_S = 0.002  # capture time may step back this little between two samples (rounding); a block heard
# twice steps back a whole block (≥ 10 ms)
REPEAT_LONG_S = 0.015  # the same over two hours, where the ramp is near 0.9 and soxr's float32 sums step
# back up to 8 ms of ramp (16 ulp); a block heard twice there steps back ≥ 20 ms


class SimulatedDevice:
    """Blocks of a device whose crystal runs at `rate × (1 + error)` samples per clock second."""

    def __init__(
        self,
        rate: int,
        error: float,
        seed: int,
        gap: tuple[float, float] | None = None,
        block_ms: tuple[int, int] = (10, 30),
    ) -> None:
        self.rate = rate
        self.block_sizes = (rate * block_ms[0] // 1000, rate * block_ms[1] // 1000)
        self.true_rate = rate * (1 + error)
        self.gap = gap
        self._random = np.random.default_rng(seed)
        self._captured = 0  # samples captured so far (on the device's crystal)
        self._last_arrival = 0.0

    def blocks(self, until_s: float):
        """(samples, arrived) in arrival order, up to clock time `until_s`."""
        offsets = np.arange(self.block_sizes[1]) / self.true_rate  # within a block, drawn once
        while True:
            sizes = self._random.integers(*self.block_sizes, 10_000)  # random numbers a batch at a time
            lateness = 0.002 + self._random.uniform(0, 0.025, 10_000)
            stalls = np.where(self._random.random(10_000) < 0.002, self._random.uniform(0.15, 0.3, 10_000), 0.0)
            for size, late, stall in zip(sizes.tolist(), lateness.tolist(), stalls.tolist(), strict=True):
                start = self._captured / self.true_rate
                self._captured += size
                end = self._captured / self.true_rate
                if end > until_s:
                    return
                if self.gap is not None and self.gap[0] < end and start < self.gap[1]:
                    continue  # loopback silence: the device hands over nothing at all
                # now and then the capture thread was not scheduled: late, then a burst, in order
                arrived = self._last_arrival = max(self._last_arrival, end + late + stall)
                yield ((start + offsets[:size]) * RAMP_SCALE).astype(np.float32), arrived


class Merged:
    """What the capture loop hands on from one source, checked as it comes (ten seconds at a
    time): where each sample sits on the clock against when it was captured (its value), and that
    capture time never runs backwards."""

    def __init__(self, gap: tuple[float, float] | None, keep: bool) -> None:
        self.gap = gap
        self.keep = keep
        self.worst_s = 0.0  # the largest |position − capture time| of a sample heard
        self.backwards_s = 0.0  # the largest step back in capture time from one sample heard to the next
        self.pieces: list[np.ndarray] = []
        self._unchecked: list[np.ndarray] = []
        self._checked = 0  # samples checked so far
        self._last_content = -1.0

    def add(self, audio: np.ndarray) -> None:
        self._unchecked.append(audio)
        if len(self._unchecked) >= 500:
            self.check()

    def check(self) -> None:
        if not self._unchecked:
            return
        audio = np.concatenate(self._unchecked)
        self._unchecked = []
        if self.keep:
            self.pieces.append(audio)
        clock = (self._checked + np.arange(len(audio))) / SAMPLE_RATE
        self._checked += len(audio)
        heard = (audio != 0) & (clock > 0.1)
        if self.gap is not None:  # the resampler rings where the device's own ramp jumps across the gap
            heard &= (np.abs(clock - self.gap[0]) > RINGING_S) & (np.abs(clock - self.gap[1]) > RINGING_S)
        if not heard.any():
            return
        content = audio[heard] / RAMP_SCALE
        self.worst_s = max(self.worst_s, float(np.max(np.abs(content - clock[heard]))))
        steps = np.diff(np.concatenate([[self._last_content], content]))
        self.backwards_s = max(self.backwards_s, float(-steps.min()))
        self._last_content = float(content[-1])


def run(device: SimulatedDevice, until_s: float, keep: bool = False) -> tuple[Merged, AlignedSource]:
    """Feed `device` through an AlignedSource as the capture loop does."""
    source, merged = AlignedSource(), Merged(device.gap, keep)
    last_arrival, next_poll = 0.0, POLL_S
    for block, arrived in device.blocks(until_s):
        while next_poll < arrived:  # the loop looks every POLL_S; a stalled source gets silence
            if next_poll - last_arrival >= STALL_S:
                merged.add(source.silence_until(next_poll))
            next_poll += POLL_S
        merged.add(source.take(block, device.rate, arrived))
        last_arrival = arrived
    merged.check()
    return merged, source


def test_two_sources_stay_within_the_bound_for_two_hours() -> None:
    two_hours = 2 * 3600.0
    # longer blocks than a device's 10–30 ms keep the simulation of four hours of audio short
    fast = SimulatedDevice(48_000, +CLOCK_ERROR, seed=1, block_ms=(20, 100))
    slow = SimulatedDevice(44_100, -CLOCK_ERROR, seed=2, gap=(1800.0, 1802.0), block_ms=(20, 100))
    for device in (fast, slow):
        merged, source = run(device, two_hours)
        assert merged.worst_s <= DRIFT_BOUND_S + SLACK_S, f"{device.rate} Hz strayed {merged.worst_s * 1000:.1f} ms"
        assert merged.backwards_s < REPEAT_LONG_S, f"{device.rate} Hz repeated {merged.backwards_s * 1000:.1f} ms"
        # the drift (7.2 s over two hours) was corrected as it grew, not by one jump at the end
        corrected_s = (source.dropped if device is fast else source.padded) / SAMPLE_RATE
        gap_s = 2.0 if device is slow else 0.0
        assert abs(corrected_s - gap_s - two_hours * CLOCK_ERROR) < 2 * DRIFT_BOUND_S + 0.5, corrected_s
        print(
            f"{device.rate} Hz: worst {merged.worst_s * 1000:.1f} ms from the clock, "
            f"corrected {corrected_s:.2f} s over two hours"
        )


def test_a_gap_is_silence_and_no_audio_is_repeated() -> None:
    gap = (60.0, 62.0)
    merged, _ = run(SimulatedDevice(44_100, -CLOCK_ERROR, seed=3, gap=gap), 120.0, keep=True)
    assert merged.worst_s <= DRIFT_BOUND_S + SLACK_S
    assert merged.backwards_s < REPEAT_S
    audio = np.concatenate(merged.pieces)
    clock = np.arange(len(audio)) / SAMPLE_RATE
    # the gap reads as silence, with real audio on both sides of it
    in_gap = (clock > gap[0] + DRIFT_BOUND_S) & (clock < gap[1] - DRIFT_BOUND_S)
    assert np.all(audio[in_gap] == 0)
    before = (clock > gap[0] - 1) & (clock < gap[0] - DRIFT_BOUND_S)
    after = (clock > gap[1] + DRIFT_BOUND_S) & (clock < gap[1] + 1)
    assert np.all(audio[before] != 0) and np.all(audio[after] != 0)
