"""The labelled evaluation set in `eval/`: its files are well formed, its recordings are usable
speech, and its facts and key terms can be matched by lemmas (no model is run)."""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.morphology import morph

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "eval"
SETS = {"questions": EVAL / "audio", "heldout": EVAL / "heldout-audio"}
FIELDS = {"id", "subject", "question", "key_terms", "audio", "facts"}
WORD = re.compile(r"[\w]+(?:-[\w]+)*")
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
MIN_RMS = 0.01  # of full scale, over the speech between the padding
# Names and terms pymorphy3's dictionary lacks (it guesses their forms); anything else unknown is a typo.
KNOWN_OUTSIDE_DICTIONARY = {
    "австро", "болконский", "виета", "виндовс", "гидроксогруппа", "лавуазье", "лжедмитрий", "локк",
    "мармеладова", "молчалин", "монтескье", "ноздрев", "плюшкин", "самокопирование", "сараево",
    "собакевич", "фамусов", "эдс",
}  # fmt: skip


def rows(name: str) -> list[dict]:
    text = (EVAL / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@cache
def lemmas_of(word: str) -> frozenset[str]:
    return frozenset(parse.normal_form.replace("ё", "е") for parse in morph().parse(word))


def lemmas(text: str) -> set[str]:
    return set().union(*(lemmas_of(word) for word in words(text)))


def transcripts(folder: Path) -> list[list[str]]:
    with (folder / "transcripts.tsv").open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("name", SETS)
def test_every_line_has_the_schema(name: str) -> None:
    for row in rows(name):
        assert set(row) == FIELDS, row.get("id")
        assert re.fullmatch(r"(h-)?[a-z]+-\d\d", row["id"]), row["id"]
        assert isinstance(row["subject"], str) and CYRILLIC.search(row["subject"])
        assert isinstance(row["question"], str) and len(words(row["question"])) >= 2
        assert not re.search(r"\d|[a-z]", row["question"], re.IGNORECASE), f"TTS must read {row['id']} as written"
        assert 1 <= len(row["key_terms"]) <= 3 and all(isinstance(term, str) and term for term in row["key_terms"])
        assert row["audio"] and all(isinstance(file, str) and file.endswith(".flac") for file in row["audio"])
        assert 3 <= len(row["facts"]) <= 5, row["id"]
        for fact in row["facts"]:
            assert isinstance(fact, list) and fact, row["id"]
            assert all(isinstance(alternative, str) and alternative.strip() for alternative in fact), row["id"]
            assert len(set(fact)) == len(fact), f"{row['id']}: repeated alternative in {fact}"


def test_the_sizes_and_subjects_of_the_sets() -> None:
    questions, heldout = rows("questions"), rows("heldout")
    assert len(questions) >= 40
    assert len(heldout) == 12
    subjects = [row["subject"] for row in questions]
    assert len(set(subjects)) >= 8
    assert all(4 <= subjects.count(subject) <= 6 for subject in set(subjects)), subjects
    assert len({row["subject"] for row in heldout}) >= 6


def test_no_question_or_id_is_repeated_within_or_across_the_sets() -> None:
    everything = rows("questions") + rows("heldout")
    texts = [" ".join(words(row["question"])) for row in everything]
    assert len(set(texts)) == len(texts)
    assert len({row["id"] for row in everything}) == len(everything)
    assert all(row["id"].startswith("h-") for row in rows("heldout"))
    assert not any(row["id"].startswith("h-") for row in rows("questions"))


@pytest.mark.parametrize("name", SETS)
def test_every_fact_alternative_has_a_cyrillic_word_pymorphy_knows(name: str) -> None:
    for row in rows(name):
        for fact in row["facts"]:
            for alternative in fact:
                cyrillic = [word for word in words(alternative) if CYRILLIC.search(word)]
                assert cyrillic, f"{row['id']}: {alternative!r} has no Russian word to match by lemma"
                for word in cyrillic:
                    for part in word.split("-"):
                        known = morph().word_is_known(part) or part.replace("ё", "е") in KNOWN_OUTSIDE_DICTIONARY
                        assert known, f"{row['id']}: {part!r} in {alternative!r} is not a known word (a typo?)"


def test_the_list_of_words_outside_the_dictionary_is_current() -> None:
    assert not [word for word in KNOWN_OUTSIDE_DICTIONARY if morph().word_is_known(word)]


@pytest.mark.parametrize("name", SETS)
def test_the_facts_of_a_question_are_distinct(name: str) -> None:
    """An alternative listed under two facts of one question would make one answer word count twice."""
    for row in rows(name):
        seen: dict[frozenset[str], int] = {}
        for index, fact in enumerate(row["facts"]):
            for alternative in fact:
                key = frozenset(lemmas(alternative))
                assert seen.setdefault(key, index) == index, f"{row['id']}: {alternative!r} is in two facts"


@pytest.mark.parametrize("name", SETS)
def test_key_terms_are_in_the_question(name: str) -> None:
    for row in rows(name):
        question = lemmas(row["question"])
        for term in row["key_terms"]:
            for word in words(term):
                assert lemmas_of(word) & question, f"{row['id']}: {word!r} of {term!r} is not in the question"


@pytest.mark.parametrize("name", SETS)
def test_transcripts_match_the_questions(name: str) -> None:
    folder = SETS[name]
    expected = [
        [file, row["question"], "|".join(row["key_terms"])]
        for row in rows(name)
        for file in row["audio"]
    ]  # fmt: skip
    assert transcripts(folder) == expected


@pytest.mark.parametrize("name", SETS)
def test_the_recordings_vary_voice_and_speed(name: str) -> None:
    pattern = re.compile(r"(?P<id>.+)-(?P<voice>[a-z]+)-(?P<speed>\d{3})\.flac")
    recordings = [(row, pattern.fullmatch(file)) for row in rows(name) for file in row["audio"]]
    assert all(match and match["id"] == row["id"] for row, match in recordings)
    assert {match["voice"] for _, match in recordings} == {"anna", "aleksandr", "elena", "irina"}
    assert len({match["speed"] for _, match in recordings}) >= 3
    assert len({(match["voice"], match["speed"]) for _, match in recordings}) == 12
    if name == "questions":
        for row in rows(name):
            voices = [pattern.fullmatch(file)["voice"] for file in row["audio"]]
            assert len(voices) == 2 and len(set(voices)) == 2, row["id"]
    else:
        assert all(len(row["audio"]) == 1 for row in rows(name))


@pytest.mark.parametrize("name", SETS)
def test_every_recording_is_16_khz_mono_speech_of_a_sensible_length(name: str) -> None:
    folder = SETS[name]
    listed = {file for row in rows(name) for file in row["audio"]}
    assert {path.name for path in folder.glob("*.flac")} == listed, "files on disk differ from the jsonl"
    for file in sorted(listed):
        info = sf.info(folder / file)
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16"), file
        assert 0.8 <= info.duration <= 12.0, f"{file}: {info.duration:.2f} s"
        samples, _ = sf.read(folder / file, dtype="float32")
        pad = int(0.3 * 16_000)
        assert np.max(np.abs(samples[: pad // 2])) < 0.01 and np.max(np.abs(samples[-pad // 2 :])) < 0.01, file
        rms = float(np.sqrt(np.mean(samples[pad:-pad] ** 2)))
        assert rms > MIN_RMS, f"{file}: RMS {rms:.4f}"


def test_the_audio_folders_stay_small() -> None:
    for folder in SETS.values():
        assert sum(path.stat().st_size for path in folder.iterdir()) < 8 * 1024 * 1024, folder


@pytest.mark.parametrize("name", SETS)
def test_no_fact_is_covered_by_repeating_the_question(name: str) -> None:
    """An answer that only echoes the question must cover nothing."""
    for row in rows(name):
        question = lemmas(row["question"])
        for fact in row["facts"]:
            for alternative in fact:
                assert not all(lemmas_of(word) & question for word in words(alternative)), (
                    f"{row['id']}: {alternative!r} is already in the question"
                )
