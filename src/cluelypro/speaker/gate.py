"""The speaker gate ("свой/чужой"): is an utterance the user's own voice? (SPEC §2.3)

It scores an utterance against the enrolled profile (speaker/enroll.py explains the thresholds).
"""

from __future__ import annotations

import numpy as np

from cluelypro.config import SAMPLE_RATE
from cluelypro.speaker.base import SpeakerEmbedder
from cluelypro.speaker.profiles import ProfileError, VoiceProfile, check_compatible

GATE_MAX_S = 10.0
"""The gate embeds at most the first 10 s of an utterance: CAM++ costs ~14 ms per second of audio
(34 ms for 2 s, 138 ms for 10 s, 271 ms for 20 s on one thread), and the first 10 s of the
shared 16–23 s clips embed within cosine 0.97–0.985 of the whole clip."""

DEFAULT_THRESHOLD = 0.55
"""For a profile without spread statistics (the cross-session operating point)."""


class SpeakerGate:
    """Says whether an utterance is the user's own voice ("own") or someone else's ("other")."""

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        profile: VoiceProfile | None,
        threshold: float | None = None,
        max_seconds: float = GATE_MAX_S,
    ) -> None:
        self.embedder = embedder
        self.profile = profile
        self.max_samples = max(1, round(max_seconds * SAMPLE_RATE))
        if profile is not None:
            check_compatible(profile, embedder)
        self.threshold = float(
            threshold
            if threshold is not None
            else profile.suggested_threshold
            if profile is not None
            else DEFAULT_THRESHOLD
        )

    @property
    def enabled(self) -> bool:
        return self.profile is not None

    def score(self, audio: np.ndarray) -> float:
        """Cosine similarity of the utterance (its first `max_seconds`) to the profile (−1 … 1)."""
        if self.profile is None:
            raise ProfileError("no voice profile is active; enroll with `cluelypro enroll`")
        return float(self.embedder.embed(audio[: self.max_samples]) @ self.profile.embedding)

    def role(self, audio: np.ndarray) -> tuple[str, float | None]:
        """("own", score) at or above the threshold, ("other", score) below; ("other", None)
        without a profile."""
        if self.profile is None:
            return "other", None
        score = self.score(audio)
        return ("own" if score >= self.threshold else "other"), score
