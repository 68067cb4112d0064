"""Sound devices through sounddevice (PortAudio), with one-line errors a user can act on, and
streams that outlive their device: a lost device is reported and reopened when it returns."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25  # how often the event loop looks at a stream's health
SILENT_STREAM_S = 1.0  # a running stream whose callback has not run for this long is lost
FIRST_AUDIO_GRACE_S = 5.0  # a stream starting may deliver late or haltingly (a device waking, a null sink: ~2 s)
SETTLED_AFTER_S = 0.5  # blocks spanning this long: the stream flows, and its grace is over
RETRY_EVERY_S = 2.0  # reopen attempts while a device is lost
FLAGS_REPORT_EVERY_S = 30.0  # at most one warning line per stream about overflows or underruns
HUNG_AFTER_S = 5.0  # a reopening not returned by then is hung (see _Recovery): abandoned, and tried anew
MAX_HUNG_REOPENINGS = 5  # then the device is given up on (each hung one keeps a thread for good)
CLOSE_WAIT_S = 2.0  # how long closing a stream for good may hold up the exit

DeviceCallback = Callable[[str, str, str], None]
"""Told (which, state, name): which is "input", "output" or "system" (call mode), state "lost" or "back"."""

Opener = Callable[[str | int | None, Callable[..., None]], tuple[Any, str]]
"""Opens a stream (not started) on a device with a callback; returns it and the device's name."""

LABELS = {"input": "microphone", "output": "earpiece", "system": "system audio"}
WATCHED_FLAGS = {"input": ("input_overflow", "input_underflow"), "output": ("output_underflow",)}

# Streams this process opened: PortAudio's device list may only be refreshed while none is open.
_streams: weakref.WeakSet[Any] = weakref.WeakSet()
# Opening (with its refresh of PortAudio) happens in the microphone's and the earpiece's recovery
# threads too: one at a time, so one never restarts PortAudio under the other's opening.
_opening = threading.Lock()


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
    with _opening:
        return _open_input_stream(_sounddevice(), device, callback)


def _open_input_stream(sd: Any, device: str | int | None, callback: Callable[..., None]) -> tuple[Any, str]:
    _refresh_device_list(sd)
    rate = _device_rate(sd, device, "input")
    try:
        stream = sd.InputStream(
            device=device,
            channels=1,
            samplerate=rate,
            dtype="float32",
            blocksize=BLOCK_SAMPLES * rate // SAMPLE_RATE,
            callback=callback,
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the microphone ({error}); is it busy or unplugged?") from None
    _streams.add(stream)
    return stream, _device_name(sd, device, "input")


def open_output_stream(device: str | int | None, callback: Callable[..., None]) -> tuple[Any, str]:
    """A 16 kHz stream, the pipeline's own rate (PortAudio resamples if the device needs it)."""
    with _opening:
        return _open_output_stream(_sounddevice(), device, callback)


def _open_output_stream(sd: Any, device: str | int | None, callback: Callable[..., None]) -> tuple[Any, str]:
    rate = SAMPLE_RATE
    _refresh_device_list(sd)
    _device_rate(sd, device, "output")
    try:
        stream = sd.OutputStream(
            device=device,
            channels=1,
            samplerate=rate,
            dtype="float32",
            callback=callback,
            blocksize=rate // 50,
            latency="low",
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the earpiece output ({error}); is it busy or unplugged?") from None
    _streams.add(stream)
    return stream, _device_name(sd, device, "output")


class _Heartbeat:
    """When one stream's callback last ran: written by its PortAudio thread, read by the event loop."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def beat(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    def settled(self) -> bool:
        """Blocks have come for SETTLED_AFTER_S: the stream flows (it is no longer starting)."""
        return self.first is not None and self.last is not None and self.last - self.first >= SETTLED_AFTER_S


class _Opened:
    """A stream opened (and maybe started), with its device's name and its callback's heartbeat."""

    def __init__(self, stream: Any, name: str, heartbeat: _Heartbeat, started_at: float = 0.0) -> None:
        self.stream, self.name, self.heartbeat, self.started_at = stream, name, heartbeat, started_at


class _Recovery:
    """Closing a lost stream and opening the next one, in a thread of its own, because it can hang.

    PortAudio 19.6 (Debian 12's) never returns from starting a callback stream whose device went
    away a moment before: its callback thread fails before it wakes the caller, who then waits on
    a timeout reckoned on the wrong clock (seen with ALSA's pulse plugin, a sink unloaded). The
    event loop that runs the prompter must not wait with it: a recovery not finished within
    HUNG_AFTER_S is `abandon`ed, and should it ever finish, its stream is closed there and then.
    """

    def __init__(self, work: Callable[[], _Opened | None], in_thread: bool, started_at: float) -> None:
        self.started_at = started_at
        self.result: _Opened | None = None
        self.finished = False
        self._abandoned = False
        self._lock = threading.Lock()
        if in_thread:
            threading.Thread(target=self._run, args=(work,), name="device-recovery", daemon=True).start()
        else:
            self._run(work)

    def abandon(self) -> bool:
        """Let it go unless it has just finished (then False: its result is there to be used)."""
        with self._lock:
            self._abandoned = not self.finished
            return self._abandoned

    def _run(self, work: Callable[[], _Opened | None]) -> None:
        result = None
        try:
            result = work()
        except Exception:  # a thread's error must not vanish; the next attempt retries
            log.exception("reopening a sound device failed")
        with self._lock:
            self.result, self.finished = result, True
            if not self._abandoned or result is None:
                return
        _close_stream(result.stream)  # too late: another stream has been, or will be, opened instead


def _keep_portaudio_at_exit_from_aborting() -> None:
    """With a start hung in PortAudio, its shutdown at exit (sounddevice's exit handler) fails an
    assertion on the hung stream's mutex and aborts the process: leave the closing to the OS."""
    atexit.unregister(_sounddevice()._exit_handler)


def _close_stream(stream: Any) -> None:
    try:
        stream.abort()  # closing a stream that still runs can hang
        stream.close()
    except Exception as error:  # noqa: BLE001 - a dead device's stream may fail to close; it is gone either way
        log.debug("closing a stream failed: %s", error)


class WatchedStream:
    """One PortAudio stream, watched from the event loop (`check` every CHECK_EVERY_S).

    Lost: the stream stopped (PortAudio gave up on the device), a call on it failed, or its
    callback has not run for SILENT_STREAM_S (a driver that keeps a dead stream "active"). A loss
    is told once; a reopening is tried every RETRY_EVERY_S, the same device by name first, else
    the system default, and "back" is told once the reopened stream delivers. Closing the lost
    stream and reopening run in a thread (`_Recovery`), so `check` never blocks; one hung for
    HUNG_AFTER_S is abandoned with a warning, and after MAX_HUNG_REOPENINGS the device is given
    up on with an error line. Overflow and underrun flags are counted and logged at most every
    FLAGS_REPORT_EVERY_S.
    """

    def __init__(
        self,
        which: str,
        opener: Opener,
        callback: Callable[..., None],
        on_device: DeviceCallback,
        monotonic: Callable[[], float] = time.monotonic,
        recover_in_thread: bool = True,
    ) -> None:
        self.which = which
        self.name = ""
        self.samplerate = 0  # of the current stream, read by its callback
        self._opener = opener
        self._callback = callback
        self._on_device = on_device
        self._monotonic = monotonic
        self._recover_in_thread = recover_in_thread
        self._stream: Any = None
        self._heartbeat = _Heartbeat()
        self._started_at = 0.0
        self._lost = False
        self._closed = False
        self._recovery: _Recovery | None = None
        self._hung_reopenings = 0
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
        self._install(self._open(device))

    def start(self) -> None:
        """Start the stream opened; one that fails to start is found lost by the next check."""
        try:
            self._started_at = self._start(self._stream)
        except _sounddevice().PortAudioError as error:
            log.debug("starting the %s failed: %s", LABELS[self.which], error)
            self._abandon()

    def check(self) -> None:
        now = self._monotonic()
        if not self._recovered(now):
            return
        if self._stream is not None and self._alive(now):
            if self._lost and self._heartbeat.last is not None:
                self._lost = False
                self._on_device(self.which, "back", self.name)
            self._report_flags(now)
            return
        lost_stream = self._stream
        self._stream = None
        if not self._lost:
            self._lost = True
            self._on_device(self.which, "lost", self.name)
        reopen = now >= self._next_attempt and self._hung_reopenings < MAX_HUNG_REOPENINGS
        if reopen:
            self._next_attempt = now + RETRY_EVERY_S
        if reopen or lost_stream is not None:
            self._recovery = _Recovery(lambda: self._replace(lost_stream, reopen), self._recover_in_thread, now)
            self._recovered(now)  # done at once when not run in a thread

    def close(self) -> None:
        """For good (the session ends): waits at most CLOSE_WAIT_S for a stream that will not close."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is None:
            return
        if not self._recover_in_thread:
            _close_stream(stream)
            return
        closing = threading.Thread(target=_close_stream, args=(stream,), name="device-close", daemon=True)
        closing.start()
        closing.join(CLOSE_WAIT_S)

    def _recovered(self, now: float) -> bool:
        """No reopening under way (one that finished is installed, one hung is abandoned)."""
        recovery = self._recovery
        if recovery is None:
            return True
        if not recovery.finished:
            if now - recovery.started_at < HUNG_AFTER_S or not recovery.abandon():
                return False
            self._recovery = None
            self._hung_reopenings += 1
            _keep_portaudio_at_exit_from_aborting()
            self._tell_hung()
            return True
        self._recovery = None
        if recovery.result is not None:
            self._install(recovery.result)
        return True

    def _tell_hung(self) -> None:
        label = f'{LABELS[self.which]} "{self.name}"'
        if self._hung_reopenings < MAX_HUNG_REOPENINGS:
            log.warning(
                "%s: the sound system has not answered a reopening for %.0f s (a PortAudio hang); trying anew",
                label,
                HUNG_AFTER_S,
            )
        else:
            log.error(
                "%s: the sound system hung %d times reopening it; giving up on it — restart cluelypro "
                "once the device is back",
                label,
                self._hung_reopenings,
            )

    def _replace(self, lost_stream: Any, reopen: bool) -> _Opened | None:
        """In the recovery thread: close the lost stream, then try to open and start the next."""
        if lost_stream is not None:
            _close_stream(lost_stream)
        if not reopen or self._closed:
            return None
        sd = _sounddevice()
        for device in dict.fromkeys((self.name, None)):  # by name, else the system default
            opened = None
            try:
                opened = self._open(device)
                self.samplerate = int(opened.stream.samplerate)  # before its callback first runs
                opened.started_at = self._start(opened.stream)
            except (DeviceError, sd.PortAudioError) as error:
                log.debug("reopening the %s %r failed: %s", LABELS[self.which], device, error)
                if opened is not None:
                    _close_stream(opened.stream)
                continue
            if self._closed:  # the session ended meanwhile
                _close_stream(opened.stream)
                return None
            return opened
        return None

    def _open(self, device: str | int | None) -> _Opened:
        heartbeat = _Heartbeat()
        stream, name = self._opener(device, self._beating(heartbeat))
        return _Opened(stream, name, heartbeat)

    def _install(self, opened: _Opened) -> None:
        self._stream, self.name, self._heartbeat = opened.stream, opened.name, opened.heartbeat
        self._started_at = opened.started_at
        self.samplerate = int(opened.stream.samplerate)

    def _start(self, stream: Any) -> float:
        stream.start()
        return self._monotonic()

    def _abandon(self) -> None:
        """A stream that failed: closed where it cannot hold up the event loop; `check` reopens."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._recovery = _Recovery(
                lambda: self._replace(stream, reopen=False), self._recover_in_thread, self._monotonic()
            )
            self._recovered(self._monotonic())

    def _beating(self, heartbeat: _Heartbeat) -> Callable[..., None]:
        callback, monotonic, flags = self._callback, self._monotonic, self._flags

        def on_audio(data: Any, frames: int, time_info: Any, status: Any) -> None:
            heartbeat.beat(monotonic())
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
        # A stream starting (a device waking from suspend, a null sink just loaded) may deliver late
        # or haltingly — a block, then a second of nothing: the grace covers it until it flows. Once
        # it flows, a second of nothing is a loss, however soon after the start (SPEC §5: 2 s).
        if not self._heartbeat.settled() and now - self._started_at < FIRST_AUDIO_GRACE_S:
            return True
        last = self._heartbeat.last
        return last is not None and now - last < SILENT_STREAM_S

    def _report_flags(self, now: float) -> None:
        if now < self._next_flags_report:
            return
        new = {flag: count - self._flags_reported[flag] for flag, count in self._flags.items()}
        if any(new.values()):
            self._flags_reported = dict(self._flags)
            self._next_flags_report = now + FLAGS_REPORT_EVERY_S
            counts = ", ".join(f"{flag.replace('_', ' ')}: {count}" for flag, count in new.items() if count)
            log.warning(
                '%s "%s" — %s; the audio had gaps or lost samples (is the machine overloaded?)',
                LABELS[self.which],
                self.name,
                counts,
            )
