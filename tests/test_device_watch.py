"""WatchedStream's timing and retry logic, on fake streams and a fake clock (no PortAudio).

The real path — PortAudio streams on PulseAudio sinks unplugged under a running prompter — is
tests/test_live.py; here the stream object is the only stand-in, so every timer can be stepped
exactly: a check every CHECK_EVERY_S, as the capture loop and the earpiece's watch run it.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import sounddevice as sd

from cluelypro.audio.devices import (
    CHECK_EVERY_S,
    FIRST_AUDIO_GRACE_S,
    FLAGS_REPORT_EVERY_S,
    HUNG_AFTER_S,
    MAX_HUNG_REOPENINGS,
    RETRY_EVERY_S,
    SILENT_STREAM_S,
    DeviceError,
    WatchedStream,
)

QUIET = SimpleNamespace(input_overflow=False, input_underflow=False, output_underflow=False)
UNDERRUN = SimpleNamespace(input_overflow=False, input_underflow=False, output_underflow=True)


class FakeStream:
    """The part of a sounddevice stream WatchedStream uses; `deliver` plays PortAudio's thread."""

    def __init__(self, callback, fails_to_start: bool = False) -> None:
        self.callback = callback
        self.samplerate = 48_000
        self.latency = 0.02
        self.active = False
        self.closed = False
        self.fails_to_start = fails_to_start
        self.hangs: threading.Event | None = None  # set: start and abort block until it is set
        self.aborted_in: threading.Thread | None = None

    def start(self) -> None:
        if self.fails_to_start:
            raise sd.PortAudioError("Unanticipated host error")
        if self.hangs is not None:  # PortAudio 19.6 starting a stream on a device just gone
            self.hangs.wait(timeout=30)  # a net: a test of the old code fails instead of hanging
        self.active = True

    def abort(self) -> None:
        self.aborted_in = threading.current_thread()
        if self.hangs is not None:  # a call into a dead device that does not return
            self.hangs.wait(timeout=30)  # a net: a test of the old code fails instead of hanging
        self.active = False

    def close(self) -> None:
        self.closed = True

    def deliver(self, status=QUIET) -> None:
        self.callback(np.zeros((4, 1), np.float32), 4, None, status)


class Machine:
    """Devices that can be unplugged, a clock that only moves when told, and what was told."""

    def __init__(self, plugged: set[str], default: str = "Built-in Microphone") -> None:
        self.plugged = plugged
        self.default = default
        self.now = 0.0
        self.attempts: list[str | None] = []
        self.streams: list[FakeStream] = []
        self.told: list[tuple[str, str, str, float]] = []
        self.fail_next_start = False
        self.hang_next_starts: threading.Event | None = None

    def open(self, device, callback):
        self.attempts.append(device)
        name = device if device is not None else self.default
        if name not in self.plugged:
            raise DeviceError(f"no input device {name}")
        self.streams.append(FakeStream(callback, fails_to_start=self.fail_next_start))
        self.streams[-1].hangs = self.hang_next_starts
        self.fail_next_start = False
        return self.streams[-1], name

    def watch(
        self, which: str = "input", device: str | None = "USB Microphone", in_thread: bool = False
    ) -> WatchedStream:
        watched = WatchedStream(
            which, self.open, lambda *block: None, self.tell, monotonic=lambda: self.now, recover_in_thread=in_thread
        )
        watched.open(device)
        watched.start()
        return watched

    def tell(self, which: str, state: str, name: str) -> None:
        self.told.append((which, state, name, self.now))

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]

    def run(self, watched: WatchedStream, seconds: float, delivering: bool = True, status=QUIET) -> None:
        """`seconds` of checks; the newest stream delivers a block before each if `delivering`."""
        for _ in range(round(seconds / CHECK_EVERY_S)):
            self.now += CHECK_EVERY_S
            if delivering and self.stream.active:
                self.stream.deliver(status)
            watched.check()

    def unplug(self, *names: str) -> None:
        self.plugged -= set(names)
        self.stream.active = False  # PortAudio ends a stream whose device went away


def test_a_lost_device_is_told_once_and_reopened_every_2_s_by_name_then_default() -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    assert machine.told == [] and watched.flowing

    machine.unplug("USB Microphone")
    lost_at = machine.now
    machine.run(watched, 5 * RETRY_EVERY_S - CHECK_EVERY_S)
    assert machine.told == [("input", "lost", "USB Microphone", lost_at + CHECK_EVERY_S)]
    assert not watched.flowing
    # the first attempt as soon as the loss is seen, then one every RETRY_EVERY_S: five in 10 s
    assert machine.attempts[1:] == ["USB Microphone", None] * 5


def test_a_device_is_back_when_its_reopened_stream_delivers() -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    machine.unplug("USB Microphone")
    machine.run(watched, RETRY_EVERY_S)
    machine.plugged.add("USB Microphone")
    machine.run(watched, RETRY_EVERY_S, delivering=False)  # reopened, but no audio yet
    assert [told[1] for told in machine.told] == ["lost"] and not watched.flowing
    assert machine.stream.active

    machine.run(watched, CHECK_EVERY_S)
    assert [told[:3] for told in machine.told] == [
        ("input", "lost", "USB Microphone"),
        ("input", "back", "USB Microphone"),
    ]
    assert watched.flowing


def test_the_system_default_stands_in_when_the_device_stays_away() -> None:
    machine = Machine({"USB Microphone", "Built-in Microphone"})
    watched = machine.watch()
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    machine.unplug("USB Microphone")
    machine.run(watched, CHECK_EVERY_S)
    machine.run(watched, CHECK_EVERY_S)
    assert [told[1:3] for told in machine.told] == [("lost", "USB Microphone"), ("back", "Built-in Microphone")]
    assert machine.attempts[1:] == ["USB Microphone", None]


def test_a_stream_that_stops_delivering_while_active_is_lost_after_a_second() -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    last_block = machine.now
    machine.run(watched, SILENT_STREAM_S - CHECK_EVERY_S, delivering=False)
    assert machine.told == [] and machine.stream.active  # the driver still calls it running

    machine.run(watched, CHECK_EVERY_S, delivering=False)
    assert machine.told == [("input", "lost", "USB Microphone", last_block + SILENT_STREAM_S)]


def test_a_stream_just_started_may_be_slow_to_deliver() -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, FIRST_AUDIO_GRACE_S - CHECK_EVERY_S, delivering=False)  # an idle sink, waking
    assert machine.told == []

    machine.run(watched, CHECK_EVERY_S, delivering=False)
    assert [told[1] for told in machine.told] == ["lost"]


def test_a_stream_that_delivered_and_went_quiet_is_lost_within_its_first_seconds() -> None:
    """The grace is for the first block: a device unplugged a second after the start is told
    SILENT_STREAM_S after its last block, not at the end of FIRST_AUDIO_GRACE_S (SPEC §5: 2 s)."""
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, 1.0)
    last_block = machine.now
    machine.run(watched, SILENT_STREAM_S, delivering=False)
    assert machine.told == [("input", "lost", "USB Microphone", last_block + SILENT_STREAM_S)]
    assert last_block + SILENT_STREAM_S < FIRST_AUDIO_GRACE_S


def test_a_stream_starting_haltingly_is_not_lost_until_it_flows() -> None:
    """A null sink just loaded back: one block (the device is back), a second and more of nothing,
    then steady audio — no second `lost` (live test: lost, back, lost, back within 1 s)."""
    machine = Machine({"USB Microphone"})
    watched = machine.watch()
    machine.run(watched, CHECK_EVERY_S)
    machine.run(watched, 2 * SILENT_STREAM_S, delivering=False)
    machine.run(watched, FIRST_AUDIO_GRACE_S)
    assert machine.told == [] and watched.flowing


def test_a_stream_that_fails_to_start_is_lost_and_retried() -> None:
    machine = Machine({"USB Microphone"})
    machine.fail_next_start = True
    watched = machine.watch()  # must not raise: the loss is told by the first check
    machine.run(watched, CHECK_EVERY_S)
    machine.run(watched, CHECK_EVERY_S)
    assert [told[1] for told in machine.told] == ["lost", "back"]
    assert machine.attempts == ["USB Microphone", "USB Microphone"]


def test_underruns_are_counted_and_warned_about_at_most_every_30_s(caplog: pytest.LogCaptureFixture) -> None:
    machine = Machine({"Headphones"})
    watched = machine.watch("output", "Headphones")
    caplog.set_level(logging.WARNING, logger="cluelypro.audio.devices")
    machine.run(watched, 10, status=UNDERRUN)  # 40 callbacks, each flagging an underrun
    machine.run(watched, FLAGS_REPORT_EVERY_S - 10)  # the first line came with the first check
    assert [record.getMessage() for record in caplog.records] == [
        'earpiece "Headphones" — output underflow: 1; the audio had gaps or lost samples (is the machine overloaded?)'
    ]

    machine.run(watched, CHECK_EVERY_S)
    assert len(caplog.records) == 2 and "output underflow: 39;" in caplog.records[1].getMessage()
    machine.run(watched, 2 * FLAGS_REPORT_EVERY_S)
    assert len(caplog.records) == 2  # no underrun since: nothing more to say
    assert machine.told == []


def _wait_until_installed(watched: WatchedStream) -> None:
    """Checks, the fake clock standing still, until the recovery thread's new stream is in use."""
    for _ in range(3000):  # a net of 30 s: this waits for a thread, not for time to pass
        watched.check()
        if watched.latency:  # a stream is installed
            return
        threading.Event().wait(0.01)
    pytest.fail("the reopened stream was never installed")


def test_a_hung_reopening_holds_up_no_check_and_is_abandoned_for_a_new_one(caplog: pytest.LogCaptureFixture) -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch(in_thread=True)
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    dead = machine.stream
    dead.hangs = threading.Event()  # closing the lost stream never returns
    caplog.set_level(logging.WARNING, logger="cluelypro.audio.devices")
    try:
        machine.unplug("USB Microphone")
        machine.plugged.add("USB Microphone")  # back at once: only the hung call stands in the way
        machine.run(watched, HUNG_AFTER_S)  # every check returns meanwhile
        assert dead.aborted_in is not None and dead.aborted_in is not threading.current_thread()
        assert [told[1] for told in machine.told] == ["lost"] and len(machine.streams) == 1

        machine.run(watched, CHECK_EVERY_S, delivering=False)  # abandoned: a new attempt, a thread of its own
        _wait_until_installed(watched)
        machine.run(watched, CHECK_EVERY_S)
        assert [told[1] for told in machine.told] == ["lost", "back"] and watched.flowing
        assert [record.getMessage() for record in caplog.records] == [
            'microphone "USB Microphone": the sound system has not answered a reopening for 5 s '
            "(a PortAudio hang); trying anew"
        ]
    finally:
        dead.hangs.set()


def test_a_device_whose_reopenings_keep_hanging_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch(in_thread=True)
    machine.run(watched, FIRST_AUDIO_GRACE_S + 1)
    machine.hang_next_starts = threading.Event()
    try:
        machine.unplug("USB Microphone")
        machine.plugged.add("USB Microphone")
        machine.run(watched, (MAX_HUNG_REOPENINGS + 3) * (HUNG_AFTER_S + CHECK_EVERY_S), delivering=False)
        assert len(machine.streams) == 1 + MAX_HUNG_REOPENINGS  # no more threads left hanging than that
        assert caplog.records[-1].levelname == "ERROR" and "giving up on it" in caplog.records[-1].getMessage()
        assert [told[1] for told in machine.told] == ["lost"]
    finally:
        machine.hang_next_starts.set()


def test_closing_for_good_does_not_wait_long_for_a_stream_that_will_not_close() -> None:
    machine = Machine({"USB Microphone"})
    watched = machine.watch(in_thread=True)
    machine.run(watched, CHECK_EVERY_S)
    machine.stream.hangs = threading.Event()
    try:
        watched.close()  # returns after CLOSE_WAIT_S: the exit goes on
        assert machine.stream.aborted_in is not threading.current_thread()
        assert not watched.flowing
    finally:
        machine.stream.hangs.set()
