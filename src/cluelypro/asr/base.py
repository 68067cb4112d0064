"""What the pipeline needs from a speech recogniser."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cluelypro.packaged import ProgressCallback


class SpeechRecognizer(Protocol):
    name: str
    """A short label for logs and metrics, e.g. "whisper-base"."""

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load (and, for embedded models, assemble) the model now; later calls do nothing."""

    def warm_up(self) -> None:
        """Run one tiny inference so the first real call is not slow."""

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of float32 mono 16 kHz audio in [-1, 1]; "" for silence or phantom output."""
