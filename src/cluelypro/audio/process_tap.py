"""The other side of a call on macOS 14.2+: a Core Audio process tap of everything the computer
plays, except this process — so the prompter's own earpiece is never heard as the call, whichever
output it plays on (no refusal is needed on this path, see loopback.refuse_own_output).

Through the `catap` library (MIT): a global tap that excludes our own Core Audio process object,
mixed down to mono, read through a private aggregate device that catap creates and destroys; its
buffers come to a catap worker thread as interleaved PCM bytes with their format. The first
recording makes macOS ask for the "System Audio Recording" permission of the app that runs
cluelypro (the terminal); without it Core Audio delivers zeros, which is warned about once.

Written from catap 0.6's documentation and source: macOS cannot run here. Only the pure parts
are tested (the buffer conversion, the version check, and the stream's lost/back and reopening
logic with a fake session); `open_catap_tap` and `tap_device`'s import of catap were only read.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from cluelypro.audio.devices import RETRY_EVERY_S, DeviceCallback, DeviceError
from cluelypro.audio.loopback import MACOS_HINT, Deliver, SystemDevice, ThreadedSource

log = logging.getLogger(__name__)

TAP_MIN_MACOS = (14, 2)  # AudioHardwareCreateProcessTap
TAP_NAME = "every app's sound but the prompter's (process tap)"
MAX_PENDING_BUFFERS = 512  # catap's queue to its worker (~5 s of 10 ms buffers) before it fails the capture
WAIT_S = 0.25  # how often the recording thread looks up from its session (and at close())
ZEROS_WARNING_AFTER_S = 30.0  # only zeros for this long: perhaps the permission is missing
PERMISSION = (
    "System Settings → Privacy & Security → Screen & System Audio Recording → "
    '"System Audio Recording Only": allow the terminal app that runs cluelypro (macOS asks the first time), '
    "then restart that app"
)
INTEGER_SCALE = {16: 2.0**15, 24: 2.0**23, 32: 2.0**31}
_told_unknown = False  # "Core Audio does not know this process yet", said once a run


def macos_version(text: str) -> tuple[int, ...] | None:
    """ "14.2.1" → (14, 2, 1); None for "" (not macOS) or anything unreadable."""
    try:
        return tuple(int(part) for part in text.split(".")) if text else None
    except ValueError:
        return None


def tap_supported(version: str) -> bool:
    """Whether macOS `version` (platform.mac_ver()[0]) has Core Audio process taps."""
    parsed = macos_version(version)
    return parsed is not None and parsed >= TAP_MIN_MACOS


def tap_device(version: str | None = None) -> SystemDevice:
    """The process tap as the call's source, if this Mac can record one: else a one-line
    DeviceError saying what to do (update macOS, install catap, or use BlackHole)."""
    version = platform.mac_ver()[0] if version is None else version
    if not tap_supported(version):
        raise DeviceError(
            f"macOS {version or '?'} has no Core Audio process tap (14.2 or newer): update macOS, or {MACOS_HINT}"
        )
    try:
        importlib.import_module("catap")
    except ImportError as error:
        missing = getattr(error, "name", None) == "catap"
        why = "is not installed" if missing else f"cannot be loaded ({error})"
        raise DeviceError(
            f"the system audio of a call is recorded with the catap package, which {why}: "
            f"pip install catap (Python 3.11+), or {MACOS_HINT}"
        ) from None
    return SystemDevice(TAP_NAME, kind="tap")


def to_mono(data: bytes, frame_count: int, stream_format: Any) -> np.ndarray:
    """A catap AudioBuffer's bytes as mono float32 in [-1, 1): interleaved little-endian PCM,
    float32 or signed 16/24/32-bit integers (the formats catap accepts), channels averaged.
    `stream_format` has catap AudioStreamFormat's `num_channels`, `bits_per_sample` and
    `sample_type` ("float" or "signed_integer")."""
    channels, bits, kind = stream_format.num_channels, stream_format.bits_per_sample, stream_format.sample_type
    if channels < 1:
        raise ValueError(f"a buffer with {channels} channels")
    width = bits // 8
    size = min(frame_count, len(data) // (channels * width)) * channels * width  # whole frames only
    raw = memoryview(data)[:size]
    samples: np.ndarray
    if kind == "float" and bits == 32:
        samples = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif kind == "signed_integer" and bits in (16, 32):
        samples = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float32) / np.float32(INTEGER_SCALE[bits])
    elif kind == "signed_integer" and bits == 24:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        unsigned = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        signed = np.where(unsigned >= 1 << 23, unsigned - (1 << 24), unsigned)
        samples = signed.astype(np.float32) / np.float32(INTEGER_SCALE[24])
    else:
        raise ValueError(f"unsupported tap format: {bits}-bit {kind}")
    if channels == 1:
        return samples
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)


# --- the recording -------------------------------------------------------------------------------


class TapSession(Protocol):
    """One recording of the tap (catap: a RecordingSession); `ProcessTapStream` opens a new one
    whenever the last one failed."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def failed(self, timeout: float) -> bool:
        """Wait up to `timeout` s; True once the capture has failed."""
        ...

    def outdated(self) -> bool:
        """True when a new session would be better than this working one (our own process could
        not be excluded when it opened, and now can)."""
        ...


TapOpener = Callable[[Callable[[Any], None]], TapSession]
"""Makes a session (not started) that hands each buffer (a catap AudioBuffer) to the callback."""


class ProcessTapStream(ThreadedSource):
    """The process tap, as LoopbackStream is the loopback on Linux and Windows: the thread opens a
    session and waits on it; when the capture fails (catap: a format change of the output, an
    overflow of its queue, a lost aggregate device) it stops it and opens a new one every
    RETRY_EVERY_S. A tap delivers zeros, not nothing, while all is quiet; only zeros for
    ZEROS_WARNING_AFTER_S is warned about once (the permission may be missing)."""

    thread_name = "system-audio-tap"

    def __init__(
        self, device: SystemDevice, deliver: Deliver, on_device: DeviceCallback, opener: TapOpener | None = None
    ) -> None:
        super().__init__(device.name, deliver, on_device)
        self._opener = opener or open_catap_tap
        self._first_block: float | None = None
        self._sound_heard = False  # any sample that is not zero
        self._zeros_warned = False
        self._errors_told: set[str] = set()

    def check(self) -> None:
        super().check()
        self._warn_if_only_zeros(time.monotonic())

    def _warn_if_only_zeros(self, now: float) -> None:
        first = self._first_block
        if self._sound_heard or self._zeros_warned or first is None or now - first < ZEROS_WARNING_AFTER_S:
            return
        self._zeros_warned = True
        log.warning(
            "the process tap has delivered only silence for %.0f s; if the call was audible, macOS does not "
            "let this app record system audio: %s",
            now - first,
            PERMISSION,
        )

    def _record(self) -> None:
        while not self._stop.is_set():
            session: TapSession | None = None
            failed = True
            try:
                session = self._opener(self._hand_on)
                session.start()
                self._opened_at, self._failed = time.monotonic(), False
                while not self._stop.is_set():
                    if session.failed(WAIT_S):
                        log.debug("system audio %s: the capture failed", self.name)
                        break
                    if session.outdated():
                        log.debug("system audio %s: reopened to leave this process's own sound out", self.name)
                        failed = False
                        break
            except Exception as error:  # noqa: BLE001 - any failure of Core Audio or catap: reopen
                self._tell(error)
            finally:
                if session is not None:
                    self._end(session)
            if self._stop.is_set():
                return
            if failed:
                self._failed = True
                self._stop.wait(RETRY_EVERY_S)

    def _end(self, session: TapSession) -> None:
        try:
            session.stop()  # a failed capture raises here, with catap's detailed reason
        except Exception as error:  # noqa: BLE001 - the session is done with either way
            if not self._stop.is_set():
                self._tell(error)

    def _tell(self, error: Exception) -> None:
        """A reason the tap failed: a warning the first time it is seen, then at debug level."""
        reason = " ".join(str(error).split()) or type(error).__name__
        if reason in self._errors_told:
            log.debug("system audio %s: %s", self.name, reason)
        else:
            self._errors_told.add(reason)
            log.warning("the process tap failed: %s", reason)

    def _hand_on(self, buffer: Any) -> None:
        """In catap's worker thread: one AudioBuffer, handed on as mono float32."""
        mono = to_mono(buffer.data, buffer.frame_count, buffer.format)
        if not len(mono):
            return
        arrived = time.monotonic()
        if self._first_block is None:
            self._first_block = arrived
        self._last_block = arrived
        if not self._sound_heard and mono.any():
            self._sound_heard = True
        self._deliver(mono, round(buffer.format.sample_rate), arrived)


class _CatapTap:
    """A catap RecordingSession of the system output without this process. Core Audio knows the
    process once it is an audio client (PortAudio makes it one when it starts, well before the tap
    opens); should it not yet, the tap opens without the exclusion and is reopened once it can."""

    def __init__(self, catap: Any, on_buffer: Callable[[Any], None]) -> None:
        global _told_unknown
        self._catap = catap
        own = catap.find_process_by_pid(os.getpid())
        self.excludes_self = own is not None
        self._next_look = time.monotonic() + RETRY_EVERY_S
        if own is None and not _told_unknown:
            _told_unknown = True
            log.warning("Core Audio does not know this process yet: until it does, the call may include the earpiece")
        self._session = catap.record_system_audio(
            exclude=[own] if own is not None else [],
            mono=True,
            on_buffer=on_buffer,
            max_pending_buffers=MAX_PENDING_BUFFERS,
        )

    def start(self) -> None:
        self._session.start()

    def stop(self) -> None:
        if self._session.is_recording or self._session.needs_cleanup:
            self._session.stop()

    def failed(self, timeout: float) -> bool:
        if not self._session.is_recording:
            return True
        return bool(self._session.wait_for_capture_failure(timeout))

    def outdated(self) -> bool:
        if self.excludes_self or time.monotonic() < self._next_look:
            return False
        self._next_look = time.monotonic() + RETRY_EVERY_S
        return self._catap.find_process_by_pid(os.getpid()) is not None


def open_catap_tap(on_buffer: Callable[[Any], None]) -> TapSession:
    """A session of the tap through catap (imported here: it exists on macOS only)."""
    return _CatapTap(importlib.import_module("catap"), on_buffer)
