"""What the speaker gate needs from a speaker-embedding model."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cluelypro.packaged import ProgressCallback


class SpeakerEmbedder(Protocol):
    name: str
    """The model, e.g. "campplus_cn_en_common"; stored in voice profiles."""

    version: str
    """Changes whenever embeddings would change (weights, features); stored in voice profiles,
    which are refused by an embedder of another name or version."""

    dim: int
    """Length of the embedding vector."""

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load the model now; later calls do nothing."""

    def warm_up(self) -> None:
        """Run one tiny inference so the first real call is not slow."""

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """L2-normalised float32 embedding of float32 mono 16 kHz audio in [-1, 1]."""
