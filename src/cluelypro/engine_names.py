"""The engine names users write in settings, defined once.

USE_LLM_ENGINE, ASR_ENGINE and USE_TTS_ENGINE are chains of these names; VAD_ENGINE and
SPEAKER_ENGINE pick one. config.py validates settings against them, the composition root
(engines.py) maps each to its factory (typed with these names, so a misspelt one is a type
error), and doctor labels the embedded engine of each chain with them.
"""

from __future__ import annotations

from typing import Literal, get_args

LlmEngineName = Literal["cerebras", "gemini", "openai", "compatible", "local"]
AsrEngineName = Literal["openai", "gigaam", "local"]
TtsEngineName = Literal["openai", "google", "piper", "rhvoice"]
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

EMBEDDED: dict[Stage, str] = {"llm": "local", "asr": "local", "tts": "rhvoice"}
"""The embedded engine of each stage: it ends every chain, so a failing cloud never loses a question."""
