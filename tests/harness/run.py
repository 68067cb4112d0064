"""The fault harness: the real `Pipeline`, `Answer`, fallback chains, `Clock(fast=True)` and track
earpiece, around scripted engines (harness/engines.py), driven by a script of steps.

    harness = Harness({1: "Что такое фотосинтез?"}, llm=ScriptedLLM({"фотосинтез": "1. …"}))
    events = harness.run(Say(1), WaitFor(lambda e: e["event"] == "playback_start"), Say(2))

`Say(k)` speaks line k (a code the scripted engines decode), `Quiet(s)` is silence, and
`WaitFor(predicate)` holds the input until an event matches (or fails the run after its timeout),
which makes races deterministic: "the examiner asks again once the first thesis is playing".
A run that does not end within its timeout fails as hung, with the events seen so far. The
console's live view is subscribed too, so tests can read the lines a user would see (capsys).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cluelypro.audio.earpiece import Earpiece, TrackEarpiece
from cluelypro.cli import console
from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE, Settings
from cluelypro.engines import Engines
from cluelypro.metrics.timeline import Clock, Record, Timeline
from cluelypro.pipeline.pipeline import Pipeline
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.speaker.profiles import VoiceProfile
from harness.engines import (
    ScriptedDetector,
    ScriptedEmbedder,
    ScriptedLLM,
    ScriptedRecognizer,
    ScriptedSynthesizer,
    ScriptedTurnModel,
    speech,
)

FAST_SETTINGS = {
    "llm_ttft_budget_s": 0.3,
    "asr_timeout_s": 0.3,
    "tts_first_audio_budget_s": 0.3,
    "engine_watchdog_s": 1.0,
    "deepening_max_depth": 1,
}
"""Budgets and limits short enough for tests in milliseconds; the logic is the same."""
POLL_S = 0.01

Event = dict[str, Any]
"""An event as its JSON line has it (SPEC §3a): what the scripts and assertions read."""


@dataclass(frozen=True)
class Say:
    line: int
    seconds: float = 0.8
    pause_at_s: float | None = None  # a pause of `pause_s` this far in: speculation that is dropped
    pause_s: float = 0.2
    quiet_after_s: float = 0.6  # enough for the end of speech; 0: the speaker goes on

    def audio(self) -> np.ndarray:
        def quiet(seconds: float) -> np.ndarray:
            return np.zeros(round(seconds * SAMPLE_RATE), np.float32)

        if self.pause_at_s is None:
            return np.concatenate([speech(self.line, self.seconds), quiet(self.quiet_after_s)])
        first, rest = speech(self.line, self.pause_at_s), speech(self.line, self.seconds - self.pause_at_s)
        return np.concatenate([first, quiet(self.pause_s), rest, quiet(self.quiet_after_s)])


@dataclass(frozen=True)
class Quiet:
    seconds: float = 1.0

    def audio(self) -> np.ndarray:
        return np.zeros(round(self.seconds * SAMPLE_RATE), np.float32)


@dataclass(frozen=True)
class Sleep:
    """Wall time passes with no input (input time does not move: e.g. a provider's cool-down)."""

    seconds: float


@dataclass(frozen=True)
class WaitFor:
    matches: Callable[[Event], bool]
    what: str = "an event"
    timeout_s: float = 5.0


Step = Say | Quiet | Sleep | WaitFor


def event(name: str, **fields: object) -> Callable[[Event], bool]:
    """A predicate: an event called `name` with these field values."""
    return lambda e: e["event"] == name and all(e.get(key) == value for key, value in fields.items())


class HarnessHung(AssertionError):
    pass


class Harness:
    def __init__(
        self,
        lines: dict[int, str],
        *,
        llms: list[ScriptedLLM] | None = None,
        recognizers: list[ScriptedRecognizer] | None = None,
        synthesizers: list[ScriptedSynthesizer] | None = None,
        own: Iterable[int] = (),
        embedder: ScriptedEmbedder | None = None,
        turn: ScriptedTurnModel | None = None,
        earpiece: Callable[[Clock], Earpiece] | None = None,
        events_path: Path | None = None,
        **settings: object,
    ) -> None:
        self.lines = lines
        self.events_path = events_path  # where the timeline also writes its JSON lines
        self.detector = ScriptedDetector()
        self.recognizers = recognizers or [ScriptedRecognizer(lines)]
        self.llms = llms or [ScriptedLLM({})]
        self.synthesizers = synthesizers or [ScriptedSynthesizer()]
        self.embedder = embedder or ScriptedEmbedder(set(own))
        self.gated = bool(own) or embedder is not None
        self.turn = turn  # a learned end of turn; None: the fixed window
        self.make_earpiece = earpiece or (lambda clock: TrackEarpiece(clock, 0, keep=False))
        self.settings = Settings(_env_file=None, **{**FAST_SETTINGS, **settings})
        self.events: list[Event] = []
        self.asyncio_errors: list[str] = []
        self._hooks: list[tuple[Callable[[Event], bool], Callable[[], None]]] = []
        self.pipeline: Pipeline | None = None

    def when(self, matches: Callable[[Event], bool], action: Callable[[], None]) -> None:
        """Run `action` once, the first time an event matches (e.g. release a hung engine)."""
        self._hooks.append((matches, action))

    @property
    def llm(self) -> ScriptedLLM:
        return self.llms[-1]

    @property
    def recognizer(self) -> ScriptedRecognizer:
        return self.recognizers[-1]

    @property
    def synthesizer(self) -> ScriptedSynthesizer:
        return self.synthesizers[-1]

    def run(self, *steps: Step, timeout_s: float = 20.0) -> list[Event]:
        """Run the script through a fresh pipeline, with asyncio's debug mode on; returns the
        timeline. Errors asyncio logs (a task exception never retrieved) are in `asyncio_errors`."""
        handler = _Collect(self.asyncio_errors)
        logging.getLogger("asyncio").addHandler(handler)
        try:
            asyncio.run(self._main([*steps, Quiet(1.0)], timeout_s), debug=True)
            gc.collect()  # an unretrieved task exception is logged when the task is collected
        finally:
            logging.getLogger("asyncio").removeHandler(handler)
            for engine in (*self.llms, *self.recognizers, *self.synthesizers):
                engine.hang.release()
        return self.events

    def of(self, name: str, **fields: object) -> list[Event]:
        return [e for e in self.events if event(name, **fields)(e)]

    def engines(self) -> Engines:
        return Engines(
            self.detector,
            list(self.recognizers),
            list(self.llms),
            list(self.synthesizers),
            self.embedder if self.gated else None,
            self.turn,
        )

    def _gate(self) -> SpeakerGate | None:
        if not self.gated:
            return None
        profile = VoiceProfile(
            "user",
            self.embedder.name,
            self.embedder.version,
            2,
            np.array([1.0, 0.0], np.float32),
            suggested_threshold=0.5,
        )
        return SpeakerGate(self.embedder, profile)

    async def _main(self, steps: list[Step], timeout_s: float) -> None:
        clock, timeline = Clock(fast=True), Timeline(self.events_path)
        self.pipeline = Pipeline(
            self.settings, self.engines(), clock, timeline, self.make_earpiece(clock), self._gate()
        )
        changed = asyncio.Event()

        def observe(record: Record) -> None:
            line = record.line()
            self.events.append(line)
            changed.set()
            for hook in [hook for hook in self._hooks if hook[0](line)]:
                self._hooks.remove(hook)
                hook[1]()

        timeline.subscribe(observe)
        timeline.subscribe(console.print_event)
        try:
            await asyncio.wait_for(self.pipeline.run(self._source(steps, clock, changed)), timeout_s)
        except asyncio.TimeoutError:
            seen = "\n".join(f"  {e}" for e in self.events[-15:])
            raise HarnessHung(f"the pipeline did not finish within {timeout_s} s; last events:\n{seen}") from None
        finally:
            timeline.close()

    async def _source(self, steps: list[Step], clock: Clock, changed: asyncio.Event) -> AsyncIterator[np.ndarray]:
        clock.restart()
        for step in steps:
            if isinstance(step, WaitFor):
                await self._wait(step, changed)
                continue
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            audio = step.audio()
            for start in range(0, len(audio), BLOCK_SAMPLES):
                await asyncio.sleep(0)
                yield audio[start : start + BLOCK_SAMPLES]

    async def _wait(self, step: WaitFor, changed: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step.timeout_s
        while not any(step.matches(e) for e in self.events):
            changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HarnessHung(f"never happened: {step.what}; events: {[e['event'] for e in self.events]}")
            try:  # also polled: a predicate may watch an engine rather than the timeline
                await asyncio.wait_for(changed.wait(), min(remaining, POLL_S))
            except asyncio.TimeoutError:
                pass


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())
