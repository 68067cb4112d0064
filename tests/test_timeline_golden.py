"""The event timeline is an interface (SPEC §3a): its JSON lines, field by field, against the SPEC.

The list of events and fields is parsed out of /work/shared/SPEC.md's §3a at test time (its format
allows it: each bullet names events in backticks, each followed by its fields in braces, before
the bullet's " — " explanation). A recorded run through the fault harness (scripted engines, in
milliseconds) and a device event from the command line's session are compared with it: every
line's keys, in order, must be t, wall, utt, q, event and then the SPEC's fields of that event.
An event that gains, loses or renames a field fails here, as does a class in
cluelypro.metrics.events that the SPEC does not list.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from cluelypro.cli.main import Session
from cluelypro.metrics.events import EVENT_TYPES, Asr, SpeechStart
from cluelypro.metrics.timeline import Clock, Record, Timeline
from harness.engines import Fault, ScriptedEmbedder, ScriptedLLM, ScriptedRecognizer
from harness.run import Harness, Quiet, Say, WaitFor, event

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "SPEC.md"

NOT_EMITTED = {"turn": "no learned end-of-turn model is used yet (SPEC: 'where one is used')"}
"""SPEC events no run of today's code can produce; their classes are still checked."""


@dataclass(frozen=True)
class SpecEvent:
    fields: tuple[str, ...]
    call_mode_only: frozenset[str]  # fields written only in call mode (`--call`, not built yet)


def spec_section() -> str:
    assert SPEC.exists(), f"the shared SPEC is missing: {SPEC}"
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("## 3a.")
    return text[start : text.index("\n## ", start + 1)]


def spec_header_keys() -> list[str]:
    """The keys every line starts with, from the section's `{"t": …, "event": <name>, …fields}`."""
    header = re.search(r"`(\{\"t\".*?\})`", spec_section(), re.DOTALL)
    assert header is not None, "SPEC §3a no longer shows the line's shape"
    return re.findall(r'"(\w+)":', header.group(1))


def spec_events() -> dict[str, SpecEvent]:
    bullets = re.findall(r"^- (.*?)(?=^- |^\S)", spec_section() + "\nEND", re.MULTILINE | re.DOTALL)
    events: dict[str, SpecEvent] = {}
    for bullet in bullets:
        named = " ".join(bullet.split()).split(" — ")[0]  # the explanation after " — " names fields too
        for name, braces in re.findall(r"`(\w+)`(?:\s*\{(.*?)\})?", named):
            pieces = [piece for piece in braces.split(",") if piece.strip()]
            fields = tuple(re.search(r"`(\w+)`", piece).group(1) for piece in pieces)
            optional = {field for field, piece in zip(fields, pieces, strict=True) if "(call mode)" in piece}
            events[name] = SpecEvent(fields, frozenset(optional))
    return events


def test_the_spec_list_parses_into_the_events_it_names() -> None:
    """Guards the parser: a SPEC edit that breaks it must not pass as an empty list."""
    events = spec_events()
    assert spec_header_keys() == ["t", "wall", "utt", "q", "event"]
    assert len(events) >= 17 and events["speech_start"].fields == ()
    assert events["provider_skipped"].fields == ("stage", "provider", "reason", "after_output")
    assert events["speaker"] == SpecEvent(("role", "score", "source"), frozenset({"source"}))


def test_every_event_class_has_the_spec_name_and_fields_in_order() -> None:
    spec = spec_events()
    assert sorted(EVENT_TYPES) == sorted(spec), "events.py and SPEC §3a must list the same events"
    for name, event_type in EVENT_TYPES.items():
        assert tuple(field.name for field in dataclasses.fields(event_type)) == spec[name].fields, name


# --- a recorded run ------------------------------------------------------------------------------

PHOTOSYNTHESIS = "Что такое фотосинтез?"
INFLATION = "Что такое инфляция?"
BROKEN = "Что такое гравитация?"  # the recogniser fails on it: an `error`
THESIS_1 = "Фотосинтез — процесс образования сахаров из света в листьях."
LINES = {1: PHOTOSYNTHESIS, 2: INFLATION, 3: BROKEN, 4: THESIS_1}  # line 4: the user repeats thesis 1
ANSWERS = {
    "фотосинтез": f"1. {THESIS_1}\n2. Он идёт в хлоропластах с участием хлорофилла.",
    "инфляция": "1. Инфляция — устойчивый рост общего уровня цен.\n2. Её измеряют индексом цен.",
}


def recorded_run(folder: Path) -> list[dict]:
    """A run in until-said mode with the user's voice profile, a cloud LLM that refuses (so the
    next engine answers), the user saying thesis 1, a second question that interrupts the first
    answer and an utterance the recogniser fails on; then a lost and returned input device."""
    refusing = ScriptedLLM({}, name="refusing-cloud", faults={"": Fault(raises=ConnectionError("503"))}, remote=True)
    recognizer = ScriptedRecognizer(LINES, faults={BROKEN: Fault(raises=RuntimeError("asr crashed"))})
    harness = Harness(
        LINES,
        llms=[refusing, ScriptedLLM(dict(ANSWERS))],
        recognizers=[recognizer],
        embedder=ScriptedEmbedder({4}),
        advance_policy="until-said",
        events_path=folder / "run.jsonl",
    )
    harness.run(
        Say(1),
        WaitFor(event("playback_start", q=1, index=1), "thesis 1 spoken"),
        Say(4),
        WaitFor(event("matched", q=1, index=1), "the user said thesis 1"),
        Say(2),
        WaitFor(event("playback_start", q=2, index=1), "answer 2"),
        Say(3),
        WaitFor(event("error", stage="asr"), "the recogniser's failure"),
        Quiet(0.5),
    )
    devices = Timeline(folder / "devices.jsonl")
    session = SimpleNamespace(timeline=devices, clock=Clock())  # what Session.on_device uses of a session
    Session.on_device(session, "input", "lost", "pulse")
    Session.on_device(session, "input", "back", "pulse")
    devices.close()
    return [json.loads(line) for name in ("run", "devices") for line in (folder / f"{name}.jsonl").open()]


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> list[dict]:
    return recorded_run(tmp_path_factory.mktemp("golden"))


def test_a_recorded_run_has_every_spec_event(lines) -> None:
    assert {line["event"] for line in lines} == set(spec_events()) - set(NOT_EMITTED)


def test_every_recorded_line_has_exactly_the_spec_keys_in_order(lines) -> None:
    header, spec = spec_header_keys(), spec_events()
    for line in lines:
        expected = spec[line["event"]]
        written = [field for field in expected.fields if field not in expected.call_mode_only or field in line]
        assert list(line) == [*header, *written], line


def test_a_record_writes_the_line_it_always_wrote() -> None:
    """Byte for byte: the key order, the rounding and the redaction of text fields."""
    record = Record(1.23456, 1700000000.123, 3, 2, Asr("сколько стоит", "whisper-base", 140))
    assert json.dumps(record.line(), ensure_ascii=False) == (
        '{"t": 1.23456, "wall": 1700000000.123, "utt": 3, "q": 2, "event": "asr", '
        '"text": "сколько стоит", "engine": "whisper-base", "ms": 140}'
    )


def test_emit_takes_only_event_objects(tmp_path) -> None:
    timeline = Timeline(tmp_path / "events.jsonl")
    with pytest.raises(TypeError):
        timeline.emit("speech_start", 1.0, utt=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        timeline.emit(Asr("text", "engine", 1, confidence=0.9), 1.0, utt=1)  # type: ignore[call-arg]
    timeline.close()
    assert (tmp_path / "events.jsonl").read_text(encoding="utf-8") == "", "nothing half-written"


def test_a_failing_observer_does_not_stop_the_timeline_or_the_others(caplog) -> None:
    timeline, seen = Timeline(), []

    def broken(record: Record) -> None:
        raise RuntimeError("the view crashed")

    timeline.subscribe(broken)
    timeline.subscribe(seen.append)
    first = timeline.emit(SpeechStart(), 1.0, utt=1)
    second = timeline.emit(SpeechStart(), 2.0, utt=2)
    assert seen == [first, second] and list(timeline.events) == [first, second]
    assert "an observer of the timeline failed on speech_start" in caplog.text
