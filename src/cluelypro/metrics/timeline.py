"""The clock and the event timeline (SPEC §3a): the one place that owns time.

Every event carries `t`, seconds on the input timeline. In live and real-time replay the input
clock is wall time since the start. With `--fast` the input runs ahead of the wall, so each
utterance's chain gets an anchor: the input time of its speech end plus the wall time elapsed
since that speech end was detected. One formula serves both: t = anchor.t + (now − anchor.wall).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cluelypro.metrics.events import TimelineEvent
from cluelypro.private_files import open_private

log = logging.getLogger(__name__)


def milliseconds_since(started: float) -> int:
    """Whole milliseconds since `started`, a time.monotonic() reading (for engine timings)."""
    return round((time.monotonic() - started) * 1000)


@dataclass(frozen=True)
class Anchor:
    """A point where the input timeline and the monotonic clock are known to coincide."""

    t: float
    monotonic: float

    def now(self) -> float:
        return self.t + (time.monotonic() - self.monotonic)


class Clock:
    def __init__(self, fast: bool = False) -> None:
        self.fast = fast
        self._start = time.monotonic()

    def restart(self, already_elapsed: float = 0.0) -> None:
        """Input time `already_elapsed` is now (called when audio starts flowing)."""
        self._start = time.monotonic() - already_elapsed

    def input_now(self) -> float:
        """Real-time input position; meaningful only when not fast."""
        return time.monotonic() - self._start

    def wall_anchor(self) -> Anchor:
        """Anchor for real-time input: input time runs with the wall."""
        return Anchor(0.0, self._start)

    def anchor_for_speech_end(self, speech_end_t: float) -> Anchor:
        """The anchor of the chain started by a speech end detected just now."""
        if self.fast:
            return Anchor(speech_end_t, time.monotonic())
        return self.wall_anchor()


EVENTS_KEPT = 2_000
"""Events kept in memory (the JSON lines file has them all): hours of conversation stay bounded.
Whoever needs a figure over the whole run subscribes an observer instead."""


@dataclass(frozen=True)
class Record:
    """One entry of the timeline: a typed event, when (input seconds `t`, unix `wall`) and whose
    (utterance `utt`, question `q`). Observers get these; `line()` is what the JSON file holds."""

    t: float
    wall: float
    utt: int | None
    q: int | None
    event: TimelineEvent

    @property
    def name(self) -> str:
        return self.event.event_name

    def line(self) -> dict[str, Any]:
        """Its JSON object (SPEC §3a): t, wall, utt, q, event, then the event's fields."""
        return {"t": self.t, "wall": self.wall, "utt": self.utt, "q": self.q, "event": self.name, **self.event.fields()}


Observer = Callable[[Record], None]


class Timeline:
    """Writes events as JSON lines as they happen, tells observers, and keeps the most recent
    ones in memory. No key ever reaches an event: text fields lose every configured secret."""

    def __init__(self, jsonl_path: Path | None = None, keep: int = EVENTS_KEPT) -> None:
        self.events: deque[Record] = deque(maxlen=keep)
        self._observers: list[Observer] = []
        self._file: IO[str] | None = None
        if jsonl_path is not None:
            jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open_private(jsonl_path, "w")

    def subscribe(self, observer: Observer) -> None:
        """`observer` is called with every record from now on, in the emitting task; one that
        raises is logged and the others still hear of the event."""
        self._observers.append(observer)

    def emit(self, event: TimelineEvent, t: float, utt: int | None = None, q: int | None = None) -> Record:
        if not isinstance(event, TimelineEvent) or type(event) is TimelineEvent:
            raise TypeError(f"a timeline event is one of cluelypro.metrics.events, not {event!r}")
        record = Record(round(t, 4), round(time.time(), 4), utt, q, event.redacted())
        self.events.append(record)
        self._write(record)
        for observer in self._observers:
            try:
                observer(record)
            except Exception:  # a broken view must not stop the prompter it watches
                log.exception("an observer of the timeline failed on %s", record.name)
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, record: Record) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(record.line(), ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as error:  # a full disk must not stop the prompter
            log.warning("event log stopped (%s); events are kept in memory for the summary", error)
            self._file = None
