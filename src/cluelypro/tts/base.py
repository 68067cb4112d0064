"""The protocol every speech synthesizer implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from cluelypro.packaged import ProgressCallback


class SpeechSynthesizer(Protocol):
    name: str
    sample_rate: int  # of the chunks `synthesize` yields; known after `load`

    def load(self, progress: ProgressCallback | None = None) -> None: ...

    def warm_up(self) -> None: ...

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Float32 mono chunks as the engine produces them; the first comes as early as it can."""
        ...
