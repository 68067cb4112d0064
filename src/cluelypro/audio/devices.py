"""Sound devices through sounddevice (PortAudio), with one-line errors a user can act on, and
streams that outlive their device: a lost device is reported and reopened when it returns."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25  # how often the event loop looks at a stream's health
SILENT_STREAM_S = 1.0  # a running stream whose callback has not run for this long is lost
FIRST_AUDIO_GRACE_S = 5.0  # a stream just started may deliver late or haltingly (a device waking from suspend, an idle null sink: ~2 s)
RETRY_EVERY_S = 2.0  # reopen attempts while a device is lost
FLAGS_REPORT_EVERY_S = 30.0  # at most one warning line per stream about overflows or underruns

DeviceCallback = Callable[[str, str, str], None]
"""Told (which, state, name): which is "input" or "output", state "lost" or "back"."""

Opener = Callable[[str | int | None, Callable[..., None]], tuple[Any, str]]
"""Opens a stream (not started) on a device with a callback; returns it and the device's name."""

LABELS = {"input": "microphone", "output": "earpiece"}
WATCHED_FLAGS = {"input": ("input_overflow", "input_underflow"), "output": ("output_underflow",)}

# Streams this process opened: PortAudio's device list may only be refreshed while none is open.
_streams: weakref.WeakSet[Any] = weakref.WeakSet()


class DeviceError(RuntimeError):
    """No usable sound device; the message says what to do."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as error:  # PortAudio itself is missing
        raise DeviceError(
            f"{error}: install PortAudio (Debian/Ubuntu: apt-get install libportaudio2) or run the setup script"
        ) from None
    return sounddevice


def parse_device(device: str | None) -> str | int | None:
    """A device index ('3') or a name substring ('pulse'), as `--input-device` takes it."""
    if device is None or device == "":
        return None
    return int(device) if device.isdigit() else device


def _device_rate(sd: Any, device: str | int | None, kind: str) -> int:
    try:
        info = sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError) as error:
        raise DeviceError(
            f"no {kind} device {device if device is not None else '(default)'}: {error}; "
            "list devices with `python -m sounddevice` and pass --input-device/--output-device"
        ) from None
    return int(info["default_samplerate"])


def check_device(device: str | int | None, kind: str) -> None:
    """Fail now, with a clear message, if the input or output device cannot be found."""
    _device_rate(_sounddevice(), device, kind)


def _device_name(sd: Any, device: str | int | None, kind: str) -> str:
    return str(sd.query_devices(device, kind=kind)["name"])


def _refresh_device_list(sd: Any) -> None:
    """PortAudio lists devices once, when it starts: a device plugged in again is only seen
    after a restart of PortAudio, which would also close every stream — so only while none is."""
    if all(stream.closed for stream in _streams):
        sd._terminate()  # sounddevice's documented way to re-scan devices
        sd._initialize()


def open_input_stream(device: str | int | None, callback: Callable[..., None]) -> tuple[Any, str]:
    sd = _sounddevice()
    _refresh_device_list(sd)
    rate = _device_rate(sd, device, "input")
    try:
        stream = sd.InputStream(
            device=device, channels=1, samplerate=rate, dtype="float32",
            blocksize=BLOCK_SAMPLES * rate // SAMPLE_RATE, callback=callback,
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the microphone ({error}); is it busy or unplugged?") from None
    _streams.add(stream)
    return stream, _device_name(sd, device, "input")


def open_output_stream(device: str | int | None, callback: Callable[..., None]) -> tuple[Any, str]:
    """A 16 kHz stream, the pipeline's own rate (PortAudio resamples if the device needs it)."""
    sd = _sounddevice()
    rate = SAMPLE_RATE
    _refresh_device_list(sd)
    _device_rate(sd, device, "output")
    try:
        stream = sd.OutputStream(
            device=device, channels=1, samplerate=rate, dtype="float32", callback=callback,
            blocksize=rate // 50, latency="low",
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the earpiece output ({error}); is it busy or unplugged?") from None
    _streams.add(stream)
    return stream, _device_name(sd, device, "output")


class _Heartbeat:
    """When one stream's callback last ran: written by its PortAudio thread, read by the event loop."""

    def __init__(self) -> None:
        self.last: float | None = None


class WatchedStream:
    """One PortAudio stream, watched from the event loop (`check` every CHECK_EVERY_S).

    Lost: the stream stopped (PortAudio gave up on the device), a call on it failed, or its
    callback has not run for SILENT_STREAM_S (a driver that keeps a dead stream "active"). A loss
    is told once; a reopening is tried every RETRY_EVERY_S, the same device by name first, else
    the system default, and "back" is told once the reopened stream delivers. Overflow and
    underrun flags are counted and logged at most every FLAGS_REPORT_EVERY_S.
    """

    def __init__(self, which: str, opener: Opener, callback: Callable[..., None], on_device: DeviceCallback,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.which = which
        self.name = ""
        self.samplerate = 0  # of the current stream, read by its callback
        self._opener = opener
        self._callback = callback
        self._on_device = on_device
        self._monotonic = monotonic
        self._stream: Any = None
        self._heartbeat = _Heartbeat()
        self._started_at = 0.0
        self._lost = False
        self._next_attempt = 0.0
        self._flags = dict.fromkeys(WATCHED_FLAGS[which], 0)  # fixed keys: safe to read while counted
        self._flags_reported = dict(self._flags)
        self._next_flags_report = 0.0

    @property
    def flowing(self) -> bool:
        """Not lost: audio goes to (or comes from) the device."""
        return self._stream is not None and not self._lost

    @property
    def latency(self) -> float:
        return self._stream.latency if self._stream is not None else 0.0

    def open(self, device: str | int | None) -> None:
        """The first opening, not started: a missing device is the user's error (DeviceError)."""
        heartbeat = _Heartbeat()
        stream, name = self._opener(device, self._beating(heartbeat))
        self._stream, self.name, self._heartbeat = stream, name, heartbeat
        self.samplerate = int(stream.samplerate)

    def start(self) -> None:
        """Start the stream opened; one that fails to start is found lost by the next check."""
        try:
            self._start()
        except _sounddevice().PortAudioError as error:
            log.debug("starting the %s failed: %s", LABELS[self.which], error)
            self.close()

    def check(self) -> None:
        now = self._monotonic()
        if self._stream is not None and self._alive(now):
            if self._lost and self._heartbeat.last is not None:
                self._lost = False
                self._on_device(self.which, "back", self.name)
            self._report_flags(now)
            return
        self.close()
        if not self._lost:
            self._lost = True
            self._on_device(self.which, "lost", self.name)
        if now >= self._next_attempt:
            self._next_attempt = now + RETRY_EVERY_S
            self._reopen()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.abort()  # closing a stream that still runs can hang; errors are ignored
            self._stream.close()
            self._stream = None

    def _start(self) -> None:
        self._stream.start()
        self._started_at = self._monotonic()

    def _beating(self, heartbeat: _Heartbeat) -> Callable[..., None]:
        callback, monotonic, flags = self._callback, self._monotonic, self._flags

        def on_audio(data: Any, frames: int, time_info: Any, status: Any) -> None:
            heartbeat.last = monotonic()
            if status:
                for flag in flags:
                    flags[flag] += bool(getattr(status, flag))
            callback(data, frames, time_info, status)

        return on_audio

    def _alive(self, now: float) -> bool:
        try:
            if not self._stream.active:
                return False
        except _sounddevice().PortAudioError:
            return False
        if now - self._started_at < FIRST_AUDIO_GRACE_S:
            return True
        return self._heartbeat.last is not None and now - self._heartbeat.last < SILENT_STREAM_S

    def _reopen(self) -> None:
        sd = _sounddevice()
        for device in dict.fromkeys((self.name, None)):  # by name, else the system default
            try:
                self.open(device)
                self._start()
                return
            except (DeviceError, sd.PortAudioError) as error:
                log.debug("reopening the %s %r failed: %s", LABELS[self.which], device, error)
                self.close()

    def _report_flags(self, now: float) -> None:
        if now < self._next_flags_report:
            return
        new = {flag: count - self._flags_reported[flag] for flag, count in self._flags.items()}
        if any(new.values()):
            self._flags_reported = dict(self._flags)
            self._next_flags_report = now + FLAGS_REPORT_EVERY_S
            counts = ", ".join(f"{flag.replace('_', ' ')}: {count}" for flag, count in new.items() if count)
            log.warning('%s "%s" — %s; the audio had gaps or lost samples (is the machine overloaded?)',
                        LABELS[self.which], self.name, counts)
