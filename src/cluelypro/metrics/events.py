"""Every event of the timeline (SPEC §3a), one frozen dataclass each.

A class's fields are the extra fields of its JSON line, in the order they are written; its
`event_name` is the line's `"event"`. A field the class does not have cannot be passed (TypeError
where the event is built, and a mypy error), and `Timeline.emit` takes nothing else; that these
classes are exactly SPEC §3a's list is checked by tests/test_timeline_golden.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from cluelypro.secrets import redact

OMITTED_WHEN_UNSET = {"omitted_when_unset": True}
"""Field metadata: the field is written only when it has a value (SPEC: call mode only)."""

EVENT_TYPES: dict[str, type[TimelineEvent]] = {}
"""Every event class by its JSON name."""


@dataclass(frozen=True)
class TimelineEvent:
    event_name: ClassVar[str]

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name in EVENT_TYPES:
            raise TypeError(f"two timeline events are called {name!r}")
        cls.event_name = name
        EVENT_TYPES[name] = cls

    def fields(self) -> dict[str, Any]:
        """The extra fields of its JSON line, in order (a field unset in call mode only is left out)."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if not (field.metadata.get("omitted_when_unset") and getattr(self, field.name) is None)
        }

    def redacted(self) -> TimelineEvent:
        """The same event with every configured secret taken out of its text fields."""
        texts = {name: value for name, value in self.fields().items() if isinstance(value, str)}
        cleaned = {name: redact(value) for name, value in texts.items()}
        return self if cleaned == texts else dataclasses.replace(self, **cleaned)


@dataclass(frozen=True)
class SpeechStart(TimelineEvent, name="speech_start"):
    pass


@dataclass(frozen=True)
class SpeechEnd(TimelineEvent, name="speech_end"):
    duration: float  # seconds; the event's t is the last voiced frame


@dataclass(frozen=True)
class Segment(TimelineEvent, name="segment"):
    """The utterance was handed to the next stages."""


@dataclass(frozen=True)
class Speaker(TimelineEvent, name="speaker"):
    role: str  # "own" | "other"
    score: float | None
    source: str | None = dataclasses.field(default=None, metadata=OMITTED_WHEN_UNSET)  # "mic" | "system"


@dataclass(frozen=True)
class Turn(TimelineEvent, name="turn"):
    """A learned end-of-turn decision, where one is used."""

    probability: float
    decision: str


@dataclass(frozen=True)
class Asr(TimelineEvent, name="asr"):
    text: str
    engine: str
    ms: int


@dataclass(frozen=True)
class Question(TimelineEvent, name="question"):
    accepted: bool
    reason: str


@dataclass(frozen=True)
class LlmFirstToken(TimelineEvent, name="llm_first_token"):
    provider: str
    ms: int


@dataclass(frozen=True)
class ProviderSkipped(TimelineEvent, name="provider_skipped"):
    stage: str
    provider: str
    reason: str
    after_output: bool


@dataclass(frozen=True)
class Thesis(TimelineEvent, name="thesis"):
    """A thesis complete in the LLM stream."""

    index: int
    text: str
    depth: int


@dataclass(frozen=True)
class TtsFirstAudio(TimelineEvent, name="tts_first_audio"):
    index: int
    engine: str


@dataclass(frozen=True)
class PlaybackStart(TimelineEvent, name="playback_start"):
    index: int


@dataclass(frozen=True)
class PlaybackEnd(TimelineEvent, name="playback_end"):
    index: int
    stall: float  # seconds its first playback waited for audio


@dataclass(frozen=True)
class Matched(TimelineEvent, name="matched"):
    """The user said thesis `index` (until-said mode)."""

    index: int
    method: str


@dataclass(frozen=True)
class Interrupted(TimelineEvent, name="interrupted"):
    old_q: int
    new_q: int


@dataclass(frozen=True)
class Device(TimelineEvent, name="device"):
    which: str  # "input" | "output" | "system"
    state: str  # "lost" | "back"
    name: str


@dataclass(frozen=True)
class Error(TimelineEvent, name="error"):
    stage: str
    message: str
