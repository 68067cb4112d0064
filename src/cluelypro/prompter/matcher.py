"""Has the user said this thesis? (SPEC §2.7, until-said mode.)

Stage 1 compares content lemmas (pymorphy3): the share of the thesis's content words found in
what the user said, with room for ASR errors — a lemma also matches a close spelling
(RapidFuzz ratio), a word with the same long prefix (выделяется ~ выделение) or two words the
recogniser split apart (эрц герцог ~ эрцгерцог). Number words count as cardinals (шестьдесят
первом ~ 61), and Latin words as their Russian reading (Python ~ пайтон). Stage 2 (an optional
semantic similarity) and stage 3 (an optional judge, e.g. an LLM) only run when stage 1 fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from num2words import num2words
from rapidfuzz import fuzz, process

from cluelypro.morphology import morph
from cluelypro.tts.normalize import read_latin
from cluelypro.tts.numbers import cardinal

FUNCTION_POS = {"PREP", "CONJ", "PRCL", "INTJ", "NPRO", "PRED"}
STOP_LEMMAS = {
    "быть",
    "стать",
    "становиться",
    "являться",
    "есть",
    "иметь",
    "это",
    "также",
    "так",
    "тоже",
    "очень",
    "еще",
    "уже",
    "вот",
    "ну",
    "там",
    "тут",
    "здесь",
    "когда",
    "где",
    "как",
    "можно",
    "нужно",
    "и",
    "а",
    "но",
    "или",
    "ли",
    "не",
    "ни",
    "же",
    "бы",
}
FUZZY_RATIO = 85
PREFIX_MIN = 5
PREFIX_SLACK = 4
NUMBER_WEIGHT = 0.5
MIN_FOUND_WEIGHT = 2.0  # a topic word alone never says a two-word thesis
DUPLICATE_COVERAGE = 0.75

SimilarityFn = Callable[[str, str], float]
JudgeFn = Callable[[str, str], bool]


@cache
def _ordinal_to_cardinal() -> dict[str, str]:
    numbers = [*range(1, 20), *range(20, 100, 10), *range(100, 1000, 100), 1000, 1_000_000]
    return {num2words(n, lang="ru", to="ordinal").split()[-1]: num2words(n, lang="ru").split()[-1] for n in numbers}


@dataclass(frozen=True)
class Word:
    surface: str
    lemma: str
    weight: float


def _tokens(text: str) -> list[str]:
    words = []
    for token in re.findall(r"[a-zа-яё0-9+]+", text.lower().replace("ё", "е")):
        if token.isdigit():
            words += cardinal(token).split()  # any length: a long one digit by digit
        elif re.fullmatch(r"[a-z+]+", token):
            words += read_latin(token).split()
        else:
            words.append(token)
    return words


@lru_cache(maxsize=4096)
def _analyse(token: str) -> Word | None:
    parse = morph().parse(token)[0]
    lemma = parse.normal_form.replace("ё", "е")
    cardinals = _ordinal_to_cardinal()
    if lemma in cardinals or lemma in cardinals.values() or parse.tag.POS == "NUMR":
        return Word(token, cardinals.get(lemma, lemma), NUMBER_WEIGHT)
    if parse.tag.POS in FUNCTION_POS or "Apro" in parse.tag or lemma in STOP_LEMMAS or len(lemma) < 2:
        return None
    return Word(token, lemma, 1.0)


def content_words(text: str) -> list[Word]:
    """The text's content words (no prepositions, pronouns, particles or stop-words), once each."""
    seen: dict[str, Word] = {}
    for token in _tokens(text):
        word = _analyse(token)
        if word is not None and word.lemma not in seen:
            seen[word.lemma] = word
    return list(seen.values())


def _vocabulary(text: str) -> set[str]:
    """Every form of the spoken text a thesis word may be found as: lemmas, surface forms and
    adjacent pairs glued together (ASR splits compounds)."""
    tokens = _tokens(text)
    words = [word for token in tokens if (word := _analyse(token)) is not None]
    glued = {a + b for a, b in zip(tokens, tokens[1:], strict=False)}
    return {w.lemma for w in words} | {w.surface for w in words} | glued


def _close(a: str, b: str) -> bool:
    prefix = len(_common_prefix(a, b))
    return prefix >= PREFIX_MIN and min(len(a), len(b)) - prefix <= PREFIX_SLACK


def _common_prefix(a: str, b: str) -> str:
    end = 0
    while end < min(len(a), len(b)) and a[end] == b[end]:
        end += 1
    return a[:end]


def _found(word: Word, vocabulary: set[str]) -> bool:
    forms = {word.lemma, word.surface}
    if forms & vocabulary:
        return True
    for form in forms:
        if process.extractOne(form, vocabulary, scorer=fuzz.ratio, score_cutoff=FUZZY_RATIO):
            return True
        if any(_close(form, other) for other in vocabulary):
            return True
    return False


def _overlap(spoken: str, thesis: str) -> tuple[float, float]:
    """(weight of the thesis's content words found in `spoken`, weight of them all)."""
    words = content_words(thesis)
    vocabulary = _vocabulary(spoken)
    found = sum(word.weight for word in words if _found(word, vocabulary))
    return found, sum(word.weight for word in words)


def coverage(spoken: str, thesis: str) -> float:
    """Weighted share of the thesis's content words found in `spoken` (0 when it has none)."""
    found, total = _overlap(spoken, thesis)
    return found / total if total else 0.0


def near_duplicate(new: str, earlier: str, threshold: float = DUPLICATE_COVERAGE) -> bool:
    """`new` says nothing that `earlier` did not: `earlier` covers most of its content words."""
    return _normalised(new) == _normalised(earlier) or coverage(earlier, new) >= threshold


def _normalised(text: str) -> str:
    return " ".join(_tokens(text))


class ThesisMatcher:
    """Decides whether the user's own speech says a thesis: lemma overlap, then semantic
    similarity, then a judge — each later stage only when given and when the earlier ones fail."""

    def __init__(
        self,
        threshold: float = 0.5,
        similarity: SimilarityFn | None = None,
        semantic_threshold: float = 0.75,
        judge: JudgeFn | None = None,
    ) -> None:
        self.threshold = threshold
        self.similarity = similarity
        self.semantic_threshold = semantic_threshold
        self.judge = judge

    def match(self, spoken: str, thesis: str) -> tuple[bool, str]:
        if not spoken.strip() or not thesis.strip():
            return False, "none"
        if self._lemmas_match(spoken, thesis):
            return True, "lemma"
        if self.similarity is not None and self.similarity(spoken, thesis) >= self.semantic_threshold:
            return True, "semantic"
        if self.judge is not None and self.judge(spoken, thesis):
            return True, "judge"
        return False, "none"

    def _lemmas_match(self, spoken: str, thesis: str) -> bool:
        found, total = _overlap(spoken, thesis)
        return total > 0 and found / total >= self.threshold and found >= min(total, MIN_FOUND_WEIGHT)
