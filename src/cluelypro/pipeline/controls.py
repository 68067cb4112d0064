"""The user's controls over a running prompter — mute/unmute the earpiece, repeat the last
thesis, skip to the next — shared by the web dashboard (`serve`) and the terminal keys of `run`.

Muting is done in front of the earpiece (`ControlledEarpiece` plays silence in place of the
theses), so the plan, its repeats and its timing go on unheard; repeat and skip act on the answer
being spoken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cluelypro.audio.earpiece import Earpiece
from cluelypro.audio.echo import EchoGate

if TYPE_CHECKING:
    from cluelypro.pipeline.pipeline import Pipeline
    from cluelypro.prompter.plan import PlannedThesis

USER_CONTROLS = ("mute", "unmute", "repeat", "skip")


class NotApplicable(Exception):
    """A control that cannot be done now; the message says why."""


class ControlledEarpiece:
    """The earpiece the pipeline holds: another earpiece behind a mute switch (and swappable)."""

    def __init__(self, inner: Earpiece) -> None:
        self.inner = inner
        self.muted = False
        self._echo: EchoGate | None = None

    @property
    def echo(self) -> EchoGate | None:
        return self._echo

    @echo.setter
    def echo(self, gate: EchoGate | None) -> None:
        self._echo = gate
        self.inner.echo = gate

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        return await self.inner.play(np.zeros_like(chunk) if self.muted else chunk, at)

    def stop(self) -> None:
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if muted:
            self.stop()  # what the earpiece already holds is not heard either

    def switch(self, inner: Earpiece) -> Earpiece:
        """Play into `inner` from now on; returns the earpiece it replaces (stopped)."""
        old = self.inner
        old.stop()
        inner.echo = self._echo
        self.inner = inner
        return old


def control(action: str, pipeline: Pipeline, earpiece: ControlledEarpiece) -> PlannedThesis | None:
    """Do one of USER_CONTROLS; returns the thesis repeated or skipped (None for mute and unmute).
    NotApplicable when it cannot be done now."""
    if action in ("mute", "unmute"):
        earpiece.set_muted(action == "mute")
        return None
    if action not in ("repeat", "skip"):
        raise ValueError(f"no control {action!r}; use {', '.join(USER_CONTROLS)}")
    answer = pipeline.answer
    if answer is None:
        raise NotApplicable(f"nothing to {action}: no answer is being spoken")
    thesis = answer.repeat_now() if action == "repeat" else answer.skip()
    if thesis is None:
        raise NotApplicable("no thesis has been spoken yet" if action == "repeat" else "no thesis is left")
    return thesis
