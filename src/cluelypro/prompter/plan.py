"""The thesis plan of one question: what to say next (SPEC §2.7). A pure state machine.

The pipeline feeds it events — a thesis complete in the LLM stream (`add`), the end of a
generation round (`round_done`), the end of a playback (`spoken`), the user having said a thesis
(`said_by_user`) — and asks it what to speak (`next_to_say`), how long it may sleep
(`wait_hint`), what to synthesise ahead (`upcoming`) and when to ask the LLM for deeper theses
(`deepening_due`, then `start_deepening`). Every time is a float in seconds passed in by the caller; nothing here
sleeps, reads a clock or touches an engine.

Rounds: round 0 is the answer itself, open from the start; the pipeline closes it with
`round_done()` when the LLM stream ends. Deepening round d (1 ≤ d ≤ max_depth) opens with
`start_deepening()` once `deepening_due()` and closes with `round_done()`; a round that added nothing new
ends the deepening. A round cut short (`round_cut()`, a newer question took the LLM) does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cluelypro.prompter.matcher import near_duplicate

Policy = Literal["repeat", "until-said"]
POLICIES = ("repeat", "until-said")


@dataclass(frozen=True)
class PlannedThesis:
    q: int
    index: int
    text: str
    depth: int


class ThesisPlan:
    def __init__(
        self,
        q: int,
        policy: Policy = "repeat",
        repeats: int = 2,
        repeat_interval_s: float = 10.0,
        max_depth: int = 7,
        deepen_when_left: int = 1,
        duplicate: Callable[[str, str], bool] = near_duplicate,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown thesis policy {policy!r}; expected one of {POLICIES}")
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        self.q = q
        self.policy = policy
        self.repeats = repeats
        self.repeat_interval_s = repeat_interval_s
        self.max_depth = max_depth
        self.deepen_when_left = deepen_when_left
        self._duplicate = duplicate
        self._theses: list[PlannedThesis] = []
        self._done: set[int] = set()
        self._playing: int | None = None
        self._plays = 0
        self._last_end: float | None = None
        self.depth = 0
        self._round_open = True
        self._round_added = 0
        self._exhausted = False
        self._last_spoken: int | None = None  # the thesis whose playback ended last
        self._again: int | None = None  # a thesis to say once more now (`repeat_now`)
        self._replaying = False  # the thesis playing is such a repeat

    @property
    def theses(self) -> tuple[PlannedThesis, ...]:
        return tuple(self._theses)

    @property
    def finished(self) -> bool:
        """Nothing left to say and nothing more to come."""
        no_more_rounds = self._exhausted or self.depth >= self.max_depth
        idle = self._playing is None and self._again is None
        return not self._round_open and no_more_rounds and idle and self.current() is None

    def add(self, text: str) -> PlannedThesis | None:
        """Append a thesis of the open round; an empty one or a repeat of an earlier one is dropped."""
        text = text.strip()
        if not text or any(self._duplicate(text, earlier.text) for earlier in self._theses):
            return None
        thesis = PlannedThesis(self.q, len(self._theses) + 1, text, self.depth)
        self._theses.append(thesis)
        self._round_added += 1
        return thesis

    def revise(self, index: int, text: str) -> PlannedThesis:
        """Replace the text of thesis `index` (a thesis started from its first words is complete)."""
        old = self._theses[index - 1]
        self._theses[index - 1] = PlannedThesis(old.q, old.index, text.strip(), old.depth)
        return self._theses[index - 1]

    def current(self) -> PlannedThesis | None:
        return next((t for t in self._theses if t.index not in self._done), None)

    def upcoming(self, count: int) -> list[PlannedThesis]:
        """The current thesis and the ones after it, for synthesis ahead of playback."""
        return [t for t in self._theses if t.index not in self._done][:count]

    @property
    def playing(self) -> int | None:
        """The index of the thesis playing now, if one is."""
        return self._playing

    def next_to_say(self, now: float) -> PlannedThesis | None:
        """The thesis to play now (it counts as playing until `spoken`), or None."""
        if self._again is not None and self._playing is None:
            self._playing, self._again, self._replaying = self._again, None, True
            return self._theses[self._playing - 1]
        thesis = self.current()
        if self._playing is not None or thesis is None or self._interval_left(now) > 0:
            return None
        self._playing = thesis.index
        return thesis

    def wait_hint(self, now: float) -> float | None:
        """Seconds until `next_to_say` can return a thesis; None: only an event can change that."""
        if self._playing is not None:
            return None
        if self._again is not None:
            return 0.0
        if self.current() is None:
            return None
        return self._interval_left(now)

    def spoken(self, index: int, now: float) -> None:
        """The playback of thesis `index` ended at `now` (a stale index is ignored)."""
        if index != self._playing:
            return
        self._playing, self._last_spoken = None, index
        current = self.current()
        if self._replaying:  # said again on request: it does not count as one of its plays
            self._replaying = False
            if current is not None and current.index == index:
                self._last_end = now
            return
        if current is None or current.index != index:
            return
        self._plays += 1
        self._last_end = now
        if self.policy == "repeat" and self._plays >= self.repeats:
            self._finish(index)

    def repeat_now(self) -> PlannedThesis | None:
        """The user asked to hear the last thesis again: the one playing, else the one spoken
        last, is said next, without waiting for its interval and without counting as one of its
        plays. None when nothing has been spoken yet."""
        index = self._playing if self._playing is not None else self._last_spoken
        if index is None:
            return None
        self._again = index
        return self._theses[index - 1]

    def skip(self) -> PlannedThesis | None:
        """The user asked for the next thesis: the current one is done (said or not). Returns the
        thesis skipped, or None when there is no current thesis."""
        current = self.current()
        if current is None:
            return None
        self._again = None
        self._finish(current.index)
        return current

    def said_by_user(self, index: int) -> bool:
        """The user said thesis `index`: it is never spoken again. True when that advanced the
        plan (it was the current thesis); a later thesis is only skipped when its turn comes."""
        if not 1 <= index <= len(self._theses) or index in self._done:
            return False
        current = self.current()
        self._finish(index)
        return current is not None and current.index == index

    def deepening_due(self) -> bool:
        """Whether the plan is about to run out, so the LLM should be asked for deeper theses
        (at most once per round: not while a round is open)."""
        if self._round_open or self._exhausted or self.depth >= self.max_depth:
            return False
        return len(self._theses) - len(self._done) <= self.deepen_when_left

    def start_deepening(self) -> None:
        """Open deepening round `depth + 1`; only when `deepening_due()`."""
        if not self.deepening_due():
            raise RuntimeError("no deepening round is due")
        self.depth += 1
        self._round_open = True
        self._round_added = 0

    def round_done(self) -> None:
        """The open round (the answer or a deepening) finished streaming."""
        if not self._round_open:
            return
        self._round_open = False
        if self._round_added == 0:
            self._exhausted = True

    def round_cut(self) -> None:
        """The open round was cut before it ended (a newer question took the LLM): unlike an
        empty round it does not end the deepening; a round that gave nothing did not happen."""
        if not self._round_open:
            return
        self._round_open = False
        if self._round_added == 0 and self.depth > 0:
            self.depth -= 1

    def wind_down(self) -> None:
        """No more deepening (a round under way may finish), and each thesis left is said once
        more at most (the input ended)."""
        self._exhausted = True
        self.policy = "repeat"
        self.repeats = 1

    def _finish(self, index: int) -> None:
        current = self.current()
        self._done.add(index)
        if current is not None and current.index == index:
            self._plays = 0
            self._last_end = None

    def _interval_left(self, now: float) -> float:
        if self.policy != "until-said" or self._last_end is None:
            return 0.0
        return max(0.0, self._last_end + self.repeat_interval_s - now)
