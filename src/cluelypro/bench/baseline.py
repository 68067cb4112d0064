"""The sequential baseline: the same engines one after another, nothing streamed or overlapped.

End of speech (the same END_SILENCE_MS wait) → ASR of the utterance → the LLM's whole answer →
theses parsed from it → the whole first thesis synthesised → only then playback starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.engines import Engines
from cluelypro.llm.prompts import thesis_messages
from cluelypro.llm.thesis_parser import ThesisStreamParser
from cluelypro.prompter.filter import QuestionFilter
from cluelypro.tts.normalize import normalize_for_tts
from cluelypro.vad.frames import segment_audio
from cluelypro.vad.segmenter import SpeechEnded, Utterance, segmenter_for

# Cumulative milestones after end of speech; the last one is voice-to-voice.
BASELINE_STAGES = (
    ("segment", "end-of-speech detected"),
    ("asr", "ASR done"),
    ("llm", "LLM whole answer"),
    ("tts", "TTS whole thesis 1 = playback start"),
)


@dataclass
class BaselineResult:
    heard: str
    offsets: dict[str, float] = field(default_factory=dict)  # BASELINE_STAGES name → s after speech end
    theses: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return "tts" in self.offsets

    @property
    def voice_to_voice(self) -> float | None:
        return self.offsets.get("tts")


def sequential_run(audio: np.ndarray, engines: Engines, settings: Settings) -> BaselineResult:
    engines.detector.reset()
    engines.llm.warm_up()  # the same prefix cache as a pipelined run starts with
    language = settings.asr_language
    question = None
    heard: list[str] = []
    for utterance in utterances(audio, engines, settings):
        text, asr_s = _timed(lambda audio=utterance.audio: engines.recognizer.transcribe(audio))
        if not text:
            continue
        if QuestionFilter(settings.question_filter_mode, commentary=settings.commentary_mode).decide(text)[0]:
            question = (text, asr_s, " ".join(heard))
        heard.append(text)
    if question is None:
        return BaselineResult(" / ".join(heard))
    text, asr_s, context = question
    offsets = {"segment": settings.end_silence_ms / 1000}
    offsets["asr"] = offsets["segment"] + asr_s
    answer, llm_s = _timed(
        lambda: "".join(engines.llm.stream(thesis_messages(text, context, language), settings.llm_max_tokens))
    )
    offsets["llm"] = offsets["asr"] + llm_s
    parser = ThesisStreamParser()
    theses = parser.feed(answer) + parser.finish()
    if theses:
        spoken = normalize_for_tts(theses[0], language)
        _, tts_s = _timed(lambda: [chunk for chunk in engines.synthesizer.synthesize(spoken)])
        offsets["tts"] = offsets["llm"] + tts_s
    return BaselineResult(text, offsets, theses)


def utterances(audio: np.ndarray, engines: Engines, settings: Settings) -> list[Utterance]:
    """The utterances the pipeline's segmenter would emit for `audio` followed by silence."""
    detector = engines.detector
    size = detector.frame_samples
    segmenter = segmenter_for(settings, size, speculative=False)
    trailing = settings.end_silence_ms / 1000 + 0.5  # the last utterance's silence window closes
    padded = np.concatenate([audio, np.zeros(round(trailing * SAMPLE_RATE) + size, np.float32)])
    events = segment_audio(padded, detector, segmenter)
    return [e.utterance for e in events if isinstance(e, SpeechEnded) and e.utterance is not None]


def _timed(action):
    started = time.monotonic()
    value = action()
    return value, time.monotonic() - started
