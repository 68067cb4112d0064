"""The engine names users write in settings, defined once.

USE_LLM_ENGINE, ASR_ENGINE and USE_TTS_ENGINE are chains of these names; VAD_ENGINE and
SPEAKER_ENGINE pick one. config.py validates settings against them, the composition root
(engines.py) maps each to its factory (typed with these names, so a misspelt one is a type
error), and doctor labels the embedded engine of each chain with them.
"""

from __future__ import annotations

import sys
from typing import Literal, get_args

LlmEngineName = Literal["cerebras", "gemini", "openai", "compatible", "local"]
AsrEngineName = Literal["openai", "gigaam", "local"]
TtsEngineName = Literal["openai", "google", "piper", "rhvoice", "sapi", "say"]
VadEngineName = Literal["silero", "webrtc"]
SpeakerEngineName = Literal["campplus", "ecapa", "eres2netv2"]

Stage = Literal["asr", "llm", "tts"]
STAGES: tuple[Stage, ...] = get_args(Stage)

CHAIN_ENGINES: dict[Stage, tuple[str, ...]] = {
    "llm": get_args(LlmEngineName),
    "asr": get_args(AsrEngineName),
    "tts": get_args(TtsEngineName),
}
"""The engines a stage's chain may name, in no particular order."""

PLATFORM_TTS: dict[str, str] = {"linux": "rhvoice", "win32": "sapi", "darwin": "say"}
"""The embedded TTS engine per `sys.platform`: RHVoice where its Debian libraries are set up,
else the system's own Russian voice (SAPI on Windows, `say` on macOS)."""


def embedded_engine(stage: Stage, platform: str | None = None) -> str:
    """The embedded engine of a stage on `platform` (default: this one's `sys.platform`): it ends
    every chain, so a failing cloud never loses a question."""
    if stage != "tts":
        return "local"
    platform = sys.platform if platform is None else platform
    return next((name for prefix, name in PLATFORM_TTS.items() if platform.startswith(prefix)), "rhvoice")


def default_tts_chain(platform: str | None = None) -> list[str]:
    """USE_TTS_ENGINE's default: the cloud voices, then the embedded one; on Windows and macOS
    then Piper, used where a Piper voice has been pulled (`cluelypro models pull piper-ru-irina`)."""
    embedded = embedded_engine("tts", platform)
    return ["openai", "google", embedded, *(["piper"] if embedded != "rhvoice" else [])]


EMBEDDED: dict[Stage, str] = {stage: embedded_engine(stage) for stage in STAGES}
"""The embedded engine of each stage on this platform."""
