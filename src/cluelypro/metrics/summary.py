"""Per-question latency from the event timeline, and its p50/p95 summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cluelypro.metrics.timeline import Event

# Milestones of a question's chain, each measured from the end of the question's speech.
MILESTONES = (
    ("segment", "end-of-speech detected"),
    ("asr", "ASR done"),
    ("llm_first_token", "LLM first token"),
    ("thesis", "thesis 1 complete"),
    ("tts_first_audio", "TTS first audio"),
    ("playback_start", "playback start = voice-to-voice"),
)


@dataclass
class QuestionChain:
    q: int
    utt: int
    text: str = ""
    theses: list[str] = field(default_factory=list)
    offsets: dict[str, float] = field(default_factory=dict)  # milestone → seconds after speech end
    stall: float | None = None  # seconds thesis 1's first playback waited for its audio

    @property
    def voice_to_voice(self) -> float | None:
        return self.offsets.get("playback_start")


def question_chains(events: list[Event]) -> list[QuestionChain]:
    """One chain per accepted question, with the offsets of its thesis-1 milestones."""
    speech_end = {record["utt"]: record["t"] for record in events if record["event"] == "speech_end"}
    chains = {
        record["q"]: QuestionChain(q=record["q"], utt=record["utt"])
        for record in events
        if record["event"] == "question" and record.get("accepted") and record["utt"] in speech_end
    }
    by_utt = {chain.utt: chain for chain in chains.values()}
    for record in events:
        name = record["event"]
        # segment and asr happen before the question has an id: find them by utterance
        chain = chains.get(record["q"]) if record["q"] is not None else by_utt.get(record["utt"])
        if chain is None:
            continue
        if name == "asr":
            chain.text = record["text"]
        elif name == "thesis":
            chain.theses.append(record["text"])
        elif name == "playback_end" and record.get("index") == 1 and chain.stall is None:
            chain.stall = record.get("stall")
        if name in dict(MILESTONES) and record.get("index", 1) == 1:
            chain.offsets.setdefault(name, record["t"] - speech_end[chain.utt])
    return sorted(chains.values(), key=lambda chain: chain.q)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def stage_summary(chains: list[QuestionChain]) -> dict[str, dict[str, float]]:
    return {
        name: percentiles([chain.offsets[name] for chain in chains if name in chain.offsets])
        for name, _ in MILESTONES
    }
