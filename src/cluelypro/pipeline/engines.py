"""Choosing the engines from settings, and loading them eagerly with progress (SPEC §3, 6D)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cluelypro.asr.base import SpeechRecognizer
from cluelypro.config import Settings
from cluelypro.llm.base import ThesisLLM
from cluelypro.packaged import ProgressCallback
from cluelypro.speaker.base import SpeakerEmbedder
from cluelypro.tts.base import SpeechSynthesizer
from cluelypro.vad.engines import SpeechDetector, make_detector


@dataclass
class Engines:
    detector: SpeechDetector
    recognizer: SpeechRecognizer
    llm: ThesisLLM
    synthesizer: SpeechSynthesizer
    embedder: SpeakerEmbedder | None = None  # only when a voice profile is in use

    def loadable(self) -> list[tuple[str, SpeechRecognizer | ThesisLLM | SpeechSynthesizer | SpeakerEmbedder]]:
        engines = [
            (f"ASR  {self.recognizer.name}", self.recognizer),
            (f"LLM  {self.llm.name}", self.llm),
            (f"TTS  {self.synthesizer.name}", self.synthesizer),
        ]
        if self.embedder is not None:
            engines.append((f"voice {self.embedder.name}", self.embedder))
        return engines


    def close(self) -> None:
        """Release engines that hold native threads (RHVoice's would keep the process alive)."""
        for _, engine in self.loadable():
            close = getattr(engine, "close", None)
            if close:
                close()


def build_engines(settings: Settings, speaker_gate: bool = False) -> Engines:
    """Engine objects for the configured choices; nothing heavy happens until `load_engines`."""
    from cluelypro.asr.whisper import WhisperRecognizer
    from cluelypro.llm.llama import LlamaThesisLLM
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    return Engines(
        detector=make_detector(settings.vad_engine, settings.webrtc_aggressiveness),
        recognizer=WhisperRecognizer(settings.asr_model, settings.asr_language, settings.asr_threads),
        llm=LlamaThesisLLM(
            settings.llm_model, threads=settings.llm_threads, prompt_threads=settings.llm_prompt_threads,
            context_tokens=settings.llm_context_tokens, grammar=settings.llm_grammar,
        ),
        synthesizer=RhVoiceSynthesizer(settings.tts_voice, settings.tts_speed),
        embedder=make_embedder(settings.speaker_engine) if speaker_gate else None,
    )


def make_embedder(engine: str) -> SpeakerEmbedder:
    from cluelypro.speaker.campplus import CamPlusEmbedder
    from cluelypro.speaker.downloadable import EcapaEmbedder, Eres2NetV2Embedder

    embedders = {"campplus": CamPlusEmbedder, "ecapa": EcapaEmbedder, "eres2netv2": Eres2NetV2Embedder}
    return embedders[engine]()


StepReporter = Callable[[str], ProgressCallback]
"""Given a step's label, returns the progress callback for that step."""


def load_engines(engines: Engines, report: StepReporter) -> float:
    """Load and warm up every engine; returns the seconds it took (start-up time to ready)."""
    started = time.monotonic()
    for label, engine in engines.loadable():
        progress = report(label)
        engine.load(progress)
        engine.warm_up()
        progress(1, 1)
    return time.monotonic() - started
