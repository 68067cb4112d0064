"""Learned end of turn: at the speculative pause a turn model (turn/) says how likely the
speaker's turn is complete; the policy here turns that into a decision the segmenter applies.

"complete" (probability ≥ TURN_COMPLETE_AT) ends the utterance at once, without waiting for
END_SILENCE_MS; "incomplete" (below TURN_INCOMPLETE_BELOW) lets this pause last up to
TURN_HOLD_MS, so a question paused in the middle («Что такое инфляция, … и как её измеряют?») is
heard whole; in between, "unsure", the fixed window decides as it would without a model. Three
ways, because Smart Turn separates Russian questions weakly: on eval/turn it gives ≥ 0.5 at 59 %
of mid-sentence pauses (after an opener such as «Скажите,» it is sure the turn is over) and at
88 % of true ends, so a single threshold cut more paused questions than the fixed window did
(`cluelypro eval turn`; README "End of turn"). Pure logic: no engine, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cluelypro.config import Settings
from cluelypro.vad.segmenter import Segmenter, SegmenterEvent

TurnDecision = Literal["complete", "incomplete", "unsure"]


@dataclass(frozen=True)
class TurnPolicy:
    complete_at: float = 0.95
    incomplete_below: float = 0.5
    hold_s: float = 1.2

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnPolicy:
        return cls(settings.turn_complete_at, settings.turn_incomplete_below, settings.turn_hold_ms / 1000)

    def decide(self, probability: float) -> TurnDecision:
        if probability >= self.complete_at:
            return "complete"
        return "incomplete" if probability < self.incomplete_below else "unsure"


def apply_turn(segmenter: Segmenter, utt: int, decision: TurnDecision, policy: TurnPolicy) -> list[SegmenterEvent]:
    """The decision on `utt`'s pause, applied: the utterance's end now, or a longer pause."""
    if decision == "complete":
        return segmenter.end_turn(utt)
    if decision == "incomplete":
        segmenter.hold_turn(utt, policy.hold_s)
    return []
