"""Per-question latency from the event timeline, and its p50/p95 summary."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from cluelypro.metrics.events import (
    Asr,
    LlmFirstToken,
    PlaybackEnd,
    PlaybackStart,
    Question,
    Segment,
    SpeechEnd,
    SpeechStart,
    Thesis,
    TtsFirstAudio,
    Turn,
)
from cluelypro.metrics.timeline import Record


class Milestone(NamedTuple):
    """A milestone of a question's chain, measured from the end of the question's speech."""

    name: str  # the event that marks it
    label: str  # its row in the console's and the benchmark's latency tables
    short: str  # its column heading in the benchmark's per-recording table


MILESTONES = (
    Milestone(Turn.event_name, "end of turn decided", "turn"),
    Milestone(Segment.event_name, "end-of-speech detected", "EoS"),
    Milestone(Asr.event_name, "ASR done", "ASR"),
    Milestone(LlmFirstToken.event_name, "LLM first token", "TTFT"),
    Milestone(Thesis.event_name, "thesis 1 complete", "thesis 1"),
    Milestone(TtsFirstAudio.event_name, "TTS first audio", "TTS 1st"),
    Milestone(PlaybackStart.event_name, "playback start = voice-to-voice", "v2v"),
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
        self._early: dict[int, list[Record]] = {}  # an utterance's segment/asr, before its question
        self._turns: OrderedDict[int, Record] = OrderedDict()  # an utterance's last turn, before its speech end
        self._chains: OrderedDict[int, QuestionChain] = OrderedDict()
        self._by_utt: dict[int, QuestionChain] = {}

    @property
    def chains(self) -> list[QuestionChain]:
        return sorted(self._chains.values(), key=lambda chain: chain.q)

    def __call__(self, record: Record) -> None:
        event, utt = record.event, record.utt
        if isinstance(event, SpeechStart):
            self.speech_heard += 1
        if utt is None:
            return  # of no utterance: a device, a failing speaker gate
        if isinstance(event, Turn) and utt not in self._speech_end:
            self._remember(self._turns, utt, record)  # its speech end comes next
            return
        if isinstance(event, SpeechEnd):
            self._remember(self._speech_end, utt, record.t)
            if utt in self._turns:
                self._early.setdefault(utt, []).append(self._turns.pop(utt))
        elif isinstance(event, Question):
            self._on_question(utt, record.q, event)
            return
        if record.q is not None:
            chain = self._chains.get(record.q)
        else:  # segment and asr happen before the question has an id: find them by utterance
            chain = self._by_utt.get(utt)
            if chain is None and isinstance(event, (Segment, Asr)) and utt in self._speech_end:
                self._early.setdefault(utt, []).append(record)
                return
        if chain is not None:
            self._add(chain, record)

    def _on_question(self, utt: int, q: int | None, question: Question) -> None:
        early = self._early.pop(utt, [])
        if not question.accepted or q is None or utt not in self._speech_end:
            return
        chain = QuestionChain(q=q, utt=utt)
        self._remember(self._chains, chain.q, chain)
        self._by_utt[utt] = chain
        for earlier in early:
            self._add(chain, earlier)

    def _add(self, chain: QuestionChain, record: Record) -> None:
        event = record.event
        if isinstance(event, Asr):
            chain.text = event.text
        elif isinstance(event, Thesis):
            chain.theses.append(event.text)
        elif isinstance(event, PlaybackEnd) and event.index == 1 and chain.stall is None:
            chain.stall = event.stall
        if record.name in _MILESTONE_NAMES and getattr(event, "index", 1) == 1:
            offset = record.t - self._speech_end.get(chain.utt, record.t)
            if isinstance(event, Turn):  # the last pause's decision is the one that ended the question
                chain.offsets[record.name] = offset
            else:
                chain.offsets.setdefault(record.name, offset)

    def _remember(self, table: OrderedDict, key: int, value: object) -> None:
        table[key] = value
        while len(table) > self.keep:
            _, dropped = table.popitem(last=False)
            if isinstance(dropped, QuestionChain):
                self._by_utt.pop(dropped.utt, None)
        for stale in [utt for utt in self._early if utt not in self._speech_end]:
            del self._early[stale]


_MILESTONE_NAMES = frozenset(MILESTONE_LABELS)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def stage_summary(chains: list[QuestionChain]) -> dict[str, dict[str, float]]:
    return {
        name: percentiles([chain.offsets[name] for chain in chains if name in chain.offsets])
        for name in MILESTONE_LABELS
    }
