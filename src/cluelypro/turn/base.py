"""What the turn detector needs from a learned end-of-turn model."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cluelypro.packaged import ProgressCallback


class TurnModel(Protocol):
    name: str
    """The model, e.g. "smart-turn-v3.2"."""

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load and verify the model now (later calls do nothing); raises ModelUnavailableError
        with a one-line fix when it is missing or its SHA-256 is not the pinned one. `progress`
        as for the other engines (engines.load_engines passes one)."""

    def warm_up(self) -> None:
        """Run one inference so the first real call is not slow."""

    def complete_probability(self, audio: np.ndarray) -> float:
        """The probability that the speaker's turn is complete, from the utterance so far
        (float32 mono 16 kHz in [-1, 1], any length)."""
