"""Scoring answers: each question (its text, or what the ASR chain heard of its recording)
through the LLM chain the way the pipeline asks it, the theses checked for facts and violations.

The theses come from the pipeline's own `ThesisWriter.theses`: the same prompt, chain, parser,
`llm_max_tokens` and the stop at five theses. To tell whether an answer was cut by max_tokens,
each engine is wrapped in `RecordingLLM`, which sees what the `ThesisLLM.stream` protocol shows:
the pieces, and whether the stream ended on its own or was closed (see `violations.answer_cut`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from cluelypro.config import Settings
from cluelypro.eval.inputs import LabelledQuestion
from cluelypro.eval.text import errors, lemmas, phrase_in
from cluelypro.llm.base import ThesisLLM
from cluelypro.llm.prompts import thesis_messages
from cluelypro.llm.thesis_parser import MAX_THESES
from cluelypro.metrics.events import LlmFirstToken
from cluelypro.metrics.summary import percentiles
from cluelypro.metrics.timeline import Anchor, Timeline
from cluelypro.packaged import ProgressCallback
from cluelypro.pipeline.fallback import AllEnginesFailed, EngineChain
from cluelypro.pipeline.frames import Question
from cluelypro.pipeline.turns import Cancellation
from cluelypro.pipeline.writer import ThesisWriter
from cluelypro.prompter.speakable import CUT, KINDS, answer_cut, misread_reason, violations_of


@dataclass
class StreamRecord:
    """One `stream` call of an engine: its pieces, and whether it ended by itself."""

    pieces: list[str] = field(default_factory=list)
    ended_on_its_own: bool = False


class RecordingLLM:
    """A ThesisLLM that passes everything to `inner` and records each stream in `records`."""

    def __init__(self, inner: ThesisLLM, records: list[StreamRecord]) -> None:
        self.inner = inner
        self.name = inner.name
        self.remote = getattr(inner, "remote", False)  # the chain waits for a local engine's thread
        self.records = records

    def load(self, progress: ProgressCallback | None = None) -> None:
        self.inner.load(progress)

    def warm_up(self) -> None:
        self.inner.warm_up()

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        record = StreamRecord()
        self.records.append(record)
        return self._recorded(self.inner.stream(messages, max_tokens), record)

    @staticmethod
    def _recorded(pieces: Iterator[str], record: StreamRecord) -> Iterator[str]:
        try:
            for piece in pieces:
                record.pieces.append(piece)
                yield piece
            record.ended_on_its_own = True
        finally:
            getattr(pieces, "close", lambda: None)()  # closed early: stop the inner generation too


@dataclass(frozen=True)
class AnswerRun:
    theses: list[str]
    first_thesis_s: float | None
    engine: str | None
    cut: bool
    error: str | None = None


async def write_answer(
    text: str, llm: EngineChain, records: list[StreamRecord], settings: Settings, number: int
) -> AnswerRun:
    """The theses the pipeline would give for `text`, timed from the request (monotonic)."""
    records.clear()
    timeline = Timeline()
    question = Question(number, number, text, Anchor(0.0, time.monotonic()), 0.0)
    writer = ThesisWriter(question, llm, settings, timeline)
    messages = thesis_messages(text, language=settings.asr_language)
    theses: list[str] = []
    first: float | None = None
    started = time.monotonic()
    try:
        async with aclosing(writer.theses(messages, [], Cancellation())) as stream:
            async for thesis in stream:
                first = time.monotonic() - started if first is None else first
                theses.append(thesis)
    except AllEnginesFailed as failure:
        return AnswerRun(theses, first, _engine(timeline.events), False, str(failure))
    answering = next((record for record in reversed(records) if record.pieces), StreamRecord())
    full = len(theses) >= MAX_THESES
    cut = answer_cut(
        "".join(answering.pieces), len(answering.pieces), answering.ended_on_its_own, full, settings.llm_max_tokens
    )
    return AnswerRun(theses, first, _engine(timeline.events), cut)


def _engine(events: Any) -> str | None:
    providers = [record.event.provider for record in events if isinstance(record.event, LlmFirstToken)]
    return providers[-1] if providers else None


def covered_by(fact: tuple[str, ...], theses_lemmas: frozenset[str], language: str = "ru") -> str | None:
    """The first alternative of `fact` whose every word's lemma is among the theses' lemmas."""
    return next((alternative for alternative in fact if phrase_in(alternative, theses_lemmas, language)), None)


def violations(theses: list[str], cut: bool) -> list[dict[str, Any]]:
    """Each violation of each thesis (numbered from 1), and the answer's `cut`."""
    found = []
    for index, thesis in enumerate(theses):
        for kind in violations_of(thesis, theses[:index]):
            detail = misread_reason(thesis) if kind == "misread" else None
            found.append({"kind": kind, "thesis": index + 1, "text": thesis, "detail": detail})
    if cut:
        found.append({"kind": CUT, "thesis": None, "text": theses[-1] if theses else "", "detail": None})
    return found


def question_entry(
    item: LabelledQuestion, audio: str | None, heard: str | None, run: AnswerRun, language: str = "ru"
) -> dict[str, Any]:
    theses_lemmas = lemmas(" ".join(run.theses), language)
    covered = [covered_by(fact, theses_lemmas, language) for fact in item.facts]
    entry: dict[str, Any] = {
        "question": item.question,
        "subject": item.subject,
        "audio": audio,
        "heard": heard,
        "heard_wer": None if heard is None else round(errors(item.question, heard, language).wer, 4),
        "theses": run.theses,
        "facts": [list(fact) for fact in item.facts],
        "facts_covered": covered,
        "fact_coverage": round(_share(sum(c is not None for c in covered), len(covered)) or 0.0, 4),
        "violations": violations(run.theses, run.cut),
        "first_thesis_s": None if run.first_thesis_s is None else round(run.first_thesis_s, 3),
        "engine": run.engine,
    }
    if run.error is not None:
        entry["error"] = run.error
    return entry


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarize(entries: list[dict[str, Any]], skipped: list[dict[str, str]]) -> dict[str, Any]:
    facts = sum(len(entry["facts"]) for entry in entries)
    covered = sum(c is not None for entry in entries for c in entry["facts_covered"])
    counts = {kind: 0 for kind in KINDS}
    for entry in entries:
        for violation in entry["violations"]:
            counts[violation["kind"]] += 1
    first = percentiles([entry["first_thesis_s"] for entry in entries if entry["first_thesis_s"] is not None])
    coverage = _share(covered, facts)
    return {
        "fact_coverage": None if coverage is None else round(coverage, 4),
        "questions_with_a_fact": sum(any(c is not None for c in entry["facts_covered"]) for entry in entries),
        "violations": counts,
        "first_thesis_s_p50": round(first["p50"], 3) if first else None,
        "first_thesis_s_p95": round(first["p95"], 3) if first else None,
        "questions_scored": len(entries),
        "answered": sum(bool(entry["theses"]) for entry in entries),
        "theses": sum(len(entry["theses"]) for entry in entries),
        "facts": facts,
        "facts_covered": covered,
        "skipped": skipped,
        "questions": entries,
    }
