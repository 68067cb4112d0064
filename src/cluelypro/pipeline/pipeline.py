"""The prompter's asyncio pipeline (SPEC §2–3).

    audio ─► listen (VAD + segmenter) ─► transcribe (speaker gate, ASR, question filter)
          ─► generate (a ThesisWriter per question: LLM, streamed theses)
          ─► Answer (owns the writer): plan, TTS ahead, earpiece, deepening

Stages are tasks joined by bounded queues; engine calls run in threads, through fallback chains
whose engines rest after a failure and whose last engine has a watchdog. A question becomes the
current one when its first thesis is complete — only then does it interrupt the previous answer
(6B) — and the old `Answer` is cancelled whole, so nothing made for it reaches the new plan.
Every task has an owner: a failure anywhere becomes an `error` event and a console line, and the
next question is still answered.

Call mode (`run(microphone, system)`): each source is a `Lane` of its own — frame cutter, VAD,
segmenter, speculation slot — in the one event loop, drawing utterance ids from one counter; both
feed the same transcribe and generate stages. The source decides the role: the system output is
the other side, the microphone the user (with a voice profile, microphone speech the gate does
not take for the user is the call leaking from the speakers: dropped, never answered).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

import numpy as np

from cluelypro.audio.earpiece import Earpiece
from cluelypro.audio.echo import EchoGate
from cluelypro.config import Settings
from cluelypro.engines import Engines
from cluelypro.llm.prompts import thesis_messages
from cluelypro.metrics.events import (
    Asr,
    Error,
    Interrupted,
    Segment,
    Speaker,
    SpeechEnd,
    SpeechStart,
    TimelineEvent,
    Turn,
)
from cluelypro.metrics.events import Question as QuestionEvent
from cluelypro.metrics.timeline import Anchor, Clock, Timeline, milliseconds_since
from cluelypro.pipeline.answer import Answer, AnswerContext
from cluelypro.pipeline.fallback import AllEnginesFailed, ChainPolicy, EngineChain, Skipped, describe
from cluelypro.pipeline.frames import END, Heard, Question, SpeechSegment, Transcript
from cluelypro.pipeline.speculation import LlmPrefetch, Speculation
from cluelypro.pipeline.tasks import TaskOwner
from cluelypro.pipeline.turns import LlmTurns
from cluelypro.pipeline.writer import ThesisWriter, generate
from cluelypro.prompter.filter import QuestionFilter
from cluelypro.prompter.matcher import ThesisMatcher
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.vad.engines import SpeechDetector, make_detector
from cluelypro.vad.frames import FrameCutter
from cluelypro.vad.segmenter import Segmenter, SegmenterEvent, SpeechEnded, SpeechPaused, SpeechStarted, segmenter_for
from cluelypro.vad.turn import TurnPolicy, apply_turn

log = logging.getLogger(__name__)


class StageChains:
    """The fallback chain of each engine stage, with the settings' budgets, watchdog and rests."""

    def __init__(self, settings: Settings, engines: Engines) -> None:
        def policy(budget_s: float, empty_is_failure: bool) -> ChainPolicy:
            watchdog = settings.engine_watchdog_s
            return ChainPolicy(
                budget_s,
                watchdog,
                settings.provider_cooldown_s,
                settings.provider_max_cooldown_s,
                empty_is_failure,
                exit_wait_s=min(ChainPolicy.exit_wait_s, watchdog),
            )

        self.asr = EngineChain("asr", engines.recognizers, policy(settings.asr_timeout_s, False))
        self.llm = EngineChain("llm", engines.llms, policy(settings.llm_ttft_budget_s, True))
        self.tts = EngineChain("tts", engines.synthesizers, policy(settings.tts_first_audio_budget_s, True))


@dataclass
class Lane:
    """One audio source's way to the transcribe stage: its own detector (Silero keeps state across
    frames), frame cutter, segmenter and speculation slot."""

    source: str | None  # "mic" | "system" in call mode; None: the one source of a run
    detector: SpeechDetector
    segmenter: Segmenter
    speculation: Speculation | None = None  # on the current utterance's last pause
    detector_failing: bool = False

    @property
    def hears_the_earpiece(self) -> bool:
        """Without headphones a microphone hears the prompter; the system output never carries it
        (the earpiece may not play into the output whose loopback is the call)."""
        return self.source != "system"


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        clock: Clock,
        timeline: Timeline,
        earpiece: Earpiece,
        gate: SpeakerGate | None = None,
        chains: StageChains | None = None,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.engines = engines
        self.clock = clock
        self.timeline = timeline
        self.earpiece = earpiece
        self.echo = None if settings.use_headphones else EchoGate(settings.speaker_tail_ms / 1000)
        earpiece.echo = self.echo  # the earpiece tells it what it plays; the input stage asks it
        self._utt_ids = itertools.count(1)  # one counter: utterance ids stay unique across sources
        self.segmenter = segmenter_for(settings, engines.detector.frame_samples, utt_ids=self._utt_ids)
        self._lanes = [Lane(None, engines.detector, self.segmenter)]
        size = settings.queue_size
        self._segments: asyncio.Queue[SpeechSegment | None] = asyncio.Queue(size)
        self._questions: asyncio.Queue[Question | None] = asyncio.Queue(size)
        self._next_q = 1
        self._heard: deque[tuple[float, str]] = (
            deque()
        )  # (end time, text) of the other speaker, within the context window
        self.filter = QuestionFilter(settings.question_filter_mode, commentary=settings.commentary_mode)
        self.chains = chains or StageChains(settings, engines)  # a server keeps them across restarts
        self.turns = LlmTurns(newer_question_cuts_answers=not clock.fast)
        self.tasks = TaskOwner("pipeline")
        self.answer: Answer | None = None
        self._answer_context = AnswerContext(settings, self.chains.tts, timeline, earpiece, ThesisMatcher(), self.turns)
        self._asr_lock = asyncio.Lock()  # the recogniser serves one call at a time
        self.turn_policy = TurnPolicy.from_settings(settings)
        self._turn_failing = False
        self.answering = True  # False: listening is stopped, questions are not answered

    def apply_settings(self, settings: Settings) -> None:
        """New settings (a dashboard's edit): the filter and the plan policy apply from the next
        question; the stage chains, the segmenter and the echo gate keep theirs."""
        self.settings = settings
        self.filter = QuestionFilter(settings.question_filter_mode, commentary=settings.commentary_mode)
        self._answer_context.settings = settings
        self.turn_policy = TurnPolicy.from_settings(settings)

    def hush(self) -> None:
        """Listening stops: the answer being spoken ends now, every LLM round under way stops,
        and questions already heard are not answered (until `answering` is set again)."""
        self.answering = False
        self.turns.cut_all()
        old, self.answer = self.answer, None
        if old is not None:
            old.cancel()
            self.tasks.spawn(old.closed(), on_failure=lambda error: None, name=f"close-answer-{old.q}")
        self.earpiece.stop()

    async def run(self, source: AsyncIterator[np.ndarray], system: AsyncIterator[np.ndarray] | None = None) -> None:
        """Process `source` to its end (or until cancelled), then let every answer finish. With
        `system` (call mode) `source` is the user's microphone and `system` the other side."""
        stages = [self._transcribe(), self._generate()]
        tasks = [asyncio.create_task(stage) for stage in stages]
        try:
            if system is None:
                await self._listen(self._lanes[0], source)
            else:
                await self._listen_to_call(source, system)
            await self._segments.put(END)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.answer is not None:
                self.answer.cancel()
                await self.answer.closed()
            await self.tasks.aclose()

    def _emit(self, event: TimelineEvent, anchor: Anchor, utt: int | None, q: int | None = None) -> None:
        self.timeline.emit(event, anchor.now(), utt=utt, q=q)

    def _emit_skip(self, stage: str, skip: Skipped, anchor: Anchor, utt: int | None, q: int | None = None) -> None:
        """An engine failed or was too slow: the next engine of the chain is asked the same."""
        self._emit(skip.event(stage), anchor, utt, q)

    def _report_error(
        self, stage: str, error: BaseException, anchor: Anchor, utt: int | None, q: int | None = None
    ) -> None:
        """A failure the user must see: an `error` event (the console prints it); the traceback
        goes to the debug log."""
        log.debug("%s failed", stage, exc_info=error)
        self._emit(Error(stage, describe(error)), anchor, utt, q)

    # --- listen: VAD and segmenter, inline in the capture loop (≈0.15 ms per frame) -------------

    async def _listen_to_call(self, microphone: AsyncIterator[np.ndarray], system: AsyncIterator[np.ndarray]) -> None:
        """Both sources at once, each in a lane of its own; one that fails ends the other."""
        self._lanes[0].source = "mic"
        detector = make_detector(self.settings.vad_engine, self.settings.webrtc_aggressiveness)
        segmenter = segmenter_for(self.settings, detector.frame_samples, utt_ids=self._utt_ids)
        self._lanes[1:] = [Lane("system", detector, segmenter)]
        listening = [
            asyncio.create_task(self._listen(lane, source), name=f"listen-{lane.source}")
            for lane, source in zip(self._lanes, (microphone, system), strict=True)
        ]
        try:
            await asyncio.gather(*listening)
        finally:
            for task in listening:
                task.cancel()
            await asyncio.gather(*listening, return_exceptions=True)

    async def _listen(self, lane: Lane, source: AsyncIterator[np.ndarray]) -> None:
        frames = FrameCutter(lane.detector.frame_samples)
        silence = np.zeros(frames.frame_samples, dtype=np.float32)
        async for block in source:
            for heard in frames.cut(block):
                frame = silence if self._hearing_itself(lane) else heard
                await self._on_vad(lane, lane.segmenter.push(frame, self._speech_probability(lane, frame)))
        await self._on_vad(lane, lane.segmenter.flush())

    def _speech_probability(self, lane: Lane, frame: np.ndarray) -> float:
        """The detector's verdict; a failing detector hears silence, reported once per failure spell."""
        try:
            probability = lane.detector.speech_probability(frame)
        except Exception as error:
            if not lane.detector_failing:
                self._report_error("vad", error, self.clock.anchor_for_speech_end(lane.segmenter.now), None)
            lane.detector_failing = True
            return 0.0
        lane.detector_failing = False
        return probability

    def _hearing_itself(self, lane: Lane) -> bool:
        """Without headphones the microphone hears the prompter: mute it while it speaks."""
        return self.echo is not None and lane.hears_the_earpiece and self.echo.is_echo(lane.segmenter.now)

    async def _on_vad(self, lane: Lane, events: list[SegmenterEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self.timeline.emit(SpeechStart(), event.t, utt=event.utt)
            elif isinstance(event, SpeechPaused):
                if lane.speculation is not None:
                    lane.speculation.drop()  # the speaker went on after the earlier pause
                speculation = lane.speculation = Speculation(event.utt, event.end)
                speculation.task = self.tasks.spawn(
                    self._hear(event.audio, lane.source, speculation),
                    on_failure=_speculation_failed,
                    name="speculation",
                )
                await self._decide_turn(lane, event)
            elif isinstance(event, SpeechEnded):
                self.timeline.emit(SpeechEnd(round(event.duration, 3)), event.end, utt=event.utt)
                if event.utterance is not None:
                    anchor = self.clock.anchor_for_speech_end(event.end)
                    self._emit(Segment(), anchor, event.utt)
                    segment = SpeechSegment(event.utterance, anchor, self._speculated(lane, event), lane.source)
                    await self._hand_to_asr(segment)
                elif lane.speculation is not None and lane.speculation.utt == event.utt:
                    lane.speculation.drop()
                    lane.speculation = None

    async def _decide_turn(self, lane: Lane, paused: SpeechPaused) -> None:
        """At the pause, the turn model (if any) says whether the question is complete: the
        utterance ends now, or this pause may last TURN_HOLD_MS. The lane's frames wait for it
        (≈65 ms on an idle core, 0.1–0.2 s beside the speculative ASR), so the decision applies at
        the very pause it was asked about."""
        model = self.engines.turn
        if model is None:
            return
        anchor = self.clock.anchor_for_speech_end(lane.segmenter.now)
        try:
            probability = await asyncio.to_thread(model.complete_probability, paused.audio)
        except Exception as error:  # the fixed window decides instead
            if not self._turn_failing:
                self._report_error("turn", error, anchor, paused.utt)
            self._turn_failing = True
            return
        self._turn_failing = False
        decision = self.turn_policy.decide(probability)
        self._emit(Turn(round(probability, 3), decision), anchor, paused.utt)
        await self._on_vad(lane, apply_turn(lane.segmenter, paused.utt, decision, self.turn_policy))

    def _speculated(self, lane: Lane, ended: SpeechEnded) -> Speculation | None:
        """The speculation started on this utterance's final pause, if there was one."""
        speculation, lane.speculation = lane.speculation, None
        if speculation is not None and (speculation.utt, speculation.end) == (ended.utt, ended.end):
            return speculation
        if speculation is not None:
            speculation.drop()
        return None

    async def _hand_to_asr(self, segment: SpeechSegment) -> None:
        if self.clock.fast:  # a file has no real time to keep: wait for the ASR
            await self._segments.put(segment)
            return
        if self._segments.full():  # live capture never waits: drop the oldest utterance
            dropped = self._segments.get_nowait()
            assert dropped is not END, "nothing follows the end"
            if dropped.speculation is not None:
                dropped.speculation.drop()
            self._emit(Error("asr", "ASR fell behind; utterance dropped"), segment.anchor, dropped.utterance.utt)
        self._segments.put_nowait(segment)

    # --- transcribe: speaker gate first, then ASR, then the question filter ---------------------

    async def _hear(self, audio: np.ndarray, source: str | None, speculation: Speculation | None = None) -> Heard:
        """Whose voice, then — only if someone needs it — what was said. On a pause
        (`speculation`), a question from the other speaker also starts its answer."""
        role, score = await self._speaker_role(audio, source)
        if source == "mic" and role == "other":
            return Heard(role, score, None, leaked=True)  # the call, through the speakers: not asked
        if role == "own" and self.settings.advance_policy != "until-said":
            return Heard(role, score, None)  # own speech never asks: nothing to transcribe
        transcript = await self._run_asr(audio)
        if speculation is not None and role == "other" and transcript.text and self.settings.speculative_llm:
            accepted, reason = self.filter.decide(transcript.text)
            if accepted:
                messages = self._messages(transcript.text, reason == "commentary", said_at=speculation.end)
                speculation.prefetch = LlmPrefetch(
                    transcript.text,
                    lambda: generate(self.chains.llm, messages, self.settings.llm_max_tokens),
                    self.tasks,
                )
        return Heard(role, score, transcript)

    async def _transcribe(self) -> None:
        while (segment := await self._segments.get()) is not END:
            try:
                await self._transcribe_one(segment)
            except Exception as error:  # one bad utterance must not stop the prompter
                self._report_error("asr", error, segment.anchor, segment.utterance.utt)
        await self._questions.put(END)

    async def _transcribe_one(self, segment: SpeechSegment) -> None:
        utterance, anchor, speculation = segment.utterance, segment.anchor, segment.speculation
        started = speculation.task if speculation is not None else None
        heard = await (started if started is not None else self._hear(utterance.audio, segment.source))
        self._emit(Speaker(heard.role, heard.score, segment.source), anchor, utterance.utt)
        if heard.leaked:
            log.info(
                "utterance %d: microphone speech not in your voice (score %s) — the call heard through the "
                "speakers, not answered",
                utterance.utt,
                heard.score,
            )
            return
        if heard.transcript is None:
            return
        text = self._recognized(segment, heard.transcript)
        if heard.role == "own":
            if text and self.answer is not None:
                self.answer.user_said(text)
            return
        accepted, reason = self.filter.decide(text) if text else (False, "empty transcript")
        q = self._next_q if accepted else None
        self._emit(QuestionEvent(accepted, reason), anchor, utterance.utt, q)
        if text:
            self._remember_heard(utterance.end, text)
        prefetch = speculation.prefetch if speculation is not None else None
        if not accepted or prefetch is None or prefetch.text != text:
            if prefetch is not None:
                prefetch.cancel()
            prefetch = None
        if q is not None:
            self._next_q += 1
            question = Question(
                q,
                utterance.utt,
                text,
                anchor,
                utterance.end,
                commentary=reason == "commentary",
                prefetch=prefetch,
                cancellation=self.turns.accepted(q),
            )
            await self._questions.put(question)

    async def _speaker_role(self, audio: np.ndarray, source: str | None) -> tuple[str, float | None]:
        """The gate's verdict (≈40 ms); a failing or hung gate counts the voice as the other
        speaker's (better a needless answer than a missed question) and is reported. In call mode
        the source decides: the system output is the other side, the microphone the user — unless
        the gate, with a profile, says the voice is not the user's."""
        if source == "system":
            return "other", None
        unknown = "own" if source == "mic" else "other"  # the role when the gate cannot tell
        if self.gate is None or not self.gate.enabled:
            return unknown, None
        limit = self.settings.engine_watchdog_s
        try:
            role, score = await asyncio.wait_for(asyncio.to_thread(self.gate.role, audio), limit)
        except asyncio.TimeoutError:
            return self._gate_failed(TimeoutError(f"the speaker gate gave no verdict within {limit:g} s"), unknown)
        except Exception as error:
            return self._gate_failed(error, unknown)
        return role, None if score is None else round(score, 4)

    def _gate_failed(self, error: BaseException, role: str) -> tuple[str, None]:
        self._report_error("speaker", error, self.clock.anchor_for_speech_end(self.segmenter.now), None)
        return role, None

    def _recognized(self, segment: SpeechSegment, transcript: Transcript) -> str:
        for skip in transcript.skipped:
            self._emit_skip("asr", skip, segment.anchor, segment.utterance.utt)
        self._emit(Asr(transcript.text, transcript.engine, transcript.ms), segment.anchor, segment.utterance.utt)
        return transcript.text

    async def _run_asr(self, audio: np.ndarray) -> Transcript:
        """The first answer of the ASR chain (the recogniser serves one call at a time)."""
        async with self._asr_lock:
            started, skipped = time.monotonic(), []
            chain = self.chains.asr.stream(lambda engine: iter((engine.transcribe(audio),)))
            async with aclosing(chain) as items:
                async for item in items:
                    if isinstance(item, Skipped):
                        skipped.append(item)
                    else:
                        return Transcript(item.item, milliseconds_since(started), item.engine, tuple(skipped))
            raise AllEnginesFailed("asr", skipped)  # not reached: the chain raises it itself

    def _remember_heard(self, end: float, text: str) -> None:
        self._heard.append((end, text))
        self._forget_heard_before(end - self.settings.context_window_s)

    def _forget_heard_before(self, t: float) -> None:
        while self._heard and self._heard[0][0] < t:
            self._heard.popleft()

    def _messages(self, text: str, commentary: bool, said_at: float) -> list[dict[str, str]]:
        """The thesis request for `text`, said at input time `said_at`, with what the other
        speaker said in the context window before it (a question minutes earlier is not context)."""
        self._forget_heard_before(said_at - self.settings.context_window_s)
        context = " ".join(said for end, said in self._heard if said != text and end < said_at)
        return thesis_messages(text, context, self.settings.asr_language, commentary)

    # --- generate --------------------------------------------------------------------------------

    async def _generate(self) -> None:
        while (question := await self._questions.get()) is not END:
            if not self.answering:  # heard before listening stopped: left unanswered
                self.turns.answered(question.q)
                if question.prefetch is not None:
                    question.prefetch.cancel()
                continue
            try:
                await self._answer(question)
            except Exception as error:
                self._report_error("llm", error, question.anchor, question.utt, question.q)
        if self.answer is not None:  # the input has ended: let the last answer finish
            self.answer.wind_down()
            await self.answer.finished()

    async def _answer(self, question: Question) -> None:
        messages = self._messages(question.text, question.commentary, question.said_at)
        writer = ThesisWriter(question, self.chains.llm, self.settings, self.timeline)
        try:
            await writer.write_answer(messages, lambda begin: self._take_over(question, writer, begin))
        finally:
            self.turns.answered(question.q)
            if question.prefetch is not None:
                question.prefetch.cancel()  # a newer question took over: stop generating
            if writer.answer is not None:  # also when the stream failed: what was written stands
                writer.answer.round_done()
            elif self.answer is not None:
                self.answer.resume()  # no answer here: the current one may deepen again
        if writer.answer is None:
            log.info("no theses for %r (small talk, or the model found nothing to say)", question.text)

    def _take_over(self, question: Question, writer: ThesisWriter, begin: Callable[[Answer], object]) -> Answer:
        """The question has a non-empty answer: it replaces the previous one (6B)."""
        old, self.answer = self.answer, Answer(question, self._answer_context, writer)
        begin(self.answer)
        if old is not None:
            old.cancel()
            self.tasks.spawn(old.closed(), on_failure=lambda error: None, name=f"close-answer-{old.q}")
            self.earpiece.stop()
            if not old.plan.finished:
                self._emit(Interrupted(old.q, question.q), question.anchor, question.utt, question.q)
        return self.answer


def _speculation_failed(error: BaseException) -> None:
    """A speculation that fails is reported when its utterance adopts it (awaiting it raises
    there); a dropped one only leaves a log line — its audio is transcribed again in full."""
    log.warning("speculative work on a pause failed: %s", describe(error))
