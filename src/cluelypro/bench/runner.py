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
from cluelypro.metrics.events import (
    Asr,
    Error,
    PlaybackEnd,
    PlaybackStart,
    Question,
    Segment,
    SpeechEnd,
    SpeechStart,
    Thesis,
    TimelineEvent,
    TtsFirstAudio,
)
from cluelypro.metrics.summary import ChainCollector, QuestionChain
from cluelypro.metrics.timeline import Clock, Record, Timeline
from cluelypro.pipeline.pipeline import Pipeline

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
    """The engine's LLM, noting when each stream starts and ends (wall time, as events carry);
    `on_change` hears of both (from the LLM's thread)."""

    def __init__(self, llm: ThesisLLM) -> None:
        self._llm = llm
        self.started: list[float] = []
        self.ended: list[float] = []
        self.on_change: Callable[[], None] = lambda: None

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        self.started.append(time.time())
        self.on_change()
        try:
            yield from self._llm.stream(messages, max_tokens)
        finally:
            self.ended.append(time.time())
            self.on_change()

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
    chains, heard, stop = asyncio.run(
        _replay(audio, dataclasses.replace(engines, llms=[llm, *engines.llms[1:]]), settings, llm, timeout_s)
    )
    return _run_result(chains, heard, stop)


async def _replay(
    audio: np.ndarray, engines: Engines, settings: Settings, llm: _TrackedLLM, timeout_s: float
) -> tuple[list[QuestionChain], list[str], str]:
    clock, timeline = Clock(fast=False), Timeline()
    chains, watch = ChainCollector(), OutcomeWatch(llm)
    timeline.subscribe(chains)
    timeline.subscribe(watch)
    loop = asyncio.get_running_loop()

    def llm_changed() -> None:  # called in the LLM's thread
        loop.call_soon_threadsafe(watch.changed.set)

    llm.on_change = llm_changed
    pipeline = Pipeline(settings, engines, clock, timeline, TrackEarpiece(clock, len(audio), keep=False), gate=None)
    audio_end = len(audio) / SAMPLE_RATE
    blocks = in_blocks_then_silence(audio, round((audio_end + timeout_s + 1) * SAMPLE_RATE))
    run = asyncio.create_task(pipeline.run(replay_file(blocks, clock)))  # in real time: the clock is not fast
    waiting = asyncio.create_task(watch.wait(clock, audio_end, longest_end_window_s(settings), timeout_s))
    await asyncio.wait({run, waiting}, return_when=asyncio.FIRST_COMPLETED)
    stop = waiting.result() if waiting.done() else "timeout"
    failed = run.exception() if run.done() and not run.cancelled() else None
    for task in (run, waiting):
        task.cancel()
    if pipeline.answer is not None:  # repeats, later theses and deepening are not benchmarked
        pipeline.answer.cancel()
    await asyncio.gather(run, waiting, return_exceptions=True)
    if failed is not None:
        raise failed
    return chains.chains, watch.heard, stop


def longest_end_window_s(settings: Settings) -> float:
    """The longest silence that can end an utterance: the fixed window, or a turn model's hold."""
    hold_ms = settings.turn_hold_ms if settings.turn_model != "off" else 0
    return max(settings.end_silence_ms, hold_ms) / 1000


@dataclass
class _LastQuestion:
    """What has happened so far to the answer of the run's latest accepted question."""

    q: int
    asked_wall: float  # the speech start of its utterance: a speculative answer may start there
    playing: bool = False  # thesis 1's playback started
    heard_once: bool = False  # thesis 1's playback ended
    llm_failed: bool = False
    on_its_way: bool = False  # a thesis or its first audio exists


class OutcomeWatch:
    """A timeline observer that follows the run's outcome as events arrive. `verdict()` says why
    the run can stop; `changed` is set on every event and when the LLM starts or ends a stream."""

    def __init__(self, llm: _TrackedLLM) -> None:
        self.llm = llm
        self.heard: list[str] = []  # every non-empty transcript
        self.changed = asyncio.Event()
        self._open_utterances = 0
        self._undecided: set[int] = set()  # utterances segmented, not yet decided to be a question or not
        self._speech_start_wall: dict[int, float] = {}
        self._last: _LastQuestion | None = None

    def __call__(self, record: Record) -> None:
        event, utt = record.event, record.utt
        self.changed.set()
        if isinstance(event, SpeechStart) and utt is not None:
            self._open_utterances += 1
            self._speech_start_wall[utt] = record.wall
        elif isinstance(event, SpeechEnd):
            self._open_utterances -= 1
        elif isinstance(event, Segment) and utt is not None:
            self._undecided.add(utt)
        elif isinstance(event, Asr) and event.text:
            self.heard.append(event.text)
        elif isinstance(event, Question) and utt is not None:
            self._undecided.discard(utt)
            if event.accepted and record.q is not None:
                self._last = _LastQuestion(record.q, self._speech_start_wall.get(utt, record.wall))
        elif self._last is not None and record.q == self._last.q:
            self._follow(self._last, event)

    @staticmethod
    def _follow(last: _LastQuestion, event: TimelineEvent) -> None:
        if isinstance(event, PlaybackStart) and event.index == 1:
            last.playing = True
        elif isinstance(event, PlaybackEnd) and event.index == 1:
            last.heard_once = True
        elif isinstance(event, Error) and event.stage == "llm":
            last.llm_failed = True
        elif isinstance(event, (Thesis, TtsFirstAudio)):
            last.on_its_way = True

    def verdict(self) -> str | None:
        """Why the run can stop now, or None while the last question's answer is still coming."""
        if self._open_utterances > 0 or self._undecided:
            return None  # an utterance is still open, or still being transcribed
        last = self._last
        if last is None:
            return "no question"
        if last.playing:
            # Speaking may start from thesis 1's first words (EARLY_SPEECH): wait until it is
            # complete and has been heard once.
            return "answered" if last.heard_once else None
        if last.llm_failed:
            return "llm error"
        if last.on_its_way:
            return None  # an answer is on its way to the earpiece
        idle = self.llm.idle_since(last.asked_wall)
        return "no theses" if idle is not None and idle >= LLM_IDLE_S else None

    async def wait(self, clock: Clock, audio_end: float, end_silence_s: float, timeout_s: float) -> str:
        """Wait until the recording's outcome is known; returns the reason the run stops."""
        settled = audio_end + end_silence_s + 0.1  # the last utterance's silence window has closed
        deadline = audio_end + timeout_s
        await asyncio.sleep(max(0.0, min(settled, deadline) - clock.input_now()))
        while True:
            self.changed.clear()
            if verdict := self.verdict():
                return verdict
            remaining = deadline - clock.input_now()
            if remaining <= 0:
                return "timeout"
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, self._until_llm_idle_enough()))
            except asyncio.TimeoutError:
                pass

    def _until_llm_idle_enough(self) -> float:
        """Seconds until the LLM has been idle long enough to conclude it wrote no theses (no
        event marks that moment); infinite while it writes or has not started."""
        idle = self.llm.idle_since(self._last.asked_wall) if self._last is not None else None
        return float("inf") if idle is None else max(0.0, LLM_IDLE_S - idle)


def _run_result(chains: list[QuestionChain], heard: list[str], stop: str) -> RunResult:
    answered = [chain for chain in chains if chain.voice_to_voice is not None]
    chain = answered[-1] if answered else (chains[-1] if chains else None)
    if chain is None:  # nothing was a question: say what was heard
        return RunResult(" / ".join(heard), stop)
    if chain.voice_to_voice is not None and stop != "answered":
        stop = "answered"  # an earlier question of the recording was answered
    return RunResult(chain.text, stop, dict(chain.offsets), list(chain.theses), len(chains), chain.stall)
