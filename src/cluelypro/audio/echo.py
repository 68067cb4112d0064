"""The echo gate: without headphones the microphone hears the prompter, so the input stage
mutes what it hears while the earpiece plays (SPEC: USE_HEADPHONES=0, SPEAKER_TAIL_MS).

The earpiece tells the gate until when its queued audio will be heard; the input stage asks
whether a moment of input is echo. Neither side reads the other's state.
"""

from __future__ import annotations


class EchoGate:
    def __init__(self, tail_s: float) -> None:
        """`tail_s`: how long after playback the room may still carry it back to the microphone."""
        self.tail_s = tail_s
        self.playing_until = 0.0  # input time when the audio queued so far will have been heard

    def playing(self, until: float) -> None:
        """The earpiece has queued audio that will have been heard at input time `until`."""
        self.playing_until = until

    def stopped(self) -> None:
        """The earpiece dropped whatever was queued: nothing more will be heard from it."""
        self.playing_until = 0.0

    def is_echo(self, t: float) -> bool:
        """Whether input at time `t` may be the prompter's own voice coming back."""
        return t < self.playing_until + self.tail_s
