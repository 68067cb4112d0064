"""The labelled inputs of `eval`: a folder's `transcripts.tsv`, a JSON-lines question set, and
the recordings they name. Every problem is one line saying which file and line."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from cluelypro.audio.io import AudioInputError, read_audio, shown

TRANSCRIPTS = "transcripts.tsv"
TSV_FORMAT = "file<TAB>reference text[<TAB>key terms separated by |]"
T = TypeVar("T")
JSONL_FORMAT = '{"question": "…", "audio": "file.wav" or [...], "facts": [["alternative", …], …]}'


class EvalInputError(ValueError):
    """A labelled input is missing or malformed; the message says where, in one line."""


@dataclass(frozen=True)
class LabelledRecording:
    file: str
    reference: str
    key_terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    facts: tuple[tuple[str, ...], ...]
    audio: tuple[str, ...] = ()
    subject: str | None = None


def existing_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise EvalInputError(f"folder not found: {shown(folder)}")
    return folder


def load_transcripts(folder: Path, limit: int | None = None) -> list[LabelledRecording]:
    """The recordings `folder/transcripts.tsv` lists, in its order (only the first `limit`)."""
    path = existing_folder(folder) / TRANSCRIPTS
    if not path.is_file():
        raise EvalInputError(f"no {TRANSCRIPTS} in {shown(folder)} (one line per recording: {TSV_FORMAT})")
    return parsed_lines(path, _recording, f"lists no recordings ({TSV_FORMAT})")[:limit]


def parsed_lines(path: Path, parse: Callable[[str, str], T], when_empty: str) -> list[T]:
    """`parse(line, where)` of each non-blank line; `where` names the file and line for errors."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EvalInputError(f"cannot read {shown(path)}: {error}") from None
    items = [parse(line, f"{shown(path)} line {number}") for number, line in enumerate(lines, 1) if line.strip()]
    if not items:
        raise EvalInputError(f"{shown(path)} {when_empty}")
    return items


def _recording(line: str, where: str) -> LabelledRecording:
    columns = [column.strip() for column in line.split("\t")]
    if len(columns) not in (2, 3) or not columns[0] or not columns[1]:
        raise EvalInputError(f"{where}: expected {TSV_FORMAT}, got {len(columns)} column(s): {line.strip()[:60]!r}")
    terms = tuple(term.strip() for term in columns[2].split("|") if term.strip()) if len(columns) == 3 else ()
    return LabelledRecording(columns[0], columns[1], terms)


def load_questions(path: Path, limit: int | None = None) -> list[LabelledQuestion]:
    """The questions of a JSON-lines file (blank lines skipped; only the first `limit`)."""
    if not path.is_file():
        raise EvalInputError(f"question file not found: {shown(path)}")
    return parsed_lines(path, _question, f"holds no questions (one JSON object a line: {JSONL_FORMAT})")[:limit]


def json_object(line: str, where: str, expected: str) -> dict:
    """One line of a JSON-lines file as an object, or a one-line error naming `where` and, for a
    line that is no object, the `expected` shape."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise EvalInputError(f"{where}: not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(item, dict):
        raise EvalInputError(f"{where}: expected an object {expected}")
    return item


def _question(line: str, where: str) -> LabelledQuestion:
    item = json_object(line, where, JSONL_FORMAT)
    question, facts, audio, subject = (item.get(key) for key in ("question", "facts", "audio", "subject"))
    if not isinstance(question, str) or not question.strip():
        raise EvalInputError(f'{where}: "question" must be a non-empty string')
    if not _strings_lists(facts):
        raise EvalInputError(f'{where}: "facts" must be a list of lists of strings, e.g. [["хлорофилл"], ["свет"]]')
    if isinstance(audio, str):
        audio = [audio]
    if audio is not None and not (isinstance(audio, list) and all(isinstance(a, str) and a for a in audio)):
        raise EvalInputError(f'{where}: "audio" must be a file name or a list of file names')
    if subject is not None and not isinstance(subject, str):
        raise EvalInputError(f'{where}: "subject" must be a string')
    assert isinstance(facts, list)  # checked by _strings_lists
    return LabelledQuestion(question.strip(), tuple(tuple(fact) for fact in facts), tuple(audio or ()), subject)


def _strings_lists(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(fact, list) and fact and all(isinstance(alt, str) and alt.strip() for alt in fact) for fact in value
    )


def read_recording(folder: Path, name: str) -> np.ndarray:
    """A recording of `folder` as 16 kHz mono float32, or AudioInputError saying why not."""
    path = folder / name
    if not path.is_file():
        raise AudioInputError(f"{shown(path)} not found")
    return read_audio(path)
