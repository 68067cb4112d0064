"""Typed frames that flow between the pipeline's stages.

Every frame after the segmenter carries its chain's `Anchor`, so any stage can stamp events on
the input timeline, and every frame after the question filter carries the question id `q`, which
each hand-over checks so that nothing made for an old question reaches a newer one. Its
`cancellation` is set when a newer question takes the LLM's turn (pipeline/turns.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cluelypro.metrics.timeline import Anchor
from cluelypro.pipeline.turns import Cancellation
from cluelypro.vad.segmenter import Utterance

if TYPE_CHECKING:  # speculation.py builds on these frames
    from cluelypro.pipeline.speculation import LlmPrefetch, Speculation


@dataclass(frozen=True)
class Transcript:
    text: str
    ms: int
    engine: str
    skipped: tuple = ()  # fallback.Skipped for each ASR engine that failed first


@dataclass(frozen=True)
class Heard:
    """What the speaker gate and the recogniser made of an utterance."""

    role: str  # "own" or "other"
    score: float | None
    transcript: Transcript | None  # None: own speech that the advance policy does not need
    leaked: bool = False  # call mode: microphone speech not in the user's voice (the call, heard from
    # the laptop's speakers): never answered, never taken as the user's


@dataclass(frozen=True)
class SpeechSegment:
    utterance: Utterance
    anchor: Anchor
    speculation: Speculation | None = None  # ASR (and LLM) started on the utterance's final pause
    source: str | None = None  # call mode: "mic" or "system"; None with a single source


@dataclass(frozen=True)
class Question:
    q: int
    utt: int
    text: str
    anchor: Anchor
    said_at: float  # input time of the end of its speech
    commentary: bool = False  # a statement answered with facts (COMMENTARY_MODE)
    prefetch: LlmPrefetch | None = None  # its answer, already started on the pause
    cancellation: Cancellation = field(default_factory=Cancellation)  # a newer question took its turn


END = None
"""Sent down a queue when its producer has finished: the stage drains and passes it on."""
