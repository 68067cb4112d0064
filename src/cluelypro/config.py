"""One settings object for the whole product.

Sources, lowest precedence first (SPEC §3): TOML file (`cluelypro.toml` in the working folder,
or the file named by CLUELYPRO_CONFIG), `.env` in the working folder, environment variables, CLI
flags. The real environment beats `.env`, as everywhere else: a cloned folder's `.env` cannot
redirect an endpoint the environment sets. Keys keep the original product's names (ASR_MODEL,
VOICE_THRESHOLD, …); field names are their lower-case form.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cluelypro import secrets
from cluelypro.engine_names import CHAIN_ENGINES, SpeakerEngineName, Stage, VadEngineName, default_tts_chain

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""The pipeline's internal audio rate: 16 kHz mono float32."""

BLOCK_SAMPLES = 512
"""32 ms: the block a microphone or file replay delivers, and Silero's frame."""


EngineChain = Annotated[list[str], NoDecode]
"""Engine names in order of preference: "cerebras,gemini,local" in the environment, a list in TOML."""


DOTENV = Path(".env")
ENDPOINT_SETTINGS = (
    "openai_base_url",
    "gemini_base_url",
    "cerebras_base_url",
    "compatible_base_url",
    "google_tts_endpoint",
)


class SettingsFileError(RuntimeError):
    """`cluelypro.toml` or `.env` cannot be read; the message is one line a user can act on."""


def _toml_path() -> Path:
    return Path(os.environ.get("CLUELYPRO_CONFIG", "cluelypro.toml"))


def _read_settings_file(path: Path, read: Callable[[], PydanticBaseSettingsSource]) -> PydanticBaseSettingsSource:
    """The source `read` makes from `path`, or SettingsFileError naming the file and the fault."""
    try:
        return read()
    except UnicodeDecodeError as error:
        raise SettingsFileError(
            f"cannot read {path}: it is not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"at offset {error.start}); save it as UTF-8"
        ) from None
    except (ValueError, OSError) as error:  # tomllib's TOMLDecodeError is a ValueError
        raise SettingsFileError(f"cannot read {path}: {error}") from None


def is_loopback(host: str) -> bool:
    """A loopback name or address: localhost, 127.0.0.0/8, ::1."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_endpoint(url: str) -> str:
    """`url` if it is https, or plain http to this machine; ValueError otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ValueError(
        f"must be an https:// URL (plain http:// only to this machine: 127.0.0.0/8, ::1, "
        f"localhost), not {parts.scheme or '(no scheme)'}://{host or '(no host)'}"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # VAD segmenter (SPEC §2.2)
    vad_engine: VadEngineName = "silero"
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Silero speech probability")
    webrtc_aggressiveness: int = Field(2, ge=0, le=3)
    preroll_ms: int = Field(160, ge=0)
    min_segment_ms: int = Field(500, ge=0)
    end_silence_ms: int = Field(400, ge=32, description="silence that ends an utterance")
    max_segment_s: float = Field(25.0, gt=1.0, description="force-cut a monologue this long")
    noise_flatness: float = Field(
        0.4, ge=0.0, le=1.0, description="reject segments flatter than this (white noise ≈ 0.56, speech < 0.15)"
    )
    # Learned end of turn (Smart Turn), asked at the speculative pause (SPECULATIVE_ASR_MS)
    turn_model: Literal["smart-turn", "off"] = Field(
        "smart-turn", description="at a pause, a model decides if the question is complete (off: the fixed window)"
    )
    turn_complete_at: float = Field(
        0.95, ge=0.0, le=1.0, description="the turn model's probability from which the question ends at once"
    )
    turn_incomplete_below: float = Field(
        0.5, ge=0.0, le=1.0, description="below it the speaker is only pausing: the pause may last TURN_HOLD_MS"
    )
    turn_hold_ms: int = Field(1200, ge=0, description="the silence that ends an utterance at a pause held so")

    # ASR
    asr_model: str = Field("base", description="faster-whisper model name or path; 'base' is embedded")
    asr_language: str = "ru"
    asr_threads: int = Field(1, ge=1, description="CTranslate2 threads (1 was faster than 2 on 2 cores)")
    asr_beam_size: int = Field(
        1, ge=1, le=10, description="beam width of the embedded Whisper (5: more accurate, slower)"
    )
    asr_prompt: str | None = Field(
        None, description="text Whisper reads as what came before; unset: an exam prompt for ru, '' for none"
    )
    gigaam_model: str = Field(
        "gigaam-v3-ctc", description="gigaam engine: a pulled catalogue name or a folder (cluelypro models pull)"
    )

    # LLM
    llm_model: str = Field("qwen2.5-coder-1.5b", description="embedded model name or a path to any GGUF file")
    llm_threads: int = Field(2, ge=1, description="generation threads")
    llm_prompt_threads: int = Field(2, ge=1, description="threads that read the prompt")
    llm_max_tokens: int = Field(180, ge=16)
    llm_grammar: bool = Field(False, description="constrain output to numbered theses (GBNF)")
    llm_context_tokens: int = Field(2048, ge=512)

    # TTS
    tts_voice: str = "anna"
    tts_speed: float = Field(1.0, gt=0.2, lt=4.0)
    piper_voice: str = Field(
        "piper-ru-irina", description="piper engine: a pulled catalogue name or a voice .onnx (cluelypro models pull)"
    )
    sapi_voice: str = Field("", description="sapi engine (Windows): part of a voice's name; empty: the first Russian")
    say_voice: str = Field("Milena", description="say engine (macOS): the voice's name, as `say -v '?'` lists it")

    # Speaker gate
    speaker_engine: SpeakerEngineName = Field(
        "campplus", description="campplus is embedded; ecapa and eres2netv2 download their weights"
    )
    voice_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="cosine score at or above which speech is the user's own; unset: the profile's",
    )
    voice_profile: str | None = Field(None, description="profile to use instead of the active one")

    # Prompter (SPEC §2.5, §2.7)
    question_filter_mode: Literal["heuristic", "all"] = Field(
        "heuristic", description="all: every utterance goes to the answering LLM (formerly 'llm')"
    )
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
        120, ge=0, description="start ASR after this much silence, before END_SILENCE_MS confirms the end (0: off)"
    )
    speculative_llm: bool = Field(True, description="also start the LLM on that pause when the text is a question")

    # Pipeline
    queue_size: int = Field(8, ge=1)

    # Engine chains: each engine in turn until one answers; the embedded one ends every chain
    use_llm_engine: EngineChain = Field(["cerebras", "gemini", "openai", "local"], description="LLM chain")
    asr_engine: EngineChain = Field(["openai", "local"], description="ASR chain")
    use_tts_engine: EngineChain = Field(
        default_factory=default_tts_chain, description="TTS chain (the embedded voice: rhvoice, sapi or say)"
    )
    llm_ttft_budget_s: float = Field(1.5, gt=0, description="no first token this soon: the next LLM answers")
    asr_timeout_s: float = Field(2.0, gt=0, description="no transcript this soon: the next ASR engine")
    tts_first_audio_budget_s: float = Field(1.5, gt=0, description="no first audio this soon: the next TTS engine")
    engine_watchdog_s: float = Field(
        60.0, gt=0, description="an engine (the last of a chain too) silent this long, to every call, counts as hung"
    )
    provider_cooldown_s: float = Field(
        30.0, ge=0, description="a failed engine is skipped this long, doubling per failure"
    )
    provider_max_cooldown_s: float = Field(300.0, ge=0, description="the longest rest of a failing engine")

    # Cloud engines: keys (never logged) and endpoints, with the original names
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = Field(None, description="another OpenAI-protocol endpoint for the openai engines")
    openai_llm_model: str = "gpt-4o-mini"
    openai_asr_model: str = Field("gpt-4o-mini-transcribe", description="or whisper-1")
    openai_tts_model: str = "tts-1"
    openai_tts_voice: str = "alloy"
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    cerebras_api_key: SecretStr | None = None
    cerebras_model: str = "gpt-oss-120b"
    cerebras_reasoning_effort: Literal["none", "low", "medium", "high"] | None = Field(
        "low", description="Cerebras' models reason before the first token of text: keep it short"
    )
    cerebras_base_url: str | None = None
    compatible_base_url: str | None = Field(None, description="any OpenAI-compatible server: vLLM, Ollama, llama.cpp")
    compatible_model: str = "default"
    compatible_api_key: SecretStr | None = None
    google_application_credentials: Path | None = Field(None, description="service-account JSON for Google Cloud TTS")
    google_tts_voice: str = "ru-RU-Wavenet-D"
    google_tts_endpoint: str | None = None

    @field_validator(*ENDPOINT_SETTINGS)
    @classmethod
    def _https_unless_loopback(cls, url: str | None) -> str | None:
        return None if url is None else _check_endpoint(url)

    @field_validator("question_filter_mode", mode="before")
    @classmethod
    def _renamed_filter_mode(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "llm":
            log.warning("QUESTION_FILTER_MODE=llm is deprecated: it asks no LLM; it is now called 'all'")
            return "all"
        return value

    @field_validator("use_llm_engine", "asr_engine", "use_tts_engine", mode="before")
    @classmethod
    def _split_chain(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip().lower() for name in value.split(",") if name.strip()]
        return value

    @field_validator("use_llm_engine", "asr_engine", "use_tts_engine")
    @classmethod
    def _known_engines(cls, chain: list[str], info) -> list[str]:
        stages: dict[str, Stage] = {"use_llm_engine": "llm", "asr_engine": "asr", "use_tts_engine": "tts"}
        known = CHAIN_ENGINES[stages[info.field_name]]
        unknown = [name for name in chain if name not in known]
        if unknown or not chain:
            raise ValueError(f"unknown engine {', '.join(unknown) or '(empty chain)'}; choose from {', '.join(known)}")
        return list(dict.fromkeys(chain))

    def api_keys(self) -> dict[str, str | None]:
        """Each key setting by its variable name, with its value (None when not set)."""
        keys = {
            "OPENAI_API_KEY": self.openai_api_key,
            "GEMINI_API_KEY": self.gemini_api_key,
            "CEREBRAS_API_KEY": self.cerebras_api_key,
            "COMPATIBLE_API_KEY": self.compatible_api_key,
        }
        return {name: (key.get_secret_value() or None) if key is not None else None for name, key in keys.items()}

    def secrets(self) -> list[str]:
        """Every key's value, for scrubbing from logs, events and errors."""
        return [value for value in self.api_keys().values() if value]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Both files are read here (model_config names no env_file), so that one that cannot be
        # read is named in the error.
        toml_path = _toml_path()
        toml = _read_settings_file(toml_path, lambda: TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        dotenv = _read_settings_file(
            DOTENV, lambda: DotEnvSettingsSource(settings_cls, env_file=DOTENV, env_file_encoding="utf-8")
        )
        return (init_settings, env_settings, dotenv, toml)


def validation_problems(error: Any) -> str:
    """A pydantic ValidationError as one line: "FIELD: what is wrong; …" (no traceback)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, with CLI flags (non-None `overrides`) on top. Their keys are
    registered for redaction from logs, events and errors."""
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    secrets.register(*settings.secrets())
    return settings
