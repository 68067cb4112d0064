"""Replays each recording in real time through the pipeline, with engines loaded once.

A run ends as soon as the recording's (last) question has played its first thesis once (so
that a stall in speaking a thesis the LLM is still writing is measured), or when it is clear
that it will not play (nothing was a question, or the LLM gave no theses), or after a timeout —
repeats and deepening are not waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.audio.io import in_blocks_then_silence
from cluelypro.audio.sources import replay_file
from cluelypro.bench.baseline import BaselineResult, sequential_run
from cluelypro.bench.corpus import Recording
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.engines import Engines
from cluelypro.llm.base import ThesisLLM
from cluelypro.metrics.summary import question_chains
from cluelypro.metrics.timeline import Clock, Event, Timeline
from cluelypro.pipeline.pipeline import Pipeline

POLL_S = 0.05
LLM_IDLE_S = 0.5  # the LLM finished this long ago and no thesis came: the question got none
DEFAULT_TIMEOUT_S = 20.0


@dataclass
class RunResult:
    """One real-time replay of a recording: its question's milestones after end of speech."""

    heard: str
    stop: str  # "answered", "no question", "no theses", "llm error" or "timeout"
    offsets: dict[str, float] = field(default_factory=dict)
    theses: list[str] = field(default_factory=list)
    questions: int = 0  # accepted questions in the recording
    stall: float | None = None  # seconds thesis 1's playback waited for audio

    @property
    def answered(self) -> bool:
        return "playback_start" in self.offsets

    @property
    def voice_to_voice(self) -> float | None:
        return self.offsets.get("playback_start")


@dataclass
class RecordingResult:
    recording: Recording
    runs: list[RunResult] = field(default_factory=list)
    baseline: list[BaselineResult] = field(default_factory=list)

    @property
    def heard(self) -> str:
        texts = [run.heard for run in self.runs if run.answered] or [run.heard for run in self.runs]
        return texts[0] if texts else ""


class _TrackedLLM:
    """The engine's LLM, noting when each stream starts and ends (wall time, as events carry)."""

    def __init__(self, llm: ThesisLLM) -> None:
        self._llm = llm
        self.started: list[float] = []
        self.ended: list[float] = []

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        self.started.append(time.time())
        try:
            yield from self._llm.stream(messages, max_tokens)
        finally:
            self.ended.append(time.time())

    def idle_since(self, wall: float) -> float | None:
        """Seconds the LLM has been idle, if a stream started after `wall` and none is running."""
        if len(self.ended) < len(self.started) or not any(start >= wall for start in self.started):
            return None
        return time.time() - self.ended[-1]


def run_bench(
    recordings: list[Recording],
    engines: Engines,
    settings: Settings,
    repeat: int = 1,
    baseline: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[Recording, int, RunResult, BaselineResult | None], None] | None = None,
) -> list[RecordingResult]:
    """Every recording `repeat` times (and its sequential baseline run after each replay)."""
    results = []
    for recording in recordings:
        result = RecordingResult(recording)
        for attempt in range(repeat):
            run = replay_recording(recording.audio, engines, settings, timeout_s)
            result.runs.append(run)
            sequential = sequential_run(recording.audio, engines, settings) if baseline else None
            if sequential is not None:
                result.baseline.append(sequential)
            if on_result is not None:
                on_result(recording, attempt, run, sequential)
        results.append(result)
    return results


def replay_recording(
    audio: np.ndarray, engines: Engines, settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S
) -> RunResult:
    """Replay `audio` in real time, then silence, through a fresh pipeline on the loaded engines."""
    engines.detector.reset()
    engines.llm.warm_up()  # every run starts from the start-up prefix cache, not the last question's
    llm = _TrackedLLM(engines.llm)
    events, stop = asyncio.run(
        _replay(audio, dataclasses.replace(engines, llms=[llm, *engines.llms[1:]]), settings, llm, timeout_s)
    )
    return _run_result(events, stop)


async def _replay(
    audio: np.ndarray, engines: Engines, settings: Settings, llm: _TrackedLLM, timeout_s: float
) -> tuple[list[Event], str]:
    clock, timeline = Clock(fast=False), Timeline()
    pipeline = Pipeline(settings, engines, clock, timeline, TrackEarpiece(clock, len(audio), keep=False), gate=None)
    audio_end = len(audio) / SAMPLE_RATE
    blocks = in_blocks_then_silence(audio, round((audio_end + timeout_s + 1) * SAMPLE_RATE))
    run = asyncio.create_task(pipeline.run(replay_file(blocks, clock)))  # in real time: the clock is not fast
    watch = asyncio.create_task(_watch(timeline, clock, llm, audio_end, settings.end_silence_ms / 1000, timeout_s))
    await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
    stop = watch.result() if watch.done() else "timeout"
    failed = run.exception() if run.done() and not run.cancelled() else None
    for task in (run, watch):
        task.cancel()
    if pipeline.answer is not None:  # repeats, later theses and deepening are not benchmarked
        pipeline.answer.cancel()
    await asyncio.gather(run, watch, return_exceptions=True)
    if failed is not None:
        raise failed
    return timeline.events, stop


async def _watch(
    timeline: Timeline, clock: Clock, llm: _TrackedLLM, audio_end: float, end_silence_s: float, timeout_s: float
) -> str:
    """Wait until the recording's outcome is known; returns the reason the run stops."""
    settled = audio_end + end_silence_s + 0.1  # the last utterance's silence window has closed
    while True:
        await asyncio.sleep(POLL_S)
        now = clock.input_now()
        if now >= settled and (verdict := outcome(timeline.events, llm)):
            return verdict
        if now >= audio_end + timeout_s:
            return "timeout"


def outcome(events: list[Event], llm: _TrackedLLM) -> str | None:
    """Why the run can stop now, or None while the last question's answer is still coming."""

    def named(name: str) -> list[Event]:
        return [e for e in events if e["event"] == name]

    if len(named("speech_start")) > len(named("speech_end")):
        return None  # an utterance is still open
    if {e["utt"] for e in named("segment")} - {e["utt"] for e in named("question")}:
        return None  # an utterance is still being transcribed
    accepted = [e for e in named("question") if e["accepted"]]
    if not accepted:
        return "no question"
    last = accepted[-1]
    mine = [e for e in events if e["q"] == last["q"]]
    # the answer may have started at a pause, before the question was confirmed (SPECULATIVE_LLM)
    asked = next(e["wall"] for e in named("speech_start") if e["utt"] == last["utt"])
    idle = llm.idle_since(asked)
    llm_done = idle is not None and idle >= LLM_IDLE_S
    if any(e["event"] == "playback_start" and e.get("index") == 1 for e in mine):
        # Speaking may start from thesis 1's first words (EARLY_SPEECH): wait until it is
        # complete and has been heard once.
        played = any(e["event"] == "playback_end" and e.get("index") == 1 for e in mine)
        return "answered" if played else None
    if any(e["event"] == "error" and e.get("stage") == "llm" for e in mine):
        return "llm error"
    if any(e["event"] in ("thesis", "tts_first_audio") for e in mine):
        return None  # an answer is on its way to the earpiece
    return "no theses" if llm_done else None


def _run_result(events: list[Event], stop: str) -> RunResult:
    chains = question_chains(events)
    answered = [chain for chain in chains if chain.voice_to_voice is not None]
    chain = answered[-1] if answered else (chains[-1] if chains else None)
    if chain is None:  # nothing was a question: say what was heard
        heard = " / ".join(e["text"] for e in events if e["event"] == "asr" and e["text"])
        return RunResult(heard, stop)
    if chain.voice_to_voice is not None and stop != "answered":
        stop = "answered"  # an earlier question of the recording was answered
    return RunResult(chain.text, stop, dict(chain.offsets), list(chain.theses), len(chains), chain.stall)
