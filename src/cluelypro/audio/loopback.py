"""The system output as a source (call mode): what the computer plays — the other side of a
call — recorded from the loopback of an output device.

Linux: the monitor source of a PulseAudio/PipeWire sink (`call.monitor`, or the default sink's),
through the `soundcard` library, which talks to the server PULSE_SERVER names. Windows: WASAPI
loopback of a speaker, through `soundcard` too (it hands out zeros while WASAPI sends nothing).
macOS has no loopback in `soundcard`: by default (14.2 or newer) a Core Audio process tap of every
app's sound but ours (audio/process_tap.py, through `catap`); with `--system-audio DEVICE`, or on
an older macOS, the call is routed into a virtual input device (BlackHole) and recorded like a
microphone (audio/call.py). Only the Linux path has run here; the Windows and macOS paths were
written from the libraries' documentation and code.

Also here, because it needs the same view of the sound server: on Linux, Pulse device names for
the microphone and the earpiece (`--input-device room.monitor --output-device earpiece`), and the
refusal to speak into the very output whose loopback is the call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cluelypro.audio.devices import (
    CLOSE_WAIT_S,
    RETRY_EVERY_S,
    SILENT_STREAM_S,
    DeviceCallback,
    DeviceError,
    check_device,
)

log = logging.getLogger(__name__)

SYSTEM_RATE = 48_000  # asked of the sound server (it converts); the usual rate of an output device
SYSTEM_BLOCK = SYSTEM_RATE // 50  # 20 ms blocks: the server's fragment size, so blocks come steadily
FIRST_BLOCK_GRACE_S = 5.0  # an idle sink may take ~2 s to deliver the first block of its monitor
PORTAUDIO_PULSE = ("pulse", "default")  # PortAudio (ALSA) devices that lead to the Pulse default sink/source
MACOS_HINT = (
    "route the call into a virtual device such as BlackHole 2ch (a Multi-Output Device that "
    "plays to your speakers and to BlackHole) and pass it: --system-audio BlackHole"
)

SystemKind = Literal["loopback", "input", "tap"]


@dataclass(frozen=True)
class SystemDevice:
    """Where the call is heard. `loopback`: a loopback/monitor source `soundcard` records (its id,
    and the id of the output it mirrors); `input`: an input device PortAudio records (macOS:
    BlackHole); `tap`: the Core Audio process tap (macOS 14.2+, audio/process_tap.py)."""

    name: str
    kind: SystemKind
    output: str | None = None  # the output device whose sound this is (loopback only)


def soundcard() -> Any:
    """The `soundcard` module; it connects to the sound server on import (Linux), so a missing
    server or libpulse is a one-line DeviceError."""
    try:
        import soundcard as sc
    except (AssertionError, OSError, RuntimeError, NotImplementedError) as error:
        detail = str(error) or "the sound server did not answer"
        raise DeviceError(
            f"cannot reach the sound server for system audio ({detail}); is PulseAudio or PipeWire running? "
            "(Debian/Ubuntu: apt-get install libpulse0)"
        ) from None
    return sc


def system_device(device: str | None) -> SystemDevice:
    """The source `--system-audio DEVICE` names (None: the loopback of the default output; macOS:
    the process tap, where the version has it and catap is installed, else a DeviceError)."""
    if sys.platform == "darwin":
        if device is None:
            from cluelypro.audio.process_tap import tap_device

            return tap_device()
        check_device(device, "input")
        return SystemDevice(device, kind="input")
    sc = soundcard()
    if sys.platform == "win32":
        return _windows_loopback(sc, device)
    return _pulse_monitor(sc, device)


def _pulse_monitor(sc: Any, device: str | None) -> SystemDevice:
    sources = [source.id for source in sc.all_microphones(include_loopback=True)]
    monitors = [source for source in sources if source.endswith(".monitor")]
    if device is None:
        wanted = f"{sc.default_speaker().id}.monitor"
    elif device in sources:
        wanted = device
    elif f"{device}.monitor" in sources:  # a sink's name: its monitor
        wanted = f"{device}.monitor"
    else:
        found = [source for source in monitors if device.lower() in source.lower()]
        if len(found) != 1:
            listed = ", ".join(monitors) or "none"
            raise DeviceError(
                f'no system-audio source "{device}"; monitors here: {listed} (pass one to --system-audio)'
            )
        wanted = found[0]
    if wanted not in sources:
        raise DeviceError(f"the default output has no monitor source ({wanted}); pass --system-audio")
    output = wanted.removesuffix(".monitor") if wanted in monitors else None
    return SystemDevice(wanted, kind="loopback", output=output)


def _windows_loopback(sc: Any, device: str | None) -> SystemDevice:
    try:
        speaker = sc.default_speaker() if device is None else sc.get_speaker(device)
    except (IndexError, RuntimeError) as error:
        speakers = ", ".join(f'"{speaker.name}"' for speaker in sc.all_speakers())
        raise DeviceError(f'no output device "{device}" to record ({error}); outputs here: {speakers}') from None
    return SystemDevice(speaker.id, kind="loopback", output=speaker.name)


# --- Pulse names for the microphone and the earpiece (Linux) -------------------------------------


def pulse_device(device: str | int | None, kind: str) -> str | int | None:
    """`device` for PortAudio: a Pulse source (input) or sink (output) name that PortAudio does not
    list is opened through its `pulse` device, the name given to the Pulse client library as
    PULSE_SOURCE/PULSE_SINK (read when a stream connects). Anything else is left as it is."""
    if sys.platform != "linux" or not isinstance(device, str):
        return device
    try:
        check_device(device, kind)
        return device
    except DeviceError:
        names = _pulse_names(kind)
        if device not in names:
            raise
    os.environ["PULSE_SOURCE" if kind == "input" else "PULSE_SINK"] = device
    return "pulse"


def _pulse_names(kind: str) -> list[str]:
    try:
        sc = soundcard()
    except DeviceError:
        return []
    if kind == "input":
        return [source.id for source in sc.all_microphones(include_loopback=True)]
    return [sink.id for sink in sc.all_speakers()]


def refuse_own_output(system: SystemDevice, output_device: str | int | None) -> None:
    """The prompter must not speak into the output whose loopback is the call: the other side's
    source would hear the theses as the call. One line says what to pick instead. A process tap
    leaves this process's own sound out, so it needs no refusal; a virtual input device (BlackHole)
    is not checked: which outputs feed it is set up in Audio MIDI Setup, out of sight here."""
    if system.kind != "loopback" or system.output is None:
        return
    sc = soundcard()
    output = _output_sink(sc, output_device)
    if output is None or output != system.output:
        return
    microphone = os.environ.get("PULSE_SOURCE", "")  # a sink whose monitor is the microphone will not do either
    others = [sink for sink in _output_names(sc) if sink != output and f"{sink}.monitor" != microphone]
    instead = f"--output-device {others[0]}" if others and sys.platform == "linux" else "--output-device HEADSET"
    raise DeviceError(
        f'the earpiece would play into "{output}", whose sound is captured as the call ({system.name}): '
        f"pick another output ({instead}) or another call source (--system-audio NAME)"
    )


def _output_sink(sc: Any, output_device: str | int | None) -> str | None:
    """The output (Pulse sink name; Windows: speaker name) the earpiece plays into, where it can be told."""
    if sys.platform == "linux":
        if output_device is None or output_device in PORTAUDIO_PULSE:
            return os.environ.get("PULSE_SINK") or sc.default_speaker().id
        return output_device if output_device in _output_names(sc) else None
    if sys.platform == "win32" and not isinstance(output_device, int):
        try:
            return sc.default_speaker().name if output_device is None else sc.get_speaker(output_device).name
        except (IndexError, RuntimeError):
            return None
    return None


def _output_names(sc: Any) -> list[str]:
    return [speaker.id if sys.platform == "linux" else speaker.name for speaker in sc.all_speakers()]


# --- the recording -------------------------------------------------------------------------------

Deliver = Callable[[np.ndarray, int, float], None]
"""Told each block (mono float32), its rate and when it arrived (time.monotonic())."""


class ThreadedSource:
    """A source recorded by a thread of its own (`_record`), watched from the event loop: the
    `Watched` of audio/call.py for which "system". `check`, called by the event loop, turns the
    thread's state into one "lost" and one "back" for `on_device`, as audio/devices.WatchedStream
    does for a microphone: lost when the recording failed (the thread is reopening it), or
    delivered nothing for SILENT_STREAM_S after its first block."""

    which = "system"
    thread_name = "system-audio"

    def __init__(self, name: str, deliver: Deliver, on_device: DeviceCallback) -> None:
        self.name = name
        self._deliver = deliver
        self._on_device = on_device
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._record, name=self.thread_name, daemon=True)
        self._last_block: float | None = None  # written by the recording thread, read by the loop
        self._failed = False  # the current recording failed (the thread is reopening)
        self._opened_at = time.monotonic()
        self._lost = False

    @property
    def flowing(self) -> bool:
        return not self._lost

    def start(self) -> None:
        self._opened_at = time.monotonic()
        self._thread.start()

    def check(self) -> None:
        alive = self._alive(time.monotonic())
        if alive and self._lost:
            self._lost = False
            self._on_device(self.which, "back", self.name)
        elif not alive and not self._lost:
            self._lost = True
            self._on_device(self.which, "lost", self.name)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(CLOSE_WAIT_S)

    def _alive(self, now: float) -> bool:
        last = self._last_block
        if self._failed:
            return False
        if last is None or last < self._opened_at:  # not delivered since (re)opened
            return now - self._opened_at < FIRST_BLOCK_GRACE_S and not self._lost
        return now - last < SILENT_STREAM_S

    def _record(self) -> None:
        raise NotImplementedError


class LoopbackStream(ThreadedSource):
    """A loopback source recorded by `soundcard`: the thread opens the source by its id, reads
    whatever the server has (20 ms blocks), and on a failure (the source went away: the stream
    fails within ~1 s) closes it and tries again every RETRY_EVERY_S."""

    def __init__(self, device: SystemDevice, deliver: Deliver, on_device: DeviceCallback) -> None:
        super().__init__(device.name, deliver, on_device)

    def _record(self) -> None:
        sc = soundcard()
        while not self._stop.is_set():
            try:
                source = sc.get_microphone(self.name, include_loopback=True)
                with source.recorder(samplerate=SYSTEM_RATE, blocksize=SYSTEM_BLOCK) as recorder:
                    self._opened_at, self._failed = time.monotonic(), False
                    while not self._stop.is_set():
                        self._hand_on(recorder.record(numframes=None))
            except Exception as error:  # noqa: BLE001 - any failure of the server or the source: reopen
                log.debug("system audio %s: %s", self.name, error)
            self._failed = True
            self._stop.wait(RETRY_EVERY_S)

    def _hand_on(self, data: np.ndarray) -> None:
        if not len(data):
            return
        arrived = time.monotonic()
        self._last_block = arrived
        mono = data.mean(axis=1) if data.ndim == 2 else data
        self._deliver(mono.astype(np.float32, copy=False), SYSTEM_RATE, arrived)
