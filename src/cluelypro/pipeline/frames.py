"""Typed frames that flow between the pipeline's stages.

Every frame after the segmenter carries its chain's `Anchor`, so any stage can stamp events on
the input timeline, and every frame after the question filter carries the question id `q`, which
each hand-over checks so that nothing made for an old question reaches a newer one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from cluelypro.metrics.timeline import Anchor
from cluelypro.vad.segmenter import Utterance


@dataclass(frozen=True)
class SpeechSegment:
    utterance: Utterance
    anchor: Anchor


@dataclass(frozen=True)
class Question:
    q: int
    utt: int
    text: str
    anchor: Anchor


@dataclass(frozen=True)
class Thesis:
    q: int
    utt: int
    index: int  # 1-based, in the order spoken
    text: str
    depth: int
    anchor: Anchor


@dataclass
class SpokenThesis:
    """A thesis on its way to the earpiece: its chunks arrive while it is already queued."""

    thesis: Thesis
    chunks: asyncio.Queue[np.ndarray | None] = field(default_factory=asyncio.Queue)


END = None
"""Sent down a queue when its producer has finished: the stage drains and passes it on."""
