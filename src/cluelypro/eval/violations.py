"""What makes a thesis bad to whisper, checked one thesis at a time: pure functions, so that the
prompter can use the same checks as a post-filter before the TTS.

`misread` — a Russian voice would not say what was meant. The TTS reads
`normalize_for_tts(thesis)`, which is total: it reads digits in words (in agreement: «в 1914
году»), reads Latin words by a guessed transliteration and drops what it cannot read. So a thesis
is misread when:
- the thesis holds a letter or digit the normaliser has no reading for (CJK, Arabic, …): it is
  dropped, and the meaning with it;
- it holds Latin letters: their reading is a guess («H2O» → «эйч два оу»), and the prompt asks
  for none;
- it holds formula characters (FORMULA, and any Unicode math symbol): the normaliser spells a
  formula symbol by symbol («c^2 = a^2 + b^2» → «си в квадрате равно эй …»), which nobody can
  follow in an earpiece;
  units the normaliser reads as units («20 °C», «60 км/ч») are neither Latin nor a formula;
- what the normaliser gives still holds anything but Cyrillic letters, spaces and punctuation
  (a safety net should the normaliser stop being total, e.g. for another language).
Digits alone are not a violation: the normaliser reads them correctly in context.

`repeated` — the thesis says again what an earlier thesis of the answer said: the same
normalised text, a rapidfuzz ratio of at least REPEAT_RATIO, or the same set of lemmas.

`too_long` — over MAX_WORDS words as written (a number in digits is one word).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from rapidfuzz import fuzz

from cluelypro.eval.text import lemma, normalize
from cluelypro.tts.normalize import normalize_for_tts

MISREAD, REPEATED, TOO_LONG, CUT = "misread", "repeated", "too_long", "cut"
KINDS = (MISREAD, REPEATED, TOO_LONG, CUT)
MAX_WORDS = 15
REPEAT_RATIO = 90.0
FORMULA = frozenset("^=+*/<>_{}[]\\|~`#@$&")

_LATIN = re.compile(r"[A-Za-z]")
_WRITTEN_WORD = re.compile(r"\w+(?:[-'’]\w+)*")
_UNIT_SPELLING = re.compile(r"°\s?[CF]\b|(?<=[а-яё])/(?=[а-яё])", re.IGNORECASE)
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


def misread_reason(thesis: str) -> str | None:
    """Why a Russian TTS would misread `thesis`, or None (see the module's doc)."""
    reasons = []
    written = _UNIT_SPELLING.sub(" ", thesis)
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
    this, that = normalize(thesis), normalize(earlier)
    if this == that or fuzz.ratio(this, that) >= REPEAT_RATIO:
        return True
    return bool(this) and _lemma_set(this) == _lemma_set(that)


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
