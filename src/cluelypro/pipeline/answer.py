"""The spoken answer to one question: its thesis plan, the synthesis ahead of playback, the
repeats, and the deepening rounds (SPEC §2.7–2.9).

One `Answer` per question that got a non-empty thesis. The pipeline cancels the old one when a
newer question takes over (6B), so nothing made for an old question can reach the new plan: each
answer owns its plan, its audio and its tasks, and every hand-over checks the question id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from cluelypro.audio.earpiece import Earpiece
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.llm.prompts import deepening_messages
from cluelypro.metrics.timeline import Timeline
from cluelypro.pipeline.engines import Engines
from cluelypro.pipeline.frames import Question
from cluelypro.pipeline.speculation import GrowingList
from cluelypro.pipeline.threads import iterate_in_thread
from cluelypro.prompter.matcher import ThesisMatcher
from cluelypro.prompter.plan import PlannedThesis, ThesisPlan
from cluelypro.tts.normalize import normalize_for_tts

log = logging.getLogger(__name__)

SYNTHESIZE_AHEAD = 3  # the current thesis and the next two (2B)


class ThesisAudio(GrowingList[np.ndarray]):
    """A thesis's audio at 16 kHz, growing while TTS runs; replayable for repeats."""

    @property
    def chunks(self) -> list[np.ndarray]:
        return self.items

    def add(self, chunk: np.ndarray) -> None:
        if len(chunk):
            super().add(chunk)


@dataclass
class AnswerContext:
    """What every answer shares with the pipeline."""

    settings: Settings
    engines: Engines
    timeline: Timeline
    earpiece: Earpiece
    matcher: ThesisMatcher
    stream_theses: Callable[..., AsyncIterator[str]]  # (question, messages, already_said) → theses


class Answer:
    def __init__(self, question: Question, context: AnswerContext) -> None:
        settings = context.settings
        self.question = question
        self.context = context
        self.plan = ThesisPlan(
            question.q,
            policy=settings.advance_policy,
            repeats=settings.thesis_repeats,
            repeat_interval_s=settings.thesis_repeat_sec,
            max_depth=settings.deepening_max_depth,
        )
        self._audio: dict[int, ThesisAudio] = {}
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._deepening: asyncio.Task | None = None
        self._head: tuple[int, str] | None = None  # thesis started from its first words, not yet complete
        self._head_synthesis: asyncio.Task | None = None
        self.speaker = asyncio.create_task(self._speak(), name=f"answer-{question.q}")

    @property
    def q(self) -> int:
        return self.question.q

    def now(self) -> float:
        return self.question.anchor.now()

    def _emit(self, event: str, t: float | None = None, **fields: Any) -> None:
        q = self.question
        self.context.timeline.emit(event, self.now() if t is None else t, utt=q.utt, q=q.q, **fields)

    # --- events from the pipeline ----------------------------------------------------------------

    def start_early(self, head: str) -> None:
        """Thesis 1 is still being written: start speaking its first words now."""
        thesis = self.plan.add(head)
        if thesis is None:
            return
        self._head = (thesis.index, head)
        self._audio[thesis.index] = ThesisAudio()
        self._head_synthesis = self._spawn(self._synthesize(head, thesis.index, self._audio[thesis.index], finish=False))
        self._changed.set()

    def add_thesis(self, text: str) -> PlannedThesis | None:
        if self._head is not None:
            return self._complete_head(text)
        thesis = self.plan.add(text)
        if thesis is not None:
            self._emit("thesis", index=thesis.index, text=thesis.text, depth=thesis.depth)
            self._synthesize_upcoming()
            self._changed.set()
        return thesis

    def _complete_head(self, text: str) -> PlannedThesis | None:
        """The thesis started early is complete: synthesise the rest of it after its head. If the
        parser dropped that line (a heading over sub-items), the head stands alone."""
        index, head = self._head
        self._head = None
        head_words, words = head.split(), text.split()
        continues = [w.casefold() for w in words[: len(head_words)]] == [w.casefold() for w in head_words]
        thesis = self.plan.revise(index, text if continues else head)
        self._emit("thesis", index=index, text=thesis.text, depth=thesis.depth)
        rest = " ".join(words[len(head_words):]) if continues else ""
        self._spawn(self._synthesize(rest, index, self._audio[index], after=self._head_synthesis))
        self._changed.set()
        return thesis if continues else self.add_thesis(text)

    def round_done(self) -> None:
        if self._head is not None:  # the stream ended inside the thesis started early
            self._complete_head(self._head[1])
        self.plan.round_done()
        self._changed.set()

    def user_said(self, text: str) -> None:
        """Own speech transcribed: does it say the current thesis? (until-said)"""
        current = self.plan.current()
        if current is None or self.plan.policy != "until-said":
            return
        matched, method = self.context.matcher.match(text, current.text)
        if matched and self.plan.said_by_user(current.index):
            self._emit("matched", index=current.index, method=method)
            self._changed.set()

    def wind_down(self) -> None:
        """The input has ended: say what is planned once more at most, and stop deepening."""
        self.plan.wind_down()
        self._changed.set()

    def cancel(self) -> None:
        for task in [self.speaker, self._deepening, *self._tasks]:
            if task is not None:
                task.cancel()

    async def finished(self) -> None:
        await asyncio.gather(self.speaker, return_exceptions=True)

    # --- synthesis ahead of playback -------------------------------------------------------------

    def _synthesize_upcoming(self) -> None:
        for thesis in self.plan.upcoming(SYNTHESIZE_AHEAD):
            if thesis.index not in self._audio:
                self._audio[thesis.index] = ThesisAudio()
                self._spawn(self._synthesize(thesis.text, thesis.index, self._audio[thesis.index]))

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _synthesize(
        self, text: str, index: int, audio: ThesisAudio, finish: bool = True, after: asyncio.Task | None = None
    ) -> None:
        """Synthesise `text` onto the end of `audio` (after the task `after`, whose audio comes first)."""
        if after is not None:
            await asyncio.wait([after])
        synthesizer = self.context.engines.synthesizer
        spoken = normalize_for_tts(text, self.context.settings.asr_language)
        resampler = soxr.ResampleStream(synthesizer.sample_rate, SAMPLE_RATE, 1, dtype="float32")
        try:
            if spoken:
                async for chunk in iterate_in_thread(lambda: synthesizer.synthesize(spoken)):
                    if not audio.chunks:
                        self._emit("tts_first_audio", index=index)
                    audio.add(resampler.resample_chunk(chunk))
                audio.add(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        except Exception as error:
            log.exception("TTS failed")
            self._emit("error", stage="tts", message=str(error))
        finally:
            if finish:
                audio.finish()

    # --- speaking --------------------------------------------------------------------------------

    async def _speak(self) -> None:
        while not self.plan.finished:
            thesis = self.plan.next_to_say(self.now())
            if thesis is None:
                self._deepen_if_needed()
                await self._wait(self.plan.wait_hint(self.now()))
                continue
            self._synthesize_upcoming()
            end = await self._play(thesis)
            self.plan.spoken(thesis.index, end)
            self._deepen_if_needed()

    async def _wait(self, seconds: float | None) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _play(self, thesis: PlannedThesis) -> float:
        earpiece, start, end = self.context.earpiece, None, self.now()
        try:
            async for chunk in self._audio[thesis.index].stream():
                chunk_start, end = await earpiece.play(chunk, self.now())
                if start is None:
                    start = chunk_start
                    self._emit("playback_start", start, index=thesis.index)
        finally:  # also when interrupted: the chunk in the earpiece is the last one heard
            if start is not None:
                self._emit("playback_end", end, index=thesis.index)
        return end

    # --- deepening -------------------------------------------------------------------------------

    def _deepen_if_needed(self) -> None:
        if self._deepening is None or self._deepening.done():
            if self.plan.needs_deepening():
                self._deepening = asyncio.create_task(self._deepen(self.plan.depth))

    async def _deepen(self, depth: int) -> None:
        said = [thesis.text for thesis in self.plan.theses]
        messages = deepening_messages(self.question.text, said)
        try:
            async for text in self.context.stream_theses(self.question, messages, said):
                self.add_thesis(text)
        finally:
            self.round_done()
