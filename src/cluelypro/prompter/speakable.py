"""What makes a thesis bad to whisper, checked one thesis at a time: pure functions, used by the
prompter as a post-filter before the TTS (`speakable`) and by `cluelypro eval` to count them.

`misread` — a Russian voice would not say what was meant. The TTS reads
`normalize_for_tts(thesis)`, which is total: it reads digits in words (in agreement: «в 1914
году»), reads Latin words by a guessed transliteration and drops what it cannot read. So a thesis
is misread when:
- the thesis holds a letter or digit the normaliser has no reading for (CJK, Arabic, …): it is
  dropped, and the meaning with it;
- it holds Latin letters: their reading is a guess («H2O» → «эйч два оу»), and the prompt asks
  for none — except words with a set reading («Python») and capital acronyms of 2–5 letters
  («HTTP», «SQL»), which the normaliser spells letter by letter as Russian speakers say them;
- it holds formula characters (FORMULA, and any Unicode math symbol): the normaliser spells a
  formula symbol by symbol («c^2 = a^2 + b^2» → «си в квадрате равно эй …»), which nobody can
  follow in an earpiece;
  units the normaliser reads as units («20 °C», «60 км/ч») are neither Latin nor a formula;
- what the normaliser gives still holds anything but Cyrillic letters, spaces and punctuation
  (a safety net should the normaliser stop being total, e.g. for another language).
Digits alone are not a violation: the normaliser reads them correctly in context.

`repeated` — the thesis says again what an earlier thesis of the answer said: the same
normalised text, a rapidfuzz ratio of at least REPEAT_RATIO, or no lemma the earlier one lacks.

`too_long` — over MAX_WORDS words as written (a number in digits is one word).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from rapidfuzz import fuzz

from cluelypro.morphology import morph
from cluelypro.tts.normalize import KNOWN_LATIN_WORDS, normalize_for_tts

MISREAD, REPEATED, TOO_LONG, CUT = "misread", "repeated", "too_long", "cut"
KINDS = (MISREAD, REPEATED, TOO_LONG, CUT)
MAX_WORDS = 15
REPEAT_RATIO = 95.0
FORMULA = frozenset("^=+*/<>_{}[]\\|~`#@$&")

_NOT_A_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=8192)
def normalize(text: str, language: str = "ru") -> str:
    """One spelling to compare texts by: numbers in words the way the TTS reads them (in
    agreement: «в 1914 году» → «в тысяча девятьсот четырнадцатом году»), lowercase, ё → е,
    punctuation out, whitespace collapsed."""
    spoken = normalize_for_tts(text, language).lower().replace("ё", "е")
    return " ".join(_NOT_A_WORD.sub(" ", spoken).split())


def lemma(word: str) -> str:
    """The most likely normal form of a word."""
    return morph().parse(word)[0].normal_form.replace("ё", "е")


_LATIN = re.compile(r"[A-Za-z]")
_WRITTEN_WORD = re.compile(r"\w+(?:[-'’]\w+)*")
_UNIT_SPELLING = re.compile(r"°\s?[CF]\b|(?<=[а-яё])/(?=[а-яё])", re.IGNORECASE)
_KNOWN_LATIN = re.compile(
    r"(?<![\w+])(?:" + "|".join(sorted(map(re.escape, KNOWN_LATIN_WORDS), key=len, reverse=True)) + r")(?![\w+])",
    re.IGNORECASE,
)
_ACRONYM = re.compile(r"(?<![\w-])[A-Z]{2,5}(?![\w-])")
"""«HTTP», «SQL», «CPU»: read letter by letter («эйч ти ти пи»), as Russian speakers say them."""
_READABLE = re.compile(r"[а-яА-ЯёЁ\s.,:;!?()«»\"'—–\-%…]")


def violations_of(thesis: str, earlier_theses: Sequence[str] = ()) -> list[str]:
    """The kinds of violation of `thesis` (MISREAD, REPEATED, TOO_LONG), given the theses said
    before it in the same answer."""
    found = []
    if misread_reason(thesis):
        found.append(MISREAD)
    if any(repeats(thesis, earlier) for earlier in earlier_theses):
        found.append(REPEATED)
    if word_count(thesis) > MAX_WORDS:
        found.append(TOO_LONG)
    return found


@lru_cache(maxsize=8192)  # early speech asks it of every word of the thesis being written, per token
def misread_reason(thesis: str) -> str | None:
    """Why a Russian TTS would misread `thesis`, or None (see the module's doc)."""
    reasons = []
    written = _ACRONYM.sub(" ", _KNOWN_LATIN.sub(" ", _UNIT_SPELLING.sub(" ", thesis)))
    if dropped := sorted({char for char in thesis if char.isalnum() and _unreadable(char)}):
        reasons.append("no reading for " + " ".join(dropped))
    if latin := sorted({char for char in written if _LATIN.match(char)}):
        reasons.append("Latin letters " + " ".join(latin))
    if formula := sorted({char for char in written if _formula(char)}):
        reasons.append("formula characters " + " ".join(formula))
    if leftover := sorted(set(_READABLE.sub("", normalize_for_tts(thesis)))):
        reasons.append("the reading keeps " + " ".join(leftover))
    return "; ".join(reasons) or None


@lru_cache(maxsize=4096)
def _unreadable(char: str) -> bool:
    """A letter or digit the TTS normaliser drops: it has no reading at all."""
    return not normalize_for_tts(char).strip()


def _formula(char: str) -> bool:
    return char in FORMULA or unicodedata.category(char) == "Sm"


def repeats(thesis: str, earlier: str) -> bool:
    """Whether `thesis` says nothing `earlier` did not: the same text but for a letter or two, or
    no word (lemma) that `earlier` lacks. One word changed is a new thesis («Война с Германией» /
    «Война с Италией»), which is why the ratio is so high."""
    this, that = normalize(thesis), normalize(earlier)
    if this == that or fuzz.ratio(this, that) >= REPEAT_RATIO:
        return True
    return bool(this) and _lemma_set(this) <= _lemma_set(that)


def _lemma_set(normalized: str) -> frozenset[str]:
    return frozenset(lemma(word) for word in normalized.split())


def word_count(thesis: str) -> int:
    return len(_WRITTEN_WORD.findall(thesis))


_FINISHED = re.compile(r"(?:[.!?…]|\b0)[\s\"'»)\]*_`]*$")


def unfinished_end(text: str) -> bool:
    """Whether the answer's text stops in the middle of a line: no newline at its end and no
    sentence-final punctuation (or the lone «0» of small talk) on its last line."""
    if not text.strip() or text.endswith("\n"):
        return False
    return not _FINISHED.search(text.rstrip())


def answer_cut(text: str, pieces: int, ended_on_its_own: bool, full: bool, max_tokens: int) -> bool:
    """Whether an answer was cut by max_tokens, as far as the `ThesisLLM.stream` protocol shows.

    The protocol gives text pieces, not the provider's finish reason, so: an answer stopped at
    five theses (`full`), or closed by its reader, was not cut; one whose stream ended by itself
    was cut when it produced `max_tokens` pieces (llama.cpp yields at most one piece per token,
    so this is a lower bound that is exact when every token is a piece) or when its text stops
    mid-line (`unfinished_end`) — a model that stops by itself ends its last line first."""
    if full or not ended_on_its_own:
        return False
    return pieces >= max_tokens or unfinished_end(text)


# The post-filter: what the prompter does with a thesis before it is whispered.

_EAST_ASIAN = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af"  # kana, CJK ideographs, Hangul
_FOREIGN_ASIDE = re.compile(rf"\s*[(\[][^()\[\]]*[A-Za-z{_EAST_ASIAN}][^()\[\]]*[)\]]")
"""A parenthesised aside in another script: «хлорофилл (chlorophyll)» says it twice (one the voice
reads right, «(int)», stays)."""
_FORMULAS = {
    "CO2": "углекислый газ",
    "H2O": "вода",
    "O2": "кислород",
    "H2": "водород",
    "N2": "азот",
    "NaCl": "поваренная соль",
    "C6H12O6": "глюкоза",
    "DNA": "ДНК",
    "RNA": "РНК",
    "ATP": "АТФ",
}
"""Formulas and abbreviations a thesis often holds, by the word a Russian answer would say."""
_FORMULA_WORD = re.compile(
    r"(?<![\w])(" + "|".join(sorted(map(re.escape, _FORMULAS), key=len, reverse=True)) + r")(?![\w])"
)
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")


_NOT_IN_A_FORMULA = r"\w^=+*/<>_{}\\|-"
_STRAY_WORD = re.compile(
    rf"(?<![{_NOT_IN_A_FORMULA}])(?:[A-Za-z][A-Za-z'’]*|[{_EAST_ASIAN}]+)(?![{_NOT_IN_A_FORMULA}])"
)
"""A lone word in another script, not part of a formula: «живые organisms преобразуют» (the 1.5B
model's habit), a CJK character."""
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+(?=[,.;:!?)»])")
_ORPHAN_COMMAS = re.compile(r",(?=\s*[,.;:!?)»])|(?<=[:(«])\s*,")
"""Commas a left-out word leaves behind: «типы: int, bytes, frozenset.» → «типы: int.»"""
MIN_WORDS = 3
"""Shorter lines ("0", "Да.", "Строки (str).") are not theses, as written or once repaired."""


def repaired(thesis: str) -> str:
    """`thesis` with what can be fixed: foreign asides dropped, common formulas («CO₂», «H2O»)
    said in words, and a lone foreign word left out — the rest of the sentence still says it, and
    the word read by a guessed transliteration would not. Acronyms and words with a set reading
    stay (see `misread_reason`); a formula («c^2 = a^2 + b^2») is not repaired."""
    text = _FOREIGN_ASIDE.sub(_unless_misread, thesis.translate(_SUBSCRIPTS))
    text = _FORMULA_WORD.sub(lambda match: _FORMULAS[match.group(1)], text)
    text = _STRAY_WORD.sub(_unless_misread, text)
    return _ORPHAN_COMMAS.sub("", _SPACE_BEFORE_PUNCTUATION.sub("", text))


def _unless_misread(match: re.Match[str]) -> str:
    """An aside or a word stays when the voice reads it right («(int)», «HTTP»), else it goes."""
    return match.group(0) if not misread_reason(match.group(0).strip(" ()[]")) else ""


def whisperable(thesis: str, earlier_theses: Sequence[str] = ()) -> str | None:
    """The thesis to whisper (repaired), or None when it would still be misread or says again
    what an earlier one said: a wrong reading or a repeat is worse than one thesis fewer."""
    text = " ".join(repaired(thesis).split())
    if word_count(text) < MIN_WORDS or misread_reason(text):
        return None
    if any(repeats(text, earlier) for earlier in earlier_theses):
        return None
    return text


def readable_prefix(partial: str) -> str:
    """The part of a thesis still being written that can be spoken already: repaired, and cut
    before the first word a voice would misread (early speech starts on it)."""
    fixed = repaired(partial)
    text = " ".join(fixed.split()) + (" " if fixed[-1:].isspace() and fixed.strip() else "")
    words = text.split(" ")
    for end, word in enumerate(words):
        if word and misread_reason(word):
            return " ".join(words[:end]) + " " if end else ""  # the words before it are complete
    return text
