"""Sound devices through sounddevice (PortAudio), with one-line errors a user can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cluelypro.config import BLOCK_SAMPLES


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


def open_input_stream(device: str | int | None, callback: Callable[..., None]) -> tuple[Any, int]:
    sd = _sounddevice()
    rate = _device_rate(sd, device, "input")
    try:
        stream = sd.InputStream(
            device=device, channels=1, samplerate=rate, dtype="float32",
            blocksize=BLOCK_SAMPLES * rate // 16_000, callback=callback,
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the microphone ({error}); is it busy or unplugged?") from None
    return stream, rate


def open_output_stream(device: str | int | None, rate: int, callback: Callable[..., None]) -> Any:
    sd = _sounddevice()
    _device_rate(sd, device, "output")
    try:
        return sd.OutputStream(
            device=device, channels=1, samplerate=rate, dtype="float32", callback=callback,
            blocksize=rate // 50, latency="low",
        )
    except sd.PortAudioError as error:
        raise DeviceError(f"cannot open the earpiece output ({error}); is it busy or unplugged?") from None
