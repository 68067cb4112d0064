"""Windows' own Russian voices (Microsoft Irina, Pavel) through SAPI 5, over comtypes.

comtypes is pure Python over ctypes (no compiled extension) and a dependency on Windows only
(`sys_platform == "win32"` in pyproject.toml). Each sentence is spoken by `SAPI.SpVoice` into a
`SAPI.SpMemoryStream` whose format is 22.05 kHz 16-bit mono, synchronously, and the stream's
bytes are the sentence's audio: nothing reaches a sound device, and no file is written.

The voice: SAPI_VOICE (a part of its name, e.g. "Pavel"), else the first Russian one (language
LCID 419). Both the SAPI 5 voices and, where the system lists them, the OneCore voices that
Settings → Time & language → Speech installs (registry Speech_OneCore) are searched; SAPI speaks
with a OneCore voice once given its token.

COM objects belong to the thread that made them: each thread that synthesises gets its own
SpVoice, in a multithreaded apartment it enters on first use.

The COM calls (`ComSapi`) were written from SAPI's documentation and have not been run on
Windows yet; the tests feed `SapiSynthesizer` a fake in their place.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cluelypro.packaged import ModelUnavailableError, ProgressCallback
from cluelypro.tts.system_voice import chunks, pcm16_samples, sentences, sound_file_samples

SAMPLE_RATE = 22_050
SAFT_22KHZ_16BIT_MONO = 22  # SpeechAudioFormatType
SVSF_IS_NOT_XML = 16  # SpeechVoiceSpeakFlags: speak "<" as it is, never as SAPI XML; synchronous
RUSSIAN_LCID = "419"
ONECORE_VOICES = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Speech_OneCore\Voices"
INSTALL_RUSSIAN_VOICE = (
    "install the Russian voice: Settings → Time & language → Speech → Manage voices / Add voices → "
    "Russian (Русский), then restart cluelypro"
)


@dataclass(frozen=True)
class SapiVoice:
    name: str  # the token's description, e.g. "Microsoft Irina Desktop - Russian"
    language: str  # SAPI's Language attribute: hexadecimal LCIDs, ";"-separated ("419")

    @property
    def russian(self) -> bool:
        return RUSSIAN_LCID in {code.strip().lower().lstrip("0") for code in self.language.split(";")}


class SapiBackend(Protocol):
    """The operating system's part: listing voices and speaking text into 16-bit PCM."""

    def voices(self) -> Sequence[SapiVoice]: ...

    def speak(self, text: str, voice: str, rate: int) -> bytes:
        """`text` in `voice` (a name from `voices`) at SAPI's `rate` (-10…10), as 22.05 kHz 16-bit
        little-endian mono PCM."""
        ...


def sapi_rate(speed: float) -> int:
    """TTS_SPEED as SAPI's rate: -10…10, where ±10 is about three times slower or faster."""
    return max(-10, min(10, round(10 * math.log(speed, 3))))


def choose_voice(voices: Sequence[SapiVoice], wanted: str, or_any_russian: bool = False) -> SapiVoice:
    """The voice whose name contains `wanted` (any case), or with `wanted` empty (or not found, if
    `or_any_russian`) the first Russian one."""
    if wanted:
        match = next((v for v in voices if wanted.lower() in v.name.lower()), None)
        if match is None and or_any_russian:
            return choose_voice(voices, "")
        if match is None:
            names = ", ".join(v.name for v in voices) or "none"
            raise ModelUnavailableError(f"SAPI has no voice named like {wanted!r} (SAPI_VOICE); voices here: {names}")
        return match
    russian = next((v for v in voices if v.russian), None)
    if russian is None:
        raise ModelUnavailableError(f"Windows has no Russian voice; {INSTALL_RUSSIAN_VOICE}")
    return russian


class SapiSynthesizer:
    def __init__(
        self, voice: str = "", speed: float = 1.0, backend: SapiBackend | None = None, or_any_russian: bool = False
    ) -> None:
        self.wanted = voice
        self.or_any_russian = or_any_russian
        self.speed = speed
        self.name = "sapi"
        self.sample_rate = SAMPLE_RATE
        self._backend = backend
        self._voice: SapiVoice | None = None

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._voice is not None:
            return
        if self._backend is None:
            self._backend = ComSapi()
        self._voice = choose_voice(self._backend.voices(), self.wanted, self.or_any_russian)
        self.name = f"sapi:{short_name(self._voice.name)}"
        if progress:
            progress(1, 1)

    def warm_up(self) -> None:
        for _ in self.synthesize("Прогрев синтеза речи."):
            pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.load()
        assert self._backend is not None and self._voice is not None
        for sentence in sentences(text):
            pcm = self._backend.speak(sentence, self._voice.name, sapi_rate(self.speed))
            audio = sound_file_samples(pcm, SAMPLE_RATE) if pcm[:4] == b"RIFF" else pcm16_samples(pcm)
            yield from chunks(audio, SAMPLE_RATE)


def short_name(description: str) -> str:
    """ "Microsoft Irina Desktop - Russian" -> "Irina"."""
    words = description.split(" - ")[0].split()
    words = [w for w in words if w not in ("Microsoft", "Desktop")]
    return words[0] if words else description


class ComSapi:
    """SAPI 5 through comtypes, one SpVoice per thread. Windows only; not run on Linux."""

    def __init__(self) -> None:
        try:
            import comtypes.client  # noqa: F401
        except ImportError:
            raise ModelUnavailableError(
                "comtypes is not installed; pip install comtypes (scripts/dev.py setup installs it on Windows)"
            ) from None
        self._local = threading.local()

    def _objects(self) -> tuple[Any, dict[str, Any]]:
        """This thread's SpVoice and voice tokens by name."""
        if getattr(self._local, "voice", None) is None:
            import comtypes
            import comtypes.client

            try:
                comtypes.CoInitializeEx(comtypes.COINIT_MULTITHREADED)
            except OSError:  # this thread is in an apartment already (comtypes enters one on import)
                pass
            voice = comtypes.client.CreateObject("SAPI.SpVoice")
            self._local.voice, self._local.tokens = voice, _tokens(voice)
        return self._local.voice, self._local.tokens

    def voices(self) -> list[SapiVoice]:
        _, tokens = self._objects()
        return [SapiVoice(name, _attribute(token, "Language")) for name, token in tokens.items()]

    def speak(self, text: str, voice: str, rate: int) -> bytes:
        import comtypes.client

        speaker, tokens = self._objects()
        speaker.Voice = tokens[voice]
        speaker.Rate = rate
        stream = comtypes.client.CreateObject("SAPI.SpMemoryStream")
        audio_format = comtypes.client.CreateObject("SAPI.SpAudioFormat")
        audio_format.Type = SAFT_22KHZ_16BIT_MONO
        stream.Format = audio_format
        speaker.AudioOutputStream = stream
        speaker.Speak(text, SVSF_IS_NOT_XML)
        return bytes(stream.GetData())


def _tokens(voice: Any) -> dict[str, Any]:
    """SAPI 5's voice tokens, then the OneCore ones (where the system has that category)."""
    import comtypes.client

    collections = [voice.GetVoices()]
    try:
        category = comtypes.client.CreateObject("SAPI.SpObjectTokenCategory")
        category.SetId(ONECORE_VOICES, False)
        collections.append(category.EnumerateTokens())
    except Exception:  # no OneCore voices on this system (COMError, OSError): SAPI 5's only
        pass
    tokens: dict[str, Any] = {}
    for collection in collections:
        for index in range(collection.Count):
            token = collection.Item(index)
            tokens.setdefault(token.GetDescription(), token)
    return tokens


def _attribute(token: Any, name: str) -> str:
    try:
        return str(token.GetAttribute(name) or "")
    except Exception:  # a token without the attribute raises a COMError
        return ""
