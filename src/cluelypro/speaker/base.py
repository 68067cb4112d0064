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


def l2_normalised(vector: np.ndarray) -> np.ndarray:
    """`vector` as flat float32 of length 1 — how every embedding and profile is compared.

    A zero (or non-finite) vector has no direction, so it raises ValueError rather than
    becoming zeros (which would score 0 against every voice) or NaN (which would poison a
    profile): the speaker gate reports the failure and counts the voice as the other speaker's.
    """
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the speaker embedding is zero or not finite")
    return vector / norm
