"""Cut a streamed LLM answer into theses the moment each one is complete.

Each thesis goes through the prompter's post-filter (`prompter.speakable.whisperable`): repaired
where it can be, dropped when a voice would misread it or it repeats an earlier one.

The model is asked for numbered lines ("1. …\\n2. …"). A thesis is complete at its newline, or
when the next number starts on the same line ("1. a 2. b"). The result never depends on how the
stream was chunked: a boundary is only taken once the text that proves it has arrived.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cluelypro.prompter.speakable import MIN_WORDS, readable_prefix, whisperable

MAX_THESES = 5
"""A round says at most five theses (SPEC §2.6): a small model sometimes lists on and on."""

_MARKER = re.compile(r"(?:(\d{1,2})\s*[.)]\s*|[-*•–—]\s+)")  # "1. ", "2) ", "- ", "* ", "• "
_LEADING_NUMBER = re.compile(r"\s*[*_]*\s*(\d{1,2})[.)]")
_INLINE_NUMBER = re.compile(r"(?<=\s)(\d{1,2})[.)]\s")  # needs the space after it to be sure
_LABEL = re.compile(r"^(?:тезис\s*\d*|ответ)\s*[:.—-]\s*", re.IGNORECASE)
_QUOTES = "\"'«»“”„"


HEAD_WORDS = 2
_WORD = re.compile(r"\w")
_DASHES = ("—", "–", "-")
_LEANING = frozenset(
    "в во на о об обо с со к ко у по за из от до для при без над под про через и а но или что "
    "как не ни же ли бы это the a an of in on to and or".split()
)
"""Prepositions, conjunctions and particles lean on the next word: a head never ends on one."""


def speakable_head(partial: str) -> str:
    """The first words of a thesis still being written that can be spoken already ("" if none).

    A head is the first HEAD_WORDS complete words, or more up to a clause boundary (a comma,
    semicolon, colon or dash) or past a word that leans on the next one («Погода в Москве», not
    «Погода в»). TTS starts there while the model writes on: at ~15 tokens/s the model stays
    ahead of speech. Dashes are not words; a word is complete once the text after it has begun.
    """
    complete = partial[: partial.rfind(" ")].split() if " " in partial else []
    words = 0
    for position, token in enumerate(complete):
        if token in _DASHES:
            if words >= HEAD_WORDS:
                return " ".join(complete[: position + 1])
            continue
        words += bool(_WORD.search(token))
        leaning = token.casefold().strip(".,;:«»\"'()") in _LEANING
        if words >= HEAD_WORDS and (token[-1] in ",;:" or not leaning):
            return " ".join(complete[: position + 1])
    return ""


class ThesisStreamParser:
    def __init__(self, already_said: Iterable[str] = ()) -> None:
        """`already_said`: theses given before (a deepening request); they are not repeated."""
        self._buffer = ""
        self._last_number = 0
        self._marked = False  # some line had a number or bullet: unmarked lines are epilogue
        self._said = list(already_said)  # say each thesis once (nor one that only rephrases it)
        self._silent = False  # the answer began with "0": not a question, ignore the rest
        self.lines_done = 0  # segments (lines, or numbered items on one line) consumed so far
        self.given = 0  # theses returned so far

    @property
    def full(self) -> bool:
        """MAX_THESES have been returned: the rest of the stream is not wanted."""
        return self.given >= MAX_THESES

    def feed(self, piece: str) -> list[str]:
        """Theses completed by this piece of the stream."""
        self._buffer += piece.replace("\r\n", "\n").replace("\r", "\n")
        return self._drain(final=False)

    def finish(self) -> list[str]:
        """The last thesis, once the stream has ended."""
        return self._drain(final=True)

    def numbered_partial(self) -> str:
        """The numbered thesis being written now, as far as it has come ("" if none): lets TTS
        start on a thesis's first words while the model is still writing the rest."""
        marker = _MARKER.match(self._buffer.lstrip())
        if self._silent or marker is None or not marker.group(1) or "\n" in self._buffer:
            return ""
        return readable_prefix(self._buffer.lstrip()[marker.end() :].replace("**", ""))

    def _drain(self, final: bool) -> list[str]:
        theses: list[str] = []
        while not self.full:
            end, resume = self._boundary()
            if end is None:
                if not final:
                    return theses
                end = resume = len(self._buffer)
            segment, self._buffer = self._buffer[:end], self._buffer[resume:]
            self.lines_done += 1
            cleaned = self._clean(segment)
            thesis = whisperable(cleaned, self._said) if cleaned else None
            if thesis:
                self._said.append(thesis)
                self.given += 1
                theses.append(thesis)
            if not self._buffer:
                return theses
        return theses

    def _boundary(self) -> tuple[int | None, int]:
        """Where the current segment ends and the next one starts, if already known."""
        newline = self._buffer.find("\n")
        leading = _LEADING_NUMBER.match(self._buffer)
        expected = (int(leading.group(1)) if leading else self._last_number) + 1
        for match in _INLINE_NUMBER.finditer(self._buffer):
            if newline != -1 and match.start() > newline:
                break
            if int(match.group(1)) == expected:
                return match.start(), match.start()
        if newline != -1:
            return newline, newline + 1
        return None, 0

    def _clean(self, line: str) -> str | None:
        text = line.replace("**", "").replace("__", "").replace("`", "").strip()
        text = text.lstrip("#").strip()
        if text in ("0", "0.") and not self.given:
            self._silent = True
        if self._silent or not text:
            return None
        marker = _MARKER.match(text)
        if marker:
            self._marked = True
            if marker.group(1):
                self._last_number = int(marker.group(1))
            text = text[marker.end() :]
        elif self._marked:
            return None  # epilogue after the list ("Надеюсь, это поможет!")
        if text.endswith(":"):
            return None  # preamble ("Вот тезисы:") or a heading over sub-items ("…, включая:")
        text = _LABEL.sub("", text).strip()
        if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
            if sum(char in _QUOTES for char in text) == 2:  # quoted whole, not «Война и мир» — …
                text = text[1:-1].strip()
        if len(text.split()) < MIN_WORDS:
            return None
        return text
