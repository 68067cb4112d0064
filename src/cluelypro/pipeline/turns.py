"""Whose turn it is on the LLM: a newer question goes before an older answer's deepening.

Every generation round — a question's answer, or a deepening of an answer — runs under a
`Cancellation` registered here. When a newer question is accepted, older deepening rounds are
cut (and, live, older answers still being written: the examiner has moved on), and no deepening
starts while a newer question waits for its answer. A cut round is not an empty one: if the
newer question turns out to have no answer, the older answer deepens again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class Cancellation:
    """Set once: the work it was handed to should stop at its next step."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(frozen=True)
class _Round:
    q: int
    deepening: bool
    token: Cancellation


class LlmTurns:
    def __init__(self, newer_question_cuts_answers: bool) -> None:
        """`newer_question_cuts_answers`: live, a newer question also cuts an older question's
        answer still being written; replaying a file as fast as possible, every question is
        answered in turn."""
        self.newer_question_cuts_answers = newer_question_cuts_answers
        self._rounds: list[_Round] = []  # answers from acceptance to their end, deepenings while they run

    def accepted(self, q: int) -> Cancellation:
        """Question `q` was accepted: its answer round starts waiting for the LLM."""
        for running in self._rounds:
            if running.q < q and (running.deepening or self.newer_question_cuts_answers):
                running.token.cancel()
        answer = _Round(q, deepening=False, token=Cancellation())
        self._rounds.append(answer)
        return answer.token

    def cut_all(self) -> None:
        """Listening stopped: every round under way stops at its next step."""
        for running in self._rounds:
            running.token.cancel()

    def answered(self, q: int) -> None:
        """The answer round of question `q` is over (with or without theses)."""
        self._rounds = [r for r in self._rounds if r.deepening or r.q != q]

    def newer_waiting(self, q: int) -> bool:
        """A question newer than `q` still waits for its answer."""
        return any(r.q > q and not r.deepening for r in self._rounds)

    @contextmanager
    def deepening(self, q: int) -> Iterator[Cancellation]:
        """A deepening round of question `q`'s answer, cut when a newer question is accepted."""
        running = _Round(q, deepening=True, token=Cancellation())
        if self.newer_waiting(q):
            running.token.cancel()
        self._rounds.append(running)
        try:
            yield running.token
        finally:
            self._rounds.remove(running)
