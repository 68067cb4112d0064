"""Text as `eval` compares it: one normal spelling, word and character error rates, lemmas.

Both sides of a comparison go through `normalize`: numbers become words the way the TTS reads
them (in agreement with the next word: «в 1914 году» → «в тысяча девятьсот четырнадцатом
году», which is how a reference written in words says it), then lowercase, ё → е, punctuation
out, whitespace collapsed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import Levenshtein

from cluelypro.morphology import morph
from cluelypro.prompter.speakable import lemma, normalize

__all__ = ["lemma", "normalize"]


def words(text: str, language: str = "ru") -> list[str]:
    return normalize(text, language).split()


@dataclass(frozen=True)
class Errors:
    """Edit distance of a hypothesis from its reference, in words and in characters."""

    word_errors: int
    reference_words: int
    char_errors: int
    reference_chars: int

    @property
    def wer(self) -> float:
        return _rate(self.word_errors, self.reference_words)

    @property
    def cer(self) -> float:
        return _rate(self.char_errors, self.reference_chars)

    def __add__(self, other: Errors) -> Errors:
        return Errors(
            self.word_errors + other.word_errors,
            self.reference_words + other.reference_words,
            self.char_errors + other.char_errors,
            self.reference_chars + other.reference_chars,
        )


NO_ERRORS = Errors(0, 0, 0, 0)


def _rate(errors: int, reference: int) -> float:
    """errors / reference; an empty reference scores 0 if nothing was inserted, else 1."""
    if reference == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / reference


def errors(reference: str, hypothesis: str, language: str = "ru") -> Errors:
    """Levenshtein distance over normalised words (WER) and characters, spaces included (CER)."""
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    ref_words, hyp_words = ref.split(), hyp.split()
    return Errors(Levenshtein.distance(ref_words, hyp_words), len(ref_words), Levenshtein.distance(ref, hyp), len(ref))


def corpus_errors(pairs: Iterable[Errors]) -> Errors:
    """Totals over files: corpus WER is all word errors over all reference words."""
    return sum(pairs, NO_ERRORS)


@lru_cache(maxsize=16384)
def lemma_forms(word: str) -> frozenset[str]:
    """Every normal form pymorphy3 gives a word (its parses disagree on short forms: «стали»
    is «стать» or «сталь»), so an inflected term matches whichever reading the text has."""
    return frozenset(parse.normal_form.replace("ё", "е") for parse in morph().parse(word))


def lemmas(text: str, language: str = "ru") -> frozenset[str]:
    """All normal forms of all words of `text`."""
    return frozenset(form for word in words(text, language) for form in lemma_forms(word))


def phrase_in(phrase: str, text_lemmas: frozenset[str], language: str = "ru") -> bool:
    """Whether every word of `phrase` has a normal form among `text_lemmas` («фотосинтеза» is
    found in a text that says «фотосинтез»). An empty phrase is never found."""
    phrase_words = words(phrase, language)
    return bool(phrase_words) and all(lemma_forms(word) & text_lemmas for word in phrase_words)
