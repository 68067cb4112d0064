"""The macOS process tap (audio/process_tap.py): our own logic around catap, tested on Linux.

macOS and catap cannot run here. What is tested is ours: the conversion of a catap buffer's bytes
to mono float32 (with a small dataclass standing in for catap's AudioStreamFormat), the version
check and the one-line errors, the choice of source on "darwin" (sys.platform set), and
ProcessTapStream's lost/back reporting and reopening with a fake session (FakeTap) in place of
catap's RecordingSession. The catap calls themselves (`open_catap_tap`) are only read.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from cluelypro.audio import loopback, process_tap
from cluelypro.audio.devices import DeviceError
from cluelypro.audio.loopback import SystemDevice, refuse_own_output, system_device
from cluelypro.audio.process_tap import ProcessTapStream, tap_device, tap_supported, to_mono

# --- a buffer's bytes as mono float32 ------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """Stands in for catap's AudioStreamFormat (the fields to_mono and the stream read)."""

    num_channels: int
    bits_per_sample: int
    sample_type: str
    sample_rate: float = 48_000.0


@dataclass(frozen=True)
class Buffer:
    """Stands in for catap's AudioBuffer."""

    data: bytes
    frame_count: int
    format: Format


def interleaved(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.stack([left, right], axis=1).reshape(-1)


LEFT = np.array([0.5, -0.25, 0.0, 0.75, -1.0], dtype=np.float32)
RIGHT = np.array([0.25, -0.75, 0.5, 0.25, -0.5], dtype=np.float32)


def test_float32_stereo_is_averaged_and_mono_is_taken_as_it_is() -> None:
    data = interleaved(LEFT, RIGHT).astype("<f4").tobytes()
    mono = to_mono(data, 5, Format(2, 32, "float"))
    assert mono.dtype == np.float32 and mono.shape == (5,)
    np.testing.assert_array_equal(mono, (LEFT + RIGHT) / 2)
    alone = to_mono(LEFT.astype("<f4").tobytes(), 5, Format(1, 32, "float"))
    np.testing.assert_array_equal(alone, LEFT)
    alone[0] = 1.0  # a copy of its own, not a view of catap's immutable bytes


@pytest.mark.parametrize("bits", [16, 24, 32])
def test_signed_integers_are_scaled_to_plus_minus_one(bits: int) -> None:
    full = 2 ** (bits - 1)
    left = np.array([full - 1, -full, 0, full // 2, -(full // 4)], dtype=np.int64)
    right = np.array([0, -full, full // 2, full // 2, full // 4], dtype=np.int64)
    samples = interleaved(left, right)
    if bits == 24:  # packed three-byte little-endian samples
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples)
    else:
        data = samples.astype(f"<i{bits // 8}").tobytes()
    mono = to_mono(data, 5, Format(2, bits, "signed_integer"))
    assert mono.dtype == np.float32
    np.testing.assert_allclose(mono, (left + right) / 2 / full, atol=1e-6)
    assert mono[1] == -1.0 and abs(mono[0] - 0.5) < 1e-4


def test_only_whole_frames_count_and_an_unknown_format_is_refused() -> None:
    data = interleaved(LEFT, RIGHT).astype("<f4").tobytes()
    assert len(to_mono(data, 3, Format(2, 32, "float"))) == 3, "frame_count rules"
    assert len(to_mono(data[:-4], 5, Format(2, 32, "float"))) == 4, "a partial last frame is left out"
    assert len(to_mono(b"", 0, Format(2, 32, "float"))) == 0
    with pytest.raises(ValueError, match="64-bit float"):
        to_mono(np.zeros(4).tobytes(), 4, Format(1, 64, "float"))
    with pytest.raises(ValueError, match="8-bit unsigned"):
        to_mono(b"\x00\x01", 2, Format(1, 8, "unsigned_integer"))


# --- which Mac has a tap, and the source chosen on macOS -----------------------------------------


def test_the_tap_needs_macos_14_2() -> None:
    assert [tap_supported(v) for v in ("14.2", "14.2.1", "15.0", "26.0", "14.1.2", "13.6", "", "x.y")] == [
        True, True, True, True, False, False, False, False,
    ]  # fmt: skip


def test_an_older_macos_is_told_to_update_or_use_blackhole() -> None:
    with pytest.raises(DeviceError) as refused:
        tap_device("13.6.1")
    message = str(refused.value)
    assert message.startswith("macOS 13.6.1 has no Core Audio process tap (14.2 or newer): update macOS, or route")
    assert message.endswith("--system-audio BlackHole") and "\n" not in message


def test_a_missing_catap_is_told_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """catap is not installed here (it is macOS-only): its import fails as on a Mac without it."""
    monkeypatch.delitem(sys.modules, "catap", raising=False)
    with pytest.raises(DeviceError) as refused:
        tap_device("15.1")
    message = str(refused.value)
    assert "catap package, which is not installed: pip install catap (Python 3.11+)" in message
    assert message.endswith("--system-audio BlackHole") and "\n" not in message


def test_on_macos_the_tap_is_the_default_and_a_named_device_is_blackhole(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.platform is set to darwin, and a bare module stands in for catap: nothing macOS runs."""
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(process_tap.platform, "mac_ver", lambda: ("15.1", ("", "", ""), "arm64"))
    monkeypatch.setitem(sys.modules, "catap", types.ModuleType("catap"))
    tap = system_device(None)
    assert tap == SystemDevice(process_tap.TAP_NAME, kind="tap")
    checked: list[tuple[object, str]] = []
    monkeypatch.setattr(loopback, "check_device", lambda device, kind: checked.append((device, kind)))
    assert system_device("BlackHole") == SystemDevice("BlackHole", kind="input")
    assert checked == [("BlackHole", "input")]
    monkeypatch.setattr(process_tap.platform, "mac_ver", lambda: ("14.1", ("", "", ""), "arm64"))
    with pytest.raises(DeviceError, match=r"^macOS 14.1 has no Core Audio process tap"):
        system_device(None)


def test_the_tap_is_never_refused_for_the_earpiece(monkeypatch: pytest.MonkeyPatch) -> None:
    """It leaves this process's sound out: refuse_own_output does not even ask the sound server."""

    def no_server() -> None:
        raise AssertionError("the sound server was asked")

    monkeypatch.setattr(loopback, "soundcard", no_server)
    refuse_own_output(SystemDevice(process_tap.TAP_NAME, kind="tap"), None)
    refuse_own_output(SystemDevice("BlackHole", kind="input"), None)
    with pytest.raises(AssertionError, match="asked"):
        refuse_own_output(SystemDevice("call.monitor", kind="loopback", output="call"), None)


# --- the stream: blocks, lost and back, reopening --------------------------------------------------


class FakeTap:
    """Stands in for a catap RecordingSession (through open_catap_tap's wrapper): once started, a
    thread hands a stereo float32 buffer of `value` to on_buffer every 5 ms until stopped or
    failed; `fail()` makes it fail as a capture does (buffers stop, `failed` turns true)."""

    def __init__(self, on_buffer: Callable[[Any], None], value: float, outdated: bool = False) -> None:
        self.on_buffer = on_buffer
        self.value = value
        self.is_outdated = outdated
        self.started = self.stopped = False
        self._failed = threading.Event()
        self._stopped = threading.Event()

    def start(self) -> None:
        self.started = True
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        data = np.full(2 * 240, self.value, dtype="<f4").tobytes()
        while not (self._stopped.is_set() or self._failed.is_set()):
            self.on_buffer(Buffer(data, 240, Format(2, 32, "float", 48_000.0)))
            time.sleep(0.005)

    def fail(self) -> None:
        self._failed.set()

    def stop(self) -> None:
        self.stopped = True
        self._stopped.set()
        if self._failed.is_set():
            raise OSError("Failed to stop recording session: the tap's format changed")

    def failed(self, timeout: float) -> bool:
        return self._failed.wait(timeout)

    def outdated(self) -> bool:
        return self.is_outdated


class Opener:
    """Opens FakeTaps: each call takes the next of `plan` (a value for its buffers, an exception
    to raise, or ("outdated", value) for a session that should be replaced)."""

    def __init__(self, *plan: Any) -> None:
        self.plan = list(plan)
        self.sessions: list[FakeTap] = []

    def __call__(self, on_buffer: Callable[[Any], None]) -> FakeTap:
        step = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        if isinstance(step, Exception):
            raise step
        outdated = isinstance(step, tuple)
        session = FakeTap(on_buffer, step[1] if outdated else step, outdated=outdated)
        self.sessions.append(session)
        return session


class Recorded:
    def __init__(self) -> None:
        self.blocks: list[tuple[np.ndarray, int, float]] = []
        self.told: list[tuple[str, str, str]] = []

    def deliver(self, block: np.ndarray, rate: int, arrived: float) -> None:
        self.blocks.append((block, rate, arrived))

    def on_device(self, which: str, state: str, name: str) -> None:
        self.told.append((which, state, name))


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream's waits shortened (reopening every 0.2 s, lost after 0.2 s without blocks)."""
    monkeypatch.setattr(process_tap, "RETRY_EVERY_S", 0.2)
    monkeypatch.setattr(loopback, "SILENT_STREAM_S", 0.2)
    monkeypatch.setattr(process_tap, "WAIT_S", 0.02)


def stream_with(opener: Opener) -> tuple[ProcessTapStream, Recorded]:
    recorded = Recorded()
    device = SystemDevice(process_tap.TAP_NAME, kind="tap")
    return ProcessTapStream(device, recorded.deliver, recorded.on_device, opener=opener), recorded


def checking(stream: ProcessTapStream, condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """Call `check` as the event loop does (every 20 ms here) until `condition` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        stream.check()
        time.sleep(0.02)


def test_buffers_are_handed_on_as_mono_blocks_at_their_rate(quick: None) -> None:
    opener = Opener(0.25)
    stream, recorded = stream_with(opener)
    stream.start()
    try:
        checking(stream, lambda: len(recorded.blocks) >= 10)
        assert stream.flowing and recorded.told == []
    finally:
        stream.close()
    block, rate, arrived = recorded.blocks[0]
    assert block.dtype == np.float32 and block.shape == (240,) and rate == 48_000
    assert np.all(block == 0.25) and abs(time.monotonic() - arrived) < 5
    assert [s.stopped for s in opener.sessions] == [True], "closing stops the session"
    assert stream.name == process_tap.TAP_NAME


def test_a_failed_capture_is_lost_once_and_back_once_when_reopened(
    quick: None, caplog: pytest.LogCaptureFixture
) -> None:
    opener = Opener(0.1, 0.2)
    stream, recorded = stream_with(opener)
    stream.start()
    try:
        checking(stream, lambda: recorded.blocks)
        opener.sessions[0].fail()
        checking(stream, lambda: recorded.told)
        assert recorded.told == [("system", "lost", process_tap.TAP_NAME)] and not stream.flowing
        checking(stream, lambda: len(recorded.told) == 2)
        assert recorded.told[1] == ("system", "back", process_tap.TAP_NAME) and stream.flowing
        assert recorded.blocks[-1][0][0] == np.float32(0.2), "the reopened session's buffers"
    finally:
        stream.close()
    assert len(opener.sessions) == 2 and all(s.stopped for s in opener.sessions)
    assert "the process tap failed: Failed to stop recording session: the tap's format changed" in caplog.text


def test_a_tap_that_cannot_open_is_retried_and_its_reason_told_once(
    quick: None, caplog: pytest.LogCaptureFixture
) -> None:
    denied = PermissionError("Failed to create process tap (status 560492391)")
    opener = Opener(denied, denied, denied, 0.5)
    stream, recorded = stream_with(opener)
    with caplog.at_level(logging.DEBUG, logger=process_tap.__name__):
        stream.start()
        try:
            checking(stream, lambda: recorded.blocks and len(recorded.told) == 2)
        finally:
            stream.close()
    assert [state for _, state, _ in recorded.told] == ["lost", "back"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["the process tap failed: Failed to create process tap (status 560492391)"]
    assert len(opener.sessions) == 1


def test_an_outdated_session_is_replaced_at_once_without_a_loss(quick: None) -> None:
    """A session opened before Core Audio knew this process hears the earpiece: once it can be
    excluded, a new session replaces it, with no "lost" told."""
    opener = Opener(("outdated", 0.1), 0.3)
    stream, recorded = stream_with(opener)
    stream.start()
    try:
        checking(stream, lambda: len(opener.sessions) == 2 and recorded.blocks[-1][0][0] == np.float32(0.3))
        for _ in range(10):
            stream.check()
            time.sleep(0.02)
    finally:
        stream.close()
    assert recorded.told == [] and opener.sessions[0].stopped


@pytest.mark.parametrize(("value", "warned"), [(0.0, True), (0.01, False)], ids=["zeros", "sound"])
def test_only_zeros_for_long_are_warned_about_once_with_the_permission(
    value: float, warned: bool, quick: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """macOS hands a tap zeros when the permission is missing: one warning says where to allow it."""
    monkeypatch.setattr(process_tap, "ZEROS_WARNING_AFTER_S", 0.2)
    stream, recorded = stream_with(Opener(value))
    stream.start()
    try:
        checking(stream, lambda: recorded.blocks)
        started = time.monotonic()
        checking(stream, lambda: time.monotonic() - started > 0.5)
    finally:
        stream.close()
    lines = [r.getMessage() for r in caplog.records if "only silence" in r.getMessage()]
    assert len(lines) == (1 if warned else 0), lines
    if warned:
        assert '"System Audio Recording Only": allow the terminal app that runs cluelypro' in lines[0]
