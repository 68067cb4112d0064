"""The prompter's asyncio pipeline (SPEC §2–3).

    audio ─► listen (VAD + segmenter) ─► transcribe (ASR) ─► generate (LLM, streamed theses)
          ─► synthesize (TTS, runs ahead) ─► play (earpiece, chunk by chunk)

Stages are tasks joined by bounded queues; engine calls run in threads. A question becomes the
active one when its first thesis is complete — only then does it interrupt the previous
answer — and every hand-over drops frames whose question is no longer active.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import numpy as np
import soxr

from cluelypro.audio.earpiece import Earpiece
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.llm.prompts import thesis_messages
from cluelypro.llm.thesis_parser import ThesisStreamParser
from cluelypro.metrics.timeline import Anchor, Clock, Timeline
from cluelypro.pipeline.engines import Engines
from cluelypro.pipeline.frames import END, Question, SpeechSegment, SpokenThesis, Thesis
from cluelypro.pipeline.threads import iterate_in_thread
from cluelypro.tts.normalize import normalize_for_tts
from cluelypro.vad.segmenter import Segmenter, SegmenterEvent, SpeechEnded, SpeechStarted

log = logging.getLogger(__name__)

CONTEXT_WINDOW_S = 30.0


def _milliseconds_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


class Pipeline:
    def __init__(self, settings: Settings, engines: Engines, clock: Clock, timeline: Timeline, earpiece: Earpiece) -> None:
        self.settings = settings
        self.engines = engines
        self.clock = clock
        self.timeline = timeline
        self.earpiece = earpiece
        self.segmenter = Segmenter(
            engines.detector.frame_samples,
            threshold=settings.vad_threshold,
            preroll_ms=settings.preroll_ms,
            min_segment_ms=settings.min_segment_ms,
            end_silence_ms=settings.end_silence_ms,
            max_segment_s=settings.max_segment_s,
            noise_flatness=settings.noise_flatness,
        )
        size = settings.queue_size
        self._segments: asyncio.Queue[SpeechSegment | None] = asyncio.Queue(size)
        self._questions: asyncio.Queue[Question | None] = asyncio.Queue(size)
        self._theses: asyncio.Queue[Thesis | None] = asyncio.Queue(size)
        self._spoken: asyncio.Queue[SpokenThesis | None] = asyncio.Queue(size)
        self.active_q: int | None = None
        self._next_q = 1
        self._unplayed: Counter[int] = Counter()  # question → theses handed over, not yet played
        self._heard: deque[tuple[float, str]] = deque()  # (end time, text) of the other speaker

    async def run(self, source: AsyncIterator[np.ndarray]) -> None:
        """Process `source` to its end (or until cancelled), then let every answer finish."""
        stages = [self._transcribe(), self._generate(), self._synthesize(), self._play()]
        tasks = [asyncio.create_task(stage) for stage in stages]
        try:
            await self._listen(source)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _emit(self, event: str, anchor: Anchor, utt: int | None, q: int | None = None, **fields: Any) -> None:
        self.timeline.emit(event, anchor.now(), utt=utt, q=q, **fields)

    # --- listen: VAD and segmenter, inline in the capture loop (≈0.15 ms per frame) -------------

    async def _listen(self, source: AsyncIterator[np.ndarray]) -> None:
        detector = self.engines.detector
        size = detector.frame_samples
        pending = np.zeros(0, dtype=np.float32)
        async for block in source:
            pending = np.concatenate([pending, block])
            consumed = len(pending) - len(pending) % size
            for start in range(0, consumed, size):
                frame = pending[start : start + size]
                await self._on_vad(self.segmenter.push(frame, detector.speech_probability(frame)))
            pending = pending[consumed:]
        await self._on_vad(self.segmenter.flush())
        await self._segments.put(END)

    async def _on_vad(self, events: list[SegmenterEvent]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self.timeline.emit("speech_start", event.t, utt=event.utt)
            elif isinstance(event, SpeechEnded):
                self.timeline.emit("speech_end", event.end, utt=event.utt, duration=round(event.duration, 3))
                if event.utterance is not None:
                    anchor = self.clock.anchor_for_speech_end(event.end)
                    self._emit("segment", anchor, event.utt)
                    await self._hand_to_asr(SpeechSegment(event.utterance, anchor))

    async def _hand_to_asr(self, segment: SpeechSegment) -> None:
        if self.clock.fast:  # a file has no real time to keep: wait for the ASR
            await self._segments.put(segment)
            return
        if self._segments.full():  # live capture never waits: drop the oldest utterance
            dropped = self._segments.get_nowait()
            self._emit("error", segment.anchor, dropped.utterance.utt, stage="asr",
                       message="ASR fell behind; utterance dropped")
        self._segments.put_nowait(segment)

    # --- transcribe ------------------------------------------------------------------------------

    async def _transcribe(self) -> None:
        while (segment := await self._segments.get()) is not END:
            try:
                await self._transcribe_one(segment)
            except Exception as error:  # one bad utterance must not stop the prompter
                log.exception("ASR failed")
                self._emit("error", segment.anchor, segment.utterance.utt, stage="asr", message=str(error))
        await self._questions.put(END)

    async def _transcribe_one(self, segment: SpeechSegment) -> None:
        utterance, anchor = segment.utterance, segment.anchor
        self._emit("speaker", anchor, utterance.utt, role="other", score=None)
        started = time.monotonic()
        text = await asyncio.to_thread(self.engines.recognizer.transcribe, utterance.audio)
        self._emit("asr", anchor, utterance.utt, text=text, engine=self.engines.recognizer.name,
                   ms=_milliseconds_since(started))
        if not text:
            self._emit("question", anchor, utterance.utt, accepted=False, reason="empty transcript")
            return
        q = self._next_q
        self._next_q += 1
        # Without a heuristic filter the LLM decides: it returns no theses for small talk.
        self._emit("question", anchor, utterance.utt, q, accepted=True, reason="llm decides")
        await self._questions.put(Question(q, utterance.utt, text, anchor))
        self._heard.append((utterance.end, text))

    def _context_before(self, question: Question) -> str:
        horizon = self._heard[-1][0] - CONTEXT_WINDOW_S if self._heard else 0.0
        while self._heard and self._heard[0][0] < horizon:
            self._heard.popleft()
        return " ".join(text for _, text in self._heard if text != question.text)

    # --- generate --------------------------------------------------------------------------------

    async def _generate(self) -> None:
        while (question := await self._questions.get()) is not END:
            try:
                await self._answer(question)
            except Exception as error:
                log.exception("LLM failed")
                self._emit("error", question.anchor, question.utt, question.q, stage="llm", message=str(error))
        await self._theses.put(END)

    async def _answer(self, question: Question) -> None:
        llm = self.engines.llm
        messages = thesis_messages(question.text, self._context_before(question), self.settings.asr_language)
        parser = ThesisStreamParser()
        index = 0
        started = time.monotonic()
        stream = iterate_in_thread(lambda: llm.stream(messages, self.settings.llm_max_tokens))
        async with aclosing(stream) as pieces:
            async for piece in pieces:
                if started is not None:
                    self._emit("llm_first_token", question.anchor, question.utt, question.q,
                               provider=llm.name, ms=_milliseconds_since(started))
                    started = None
                for text in parser.feed(piece):
                    index += 1
                    await self._hand_over_thesis(question, index, text)
                if self._next_q - 1 > question.q:  # a newer question waits: stop this answer here
                    break
            else:
                for text in parser.finish():
                    index += 1
                    await self._hand_over_thesis(question, index, text)
        if index == 0:
            log.info("no theses for %r (small talk, or the model found nothing to say)", question.text)

    async def _hand_over_thesis(self, question: Question, index: int, text: str) -> None:
        thesis = Thesis(question.q, question.utt, index, text, depth=0, anchor=question.anchor)
        self._emit("thesis", question.anchor, question.utt, question.q, index=index, text=text, depth=0)
        self._unplayed[question.q] += 1
        if index == 1:
            self._activate(question)
        await self._theses.put(thesis)

    def _activate(self, question: Question) -> None:
        """The question has a non-empty answer: it replaces the previous one (6B)."""
        old_q, self.active_q = self.active_q, question.q
        if old_q is not None and self._unplayed[old_q] > 0:
            self.earpiece.stop()
            self._emit("interrupted", question.anchor, question.utt, question.q, old_q=old_q, new_q=question.q)

    # --- synthesize ------------------------------------------------------------------------------

    async def _synthesize(self) -> None:
        while (thesis := await self._theses.get()) is not END:
            if thesis.q != self.active_q:
                self._unplayed[thesis.q] -= 1
                continue
            spoken = SpokenThesis(thesis)
            await self._spoken.put(spoken)
            try:
                await self._synthesize_one(spoken)
            except Exception as error:
                log.exception("TTS failed")
                self._emit("error", thesis.anchor, thesis.utt, thesis.q, stage="tts", message=str(error))
            finally:
                spoken.chunks.put_nowait(END)
        await self._spoken.put(END)

    async def _synthesize_one(self, spoken: SpokenThesis) -> None:
        thesis, synthesizer = spoken.thesis, self.engines.synthesizer
        text = normalize_for_tts(thesis.text, self.settings.asr_language)
        resampler = soxr.ResampleStream(synthesizer.sample_rate, SAMPLE_RATE, 1, dtype="float32")
        first = True
        async with aclosing(iterate_in_thread(lambda: synthesizer.synthesize(text))) as chunks:
            async for chunk in chunks:
                if thesis.q != self.active_q:
                    return
                if first:
                    self._emit("tts_first_audio", thesis.anchor, thesis.utt, thesis.q, index=thesis.index)
                    first = False
                spoken.chunks.put_nowait(resampler.resample_chunk(chunk))
        spoken.chunks.put_nowait(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))

    # --- play ------------------------------------------------------------------------------------

    async def _play(self) -> None:
        while (spoken := await self._spoken.get()) is not END:
            await self._play_one(spoken)
            self._unplayed[spoken.thesis.q] -= 1

    async def _play_one(self, spoken: SpokenThesis) -> None:
        thesis = spoken.thesis
        start = end = None
        while (chunk := await spoken.chunks.get()) is not END:
            if thesis.q != self.active_q:
                break
            if len(chunk) == 0:
                continue
            chunk_start, end = await self.earpiece.play(chunk, thesis.anchor.now())
            if start is None:
                start = chunk_start
                self.timeline.emit("playback_start", start, utt=thesis.utt, q=thesis.q, index=thesis.index)
        if end is not None:
            self.timeline.emit("playback_end", end, utt=thesis.utt, q=thesis.q, index=thesis.index)
