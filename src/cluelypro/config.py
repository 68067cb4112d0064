"""One settings object for the whole product.

Sources, lowest precedence first (SPEC §3): TOML file (`cluelypro.toml` in the working folder,
or the file named by CLUELYPRO_CONFIG), environment variables, `.env`, CLI flags. Keys keep the
original product's names (ASR_MODEL, VOICE_THRESHOLD, …); field names are their lower-case form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SAMPLE_RATE = 16_000
"""The pipeline's internal audio rate: 16 kHz mono float32."""

BLOCK_SAMPLES = 512
"""32 ms: the block a microphone or file replay delivers, and Silero's frame."""


def _toml_path() -> Path:
    return Path(os.environ.get("CLUELYPRO_CONFIG", "cluelypro.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # VAD segmenter (SPEC §2.2)
    vad_engine: Literal["silero", "webrtc"] = "silero"
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Silero speech probability")
    webrtc_aggressiveness: int = Field(2, ge=0, le=3)
    preroll_ms: int = Field(160, ge=0)
    min_segment_ms: int = Field(500, ge=0)
    end_silence_ms: int = Field(400, ge=32, description="silence that ends an utterance")
    max_segment_s: float = Field(25.0, gt=1.0, description="force-cut a monologue this long")
    noise_flatness: float = Field(
        0.4, ge=0.0, le=1.0, description="reject segments flatter than this (white noise ≈ 0.56, speech < 0.15)"
    )

    # ASR
    asr_model: str = Field("base", description="faster-whisper model name or path; 'base' is embedded")
    asr_language: str = "ru"
    asr_threads: int = Field(2, ge=1)

    # LLM
    llm_model: str = Field(
        "qwen2.5-coder-1.5b", description="embedded model name or a path to any GGUF file"
    )
    llm_threads: int = Field(1, ge=1, description="generation threads (2 spin-wait against the ASR)")
    llm_prompt_threads: int = Field(2, ge=1, description="threads that read the prompt (the ASR is idle then)")
    llm_max_tokens: int = Field(180, ge=16)
    llm_grammar: bool = Field(False, description="constrain output to numbered theses (GBNF)")
    llm_context_tokens: int = Field(2048, ge=512)

    # TTS
    tts_voice: str = "anna"
    tts_speed: float = Field(1.0, gt=0.2, lt=4.0)

    # Speaker gate
    speaker_engine: Literal["campplus", "ecapa", "eres2netv2"] = Field(
        "campplus", description="campplus is embedded; ecapa and eres2netv2 download their weights"
    )
    voice_threshold: float = Field(0.55, ge=-1.0, le=1.0, description="cosine score at or above which speech is the user's own")
    voice_profile: str | None = Field(None, description="profile to use instead of the active one")

    # Prompter (SPEC §2.5, §2.7)
    question_filter_mode: Literal["heuristic", "llm"] = "heuristic"
    commentary_mode: bool = False
    advance_policy: Literal["repeat", "until-said"] = "repeat"
    thesis_repeats: int = Field(2, ge=1, description="times each thesis is spoken (repeat policy)")
    thesis_repeat_sec: float = Field(10.0, gt=0, description="until-said: repeat the thesis this often")
    deepening_max_depth: int = Field(7, ge=0, description="deepening rounds after the answer")
    use_headphones: bool = Field(True, description="false: the microphone is muted while the prompter speaks")
    speaker_tail_ms: int = Field(300, ge=0, description="how long the microphone stays muted after playback")
    context_window_s: float = Field(30.0, ge=0, description="the other speaker's recent speech passed as context")

    # Latency
    early_speech: bool = Field(True, description="start speaking thesis 1 from its first clause")
    speculative_asr_ms: int = Field(
        200, ge=0, description="start ASR after this much silence, before END_SILENCE_MS confirms the end (0: off)"
    )
    speculative_llm: bool = Field(True, description="also start the LLM on that pause when the text is a question")

    # Pipeline
    queue_size: int = Field(8, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, dotenv_settings, env_settings, toml)


def load_settings(**overrides: object) -> Settings:
    """Settings from every source, with CLI flags (non-None `overrides`) on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
