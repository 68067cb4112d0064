"""Per-question latency from the event timeline, and its p50/p95 summary."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from cluelypro.metrics.timeline import Event


class Milestone(NamedTuple):
    """A milestone of a question's chain, measured from the end of the question's speech."""

    name: str  # the event that marks it
    label: str  # its row in the console's and the benchmark's latency tables
    short: str  # its column heading in the benchmark's per-recording table


MILESTONES = (
    Milestone("segment", "end-of-speech detected", "EoS"),
    Milestone("asr", "ASR done", "ASR"),
    Milestone("llm_first_token", "LLM first token", "TTFT"),
    Milestone("thesis", "thesis 1 complete", "thesis 1"),
    Milestone("tts_first_audio", "TTS first audio", "TTS 1st"),
    Milestone("playback_start", "playback start = voice-to-voice", "v2v"),
)
MILESTONE_LABELS = {milestone.name: milestone.label for milestone in MILESTONES}


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


class ChainCollector:
    """A timeline observer that builds each accepted question's chain as its events arrive, in
    bounded memory: it keeps the last `keep` chains and only the utterances still in flight."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self.speech_heard = 0  # speech_start events seen
        self._speech_end: OrderedDict[int, float] = OrderedDict()  # utt → t, for recent utterances
        self._early: dict[int, list[Event]] = {}  # an utterance's segment/asr, before its question
        self._chains: OrderedDict[int, QuestionChain] = OrderedDict()
        self._by_utt: dict[int, QuestionChain] = {}

    @property
    def chains(self) -> list[QuestionChain]:
        return sorted(self._chains.values(), key=lambda chain: chain.q)

    def __call__(self, record: Event) -> None:
        name, utt = record["event"], record["utt"]
        if name == "speech_start":
            self.speech_heard += 1
        elif name == "speech_end":
            self._remember(self._speech_end, utt, record["t"])
        elif name == "question":
            self._on_question(record)
            return
        if record["q"] is not None:
            chain = self._chains.get(record["q"])
        else:  # segment and asr happen before the question has an id: find them by utterance
            chain = self._by_utt.get(utt)
            if chain is None and name in ("segment", "asr") and utt in self._speech_end:
                self._early.setdefault(utt, []).append(record)
                return
        if chain is not None:
            self._add(chain, record)

    def _on_question(self, record: Event) -> None:
        utt, early = record["utt"], self._early.pop(record["utt"], [])
        if not record.get("accepted") or utt not in self._speech_end:
            return
        chain = QuestionChain(q=record["q"], utt=utt)
        self._remember(self._chains, chain.q, chain)
        self._by_utt[utt] = chain
        for earlier in early:
            self._add(chain, earlier)

    def _add(self, chain: QuestionChain, record: Event) -> None:
        name = record["event"]
        if name == "asr":
            chain.text = record["text"]
        elif name == "thesis":
            chain.theses.append(record["text"])
        elif name == "playback_end" and record.get("index") == 1 and chain.stall is None:
            chain.stall = record.get("stall")
        if name in _MILESTONE_NAMES and record.get("index", 1) == 1:
            chain.offsets.setdefault(name, record["t"] - self._speech_end.get(chain.utt, record["t"]))

    def _remember(self, table: OrderedDict, key: int, value: object) -> None:
        table[key] = value
        while len(table) > self.keep:
            _, dropped = table.popitem(last=False)
            if isinstance(dropped, QuestionChain):
                self._by_utt.pop(dropped.utt, None)
        for stale in [utt for utt in self._early if utt not in self._speech_end]:
            del self._early[stale]


_MILESTONE_NAMES = frozenset(MILESTONE_LABELS)


def question_chains(events: Iterable[Event]) -> list[QuestionChain]:
    """One chain per accepted question, with the offsets of its thesis-1 milestones."""
    collector = ChainCollector()
    for record in events:
        collector(record)
    return collector.chains


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def stage_summary(chains: list[QuestionChain]) -> dict[str, dict[str, float]]:
    return {
        name: percentiles([chain.offsets[name] for chain in chains if name in chain.offsets])
        for name in MILESTONE_LABELS
    }
