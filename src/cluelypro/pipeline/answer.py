"""The spoken answer to one question: its thesis plan, the synthesis ahead of playback, the
repeats, and the deepening rounds (SPEC §2.7–2.9).

One `Answer` per question that got a non-empty thesis. The pipeline cancels the old one when a
newer question takes over (6B), so nothing made for an old question can reach the new plan: each
answer owns its plan, its audio and its tasks, and every hand-over checks the question id.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np
import soxr

from cluelypro.audio.earpiece import Earpiece
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.llm.prompts import deepening_messages
from cluelypro.metrics.events import (
    Error,
    Matched,
    PlaybackEnd,
    PlaybackStart,
    Thesis,
    TimelineEvent,
    TtsFirstAudio,
)
from cluelypro.metrics.timeline import Timeline
from cluelypro.pipeline.fallback import EngineChain, Skipped, describe
from cluelypro.pipeline.frames import Question
from cluelypro.pipeline.growing import GrowingList
from cluelypro.pipeline.tasks import TaskOwner
from cluelypro.pipeline.turns import LlmTurns
from cluelypro.pipeline.writer import ThesisWriter
from cluelypro.prompter.matcher import ThesisMatcher
from cluelypro.prompter.plan import PlannedThesis, ThesisPlan
from cluelypro.tts.normalize import normalize_for_tts

log = logging.getLogger(__name__)

SYNTHESIZE_AHEAD = 3  # the current thesis and the next two (2B)


def _starts_with_words(text: str, head: str) -> bool:
    head_words = head.casefold().split()
    return text.casefold().split()[: len(head_words)] == head_words


def _heading_thesis(partial: str, head: str) -> str:
    """A line the model began as a thesis and turned into a heading («Война была вызвана многими
    факторами, включая:»), as a thesis: its complete words, without the colon and the dangling
    last clause. The head alone if the line does not go on from it."""
    text = partial.strip().rstrip(":").strip()
    if not _starts_with_words(text, head):
        return head
    before, comma, last_clause = text.rpartition(",")
    if comma and len(last_clause.split()) <= 2 and len(before.split()) >= len(head.split()):
        text = before
    return text


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
    synthesizers: EngineChain
    timeline: Timeline
    earpiece: Earpiece
    matcher: ThesisMatcher
    turns: LlmTurns


class Answer:
    def __init__(self, question: Question, context: AnswerContext, writer: ThesisWriter) -> None:
        settings = context.settings
        self.question = question
        self.context = context
        self.writer = writer  # writes its theses: the first round, then each deepening
        self.plan = ThesisPlan(
            question.q,
            policy=settings.advance_policy,
            repeats=settings.thesis_repeats,
            repeat_interval_s=settings.thesis_repeat_sec,
            max_depth=settings.deepening_max_depth,
        )
        self._audio: dict[int, ThesisAudio] = {}
        self.tasks = TaskOwner(f"answer-{question.q}")
        self._changed = asyncio.Event()
        self._deepening: asyncio.Task | None = None
        self._head: tuple[int, str] | None = None  # thesis started from its first words, not yet complete
        self._head_partial = ""  # that thesis as far as the model has written it
        self._head_line = 0  # the stream's line it is written on
        self._head_synthesis: asyncio.Task | None = None
        self._cut = False  # the thesis playing was skipped: its playback ends at the next chunk
        self.speaker = self._spawn(self._speak(), "playback")

    @property
    def q(self) -> int:
        return self.question.q

    def now(self) -> float:
        return self.question.anchor.now()

    def _emit(self, event: TimelineEvent, t: float | None = None) -> None:
        q = self.question
        self.context.timeline.emit(event, self.now() if t is None else t, utt=q.utt, q=q.q)

    def _report_error(self, stage: str, error: BaseException) -> None:
        log.debug("%s failed for question %s", stage, self.q, exc_info=error)
        self._emit(Error(stage, describe(error)))

    def _spawn(self, coroutine, stage: str) -> asyncio.Task:
        """A task of this answer: cancelled with it; a failure is reported as an error of `stage`."""
        return self.tasks.spawn(coroutine, on_failure=lambda error: self._report_error(stage, error))

    # --- events from the pipeline ----------------------------------------------------------------

    def start_early(self, head: str, line: int) -> None:
        """Thesis 1 is still being written (on the stream's `line`): start speaking its first words."""
        thesis = self.plan.add(head)
        if thesis is None:
            return
        self._head = (thesis.index, head)
        self._head_partial, self._head_line = head, line
        self._audio[thesis.index] = ThesisAudio()
        self._head_synthesis = self._spawn(
            self._synthesize(head, thesis.index, self._audio[thesis.index], finish=False), "tts"
        )
        self._changed.set()

    def early_progress(self, partial: str, lines_done: int) -> None:
        """The thesis started early as the model has written it so far; once its line is over
        with no thesis from it (the parser dropped it), it is completed from what was written."""
        if self._head is None:
            return
        if lines_done > self._head_line:
            self._complete_head(None)
        elif partial:
            self._head_partial = partial

    def add_thesis(self, text: str) -> PlannedThesis | None:
        if self._head is not None:
            return self._complete_head(text)
        thesis = self.plan.add(text)
        if thesis is not None:
            self._emit(Thesis(thesis.index, thesis.text, thesis.depth))
            self._synthesize_upcoming()
            self._changed.set()
        return thesis

    def _complete_head(self, text: str | None) -> PlannedThesis | None:
        """The thesis started early is complete: synthesise the rest of it after its head. If the
        parser dropped that line (a heading over sub-items, "…, включая:"; `text` None) or the
        stream ended (None too), the line as written so far completes the head; a `text` that does
        not go on from the head is the next thesis."""
        assert self._head is not None, "only a thesis started early is completed"
        index, head = self._head
        self._head = None
        continues = text is not None and _starts_with_words(text, head)
        spoken = text if text is not None and continues else _heading_thesis(self._head_partial, head)
        thesis = self.plan.revise(index, spoken)
        self._emit(Thesis(index, thesis.text, thesis.depth))
        rest = " ".join(spoken.split()[len(head.split()) :])
        self._spawn(self._synthesize(rest, index, self._audio[index], after=self._head_synthesis), "tts")
        self._changed.set()
        return thesis if continues or text is None else self.add_thesis(text)

    def complete_early(self) -> None:
        """The thesis started early will not be written on (its engine failed, or the stream
        ended inside it): complete it from what was written."""
        if self._head is not None:
            self._complete_head(None)

    def round_done(self) -> None:
        self.complete_early()
        self.plan.round_done()
        self._changed.set()

    def user_said(self, text: str) -> None:
        """Own speech transcribed: does it say the current thesis? (until-said)"""
        current = self.plan.current()
        if current is None or self.plan.policy != "until-said":
            return
        matched, method = self.context.matcher.match(text, current.text)
        if matched and self.plan.said_by_user(current.index):
            self._emit(Matched(current.index, method))
            self._changed.set()

    def repeat_now(self) -> PlannedThesis | None:
        """Say the last thesis again now (a user's request); None if none was spoken yet."""
        thesis = self.plan.repeat_now()
        if thesis is not None:
            if self.speaker.done():  # everything had been said: speak again
                self.speaker = self._spawn(self._speak(), "playback")
            self._changed.set()
        return thesis

    def skip(self) -> PlannedThesis | None:
        """Go on to the next thesis now (a user's request): the one playing is cut off."""
        playing = self.plan.playing
        thesis = self.plan.skip()
        if thesis is not None:
            if playing == thesis.index:
                self._cut = True
                self.context.earpiece.stop()
            self._changed.set()
        return thesis

    def wind_down(self) -> None:
        """The input has ended: say what is planned once more at most, and stop deepening."""
        self.plan.wind_down()
        self._changed.set()

    def resume(self) -> None:
        """A newer question got no answer: this one keeps the LLM and may deepen again."""
        self._changed.set()

    def cancel(self) -> None:
        self.tasks.cancel()

    async def finished(self) -> None:
        """Wait until everything planned has been said (a failure was already reported)."""
        await asyncio.gather(self.speaker, return_exceptions=True)
        await self.tasks.aclose()

    async def closed(self) -> None:
        """Wait until every task of a cancelled answer has ended."""
        await self.tasks.aclose()

    # --- synthesis ahead of playback -------------------------------------------------------------

    def _synthesize_upcoming(self) -> None:
        for thesis in self.plan.upcoming(SYNTHESIZE_AHEAD):
            if thesis.index not in self._audio:
                self._audio[thesis.index] = ThesisAudio()
                self._spawn(self._synthesize(thesis.text, thesis.index, self._audio[thesis.index]), "tts")

    async def _synthesize(
        self, text: str, index: int, audio: ThesisAudio, finish: bool = True, after: asyncio.Task | None = None
    ) -> None:
        """Synthesise `text` onto the end of `audio` (after the task `after`, whose audio comes
        first) with the first TTS engine of the chain that answers."""
        voice, resampler = None, None
        try:
            if after is not None:
                await asyncio.wait([after])
            chain = self.context.synthesizers
            spoken = normalize_for_tts(text, self.context.settings.asr_language)
            rates = {engine.name: engine.sample_rate for engine in chain.engines}
            if spoken:
                async with aclosing(chain.stream(lambda engine: engine.synthesize(spoken))) as items:
                    async for item in items:
                        if isinstance(item, Skipped):
                            self._emit(item.event("tts"))
                            continue
                        if item.engine != voice:
                            voice = item.engine
                            resampler = soxr.ResampleStream(rates[voice], SAMPLE_RATE, 1, dtype="float32")
                        assert resampler is not None, "made at the first item of each voice"
                        if not audio.chunks:
                            self._emit(TtsFirstAudio(index, voice))
                        audio.add(resampler.resample_chunk(item.item))
                if resampler is not None:
                    audio.add(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        except Exception as error:  # this thesis stays silent; the others are still spoken
            self._report_error("tts", error)
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
        changed = asyncio.ensure_future(self._changed.wait())
        try:  # not asyncio.wait_for: on Python 3.11 it can swallow a cancellation (the answer's)
            await asyncio.wait({changed}, timeout=seconds)
        finally:
            changed.cancel()

    async def _play(self, thesis: PlannedThesis) -> float:
        """Play the thesis's audio as it arrives; `playback_end` tells how long playback stalled
        waiting for audio (a thesis spoken while the LLM is still writing it)."""
        earpiece, start, end, stall = self.context.earpiece, None, self.now(), 0.0
        self._cut = False
        try:
            async for chunk in self._audio[thesis.index].stream():
                if self._cut:
                    break
                chunk_start, chunk_end = await earpiece.play(chunk, self.now())
                if start is None:
                    start = chunk_start
                    self._emit(PlaybackStart(thesis.index), start)
                else:
                    stall += max(0.0, chunk_start - end)
                end = chunk_end
        finally:  # also when interrupted: the chunk in the earpiece is the last one heard
            if start is not None:
                self._emit(PlaybackEnd(thesis.index, round(stall, 3)), end)
        return end

    # --- deepening -------------------------------------------------------------------------------

    def _deepen_if_needed(self) -> None:
        """Deepen when the plan is about to run out, unless a newer question waits for the LLM."""
        if self._deepening is not None and not self._deepening.done():
            return
        if not self.context.turns.newer_waiting(self.q) and self.plan.deepening_due():
            self.plan.start_deepening()
            self._deepening = self._spawn(self._deepen(), "llm")

    async def _deepen(self) -> None:
        said = [thesis.text for thesis in self.plan.theses]
        messages = deepening_messages(self.question.text, said)
        with self.context.turns.deepening(self.q) as cancellation:
            cut = True  # also when this task is cancelled with the answer
            try:
                theses = self.writer.theses(messages, said, cancellation)
                async with aclosing(theses) as stream:
                    async for text in stream:
                        self.add_thesis(text)
                cut = cancellation.cancelled
            except Exception:
                cut = False  # every engine failed: an empty round, so no endless retrying
                raise
            finally:
                self.complete_early()
                if cut:
                    self.plan.round_cut()
                else:
                    self.plan.round_done()
                self._changed.set()
