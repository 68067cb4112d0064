"""Cuts a stream of scored frames into utterances (SPEC §2.2).

Pure logic with no engine and no clock: it is fed each frame with the detector's speech
probability and keeps the input time itself (frames pushed × frame length).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cluelypro.config import SAMPLE_RATE, Settings

HYSTERESIS = 0.15
"""Once speech has started, frames stay voiced down to threshold − this (as Silero's own
iterator does), so a soft syllable does not open a silence gap."""

TRAILING_KEEP_S = 0.2
"""Silence kept after the last voiced frame: enough for the ASR to hear the word's end. With
speculative ASR the utterance keeps only as much as the speculative pause has (0.12 s by
default), so that the audio transcribed at the pause is the very audio the utterance ends with:
8 ms more or less of tail changed Whisper's transcript of 9 of the 19 shared clips."""


@dataclass(frozen=True)
class SpeechStarted:
    utt: int
    t: float


@dataclass(frozen=True)
class Utterance:
    utt: int
    audio: np.ndarray = field(repr=False)
    start: float  # first voiced frame, input seconds
    end: float  # end of the last voiced frame, input seconds
    closed_at: float  # input time when the end-of-speech silence window closed

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeechPaused:
    """Speech has paused long enough to guess it is over: the audio so far, for a speculative
    ASR run. The utterance it would become ends at `end`, unless speech resumes."""

    utt: int
    audio: np.ndarray = field(repr=False)
    end: float


@dataclass(frozen=True)
class SpeechEnded:
    utt: int
    start: float
    end: float
    utterance: Utterance | None  # None when the segment was rejected
    reason: str  # "speech", "too_short" or "noise"

    @property
    def duration(self) -> float:
        return self.end - self.start


SegmenterEvent = SpeechStarted | SpeechPaused | SpeechEnded


def spectral_flatness(audio: np.ndarray, frame: int = 512) -> float:
    """Median spectral flatness of the audible frames: ≈0.56 for white noise, well below for speech."""
    count = len(audio) // frame
    if count == 0:
        return 0.0
    frames = audio[: count * frame].reshape(count, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    loudness = power.mean(axis=1)
    audible = loudness > loudness.max() * 1e-3
    flatness = np.exp(np.log(power).mean(axis=1)) / loudness
    return float(np.median(flatness[audible]))


class Segmenter:
    def __init__(
        self,
        frame_samples: int,
        threshold: float = 0.5,
        preroll_ms: int = 160,
        min_segment_ms: int = 500,
        end_silence_ms: int = 400,
        max_segment_s: float = 25.0,
        noise_flatness: float = 0.4,
        speculate_after_ms: int = 0,
        offer_pauses: bool = True,
        utt_ids: Iterator[int] | None = None,
    ) -> None:
        """`utt_ids`: where utterance ids come from (shared by the segmenters of one run's sources,
        so ids stay unique across them); 1, 2, 3… by default."""
        self.frame_samples = frame_samples
        self.frame_s = frame_samples / SAMPLE_RATE
        self.threshold = threshold
        self.min_segment_s = min_segment_ms / 1000
        self.end_silence_s = end_silence_ms / 1000
        self.max_segment_s = max_segment_s
        self.noise_flatness = noise_flatness
        pause_s = speculate_after_ms / 1000 if 0 < speculate_after_ms < end_silence_ms else None
        self.trailing_keep_s = min(TRAILING_KEEP_S, pause_s or TRAILING_KEEP_S)
        self.speculate_after_s = pause_s if offer_pauses else None
        self._paused = False
        self._hold_s: float | None = None  # this pause's end window, when a turn model extended it
        self._preroll: deque[np.ndarray] = deque(maxlen=math.ceil(preroll_ms / 1000 / self.frame_s))
        self._frames: list[np.ndarray] = []
        self._utt_ids = utt_ids if utt_ids is not None else itertools.count(1)
        self._utt = 0
        self._start = 0.0
        self._last_voiced_end = 0.0
        self._frames_pushed = 0

    @property
    def now(self) -> float:
        """Input time at the end of the last frame pushed."""
        return self._frames_pushed * self.frame_s

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def push(self, frame: np.ndarray, probability: float) -> list[SegmenterEvent]:
        frame_start = self.now
        self._frames_pushed += 1
        if not self.in_speech:
            return self._idle(frame, probability, frame_start)
        self._frames.append(frame)
        if probability >= self.threshold - HYSTERESIS:
            self._last_voiced_end = self.now
            self._paused, self._hold_s = False, None
        silence = self.now - self._last_voiced_end
        if silence >= (self._hold_s or self.end_silence_s) or self.now - self._start >= self.max_segment_s:
            return [self._close()]
        if self.speculate_after_s is not None and silence >= self.speculate_after_s and not self._paused:
            self._paused = True
            audio = self._trimmed(np.concatenate(self._frames))
            if self._rejection(audio, self._last_voiced_end - self._start) is None:
                return [SpeechPaused(self._utt, audio, self._last_voiced_end)]
        return []

    def in_pause_of(self, utt: int) -> bool:
        """Utterance `utt` is still open and silent since the pause it was offered at."""
        return self.in_speech and self._utt == utt and self._paused

    def end_turn(self, utt: int) -> list[SegmenterEvent]:
        """The speaker's turn is complete (a turn model said so at the pause): `utt` ends now,
        unless speech has resumed since."""
        return [self._close()] if self.in_pause_of(utt) else []

    def hold_turn(self, utt: int, silence_s: float) -> None:
        """The speaker is only pausing: this pause of `utt` ends the utterance after `silence_s`
        of silence instead of the usual window (until speech resumes)."""
        if self.in_pause_of(utt):
            self._hold_s = max(silence_s, self.end_silence_s)

    def flush(self) -> list[SegmenterEvent]:
        """End of input: close an utterance still open."""
        return [self._close()] if self.in_speech else []

    def _idle(self, frame: np.ndarray, probability: float, frame_start: float) -> list[SegmenterEvent]:
        if probability < self.threshold:
            self._preroll.append(frame)
            return []
        self._utt = next(self._utt_ids)
        self._start = frame_start
        self._last_voiced_end = self.now
        self._frames = [*self._preroll, frame]
        self._preroll.clear()
        return [SpeechStarted(self._utt, frame_start)]

    def _trimmed(self, audio: np.ndarray) -> np.ndarray:
        """The utterance's audio up to TRAILING_KEEP_S after its last voiced frame."""
        keep_until = min(self.now, self._last_voiced_end + self.trailing_keep_s)
        return audio[: len(audio) - round((self.now - keep_until) * SAMPLE_RATE)]

    def _close(self) -> SpeechEnded:
        audio = self._trimmed(np.concatenate(self._frames))
        self._frames = []
        self._paused, self._hold_s = False, None
        start, end = self._start, self._last_voiced_end
        reason = self._rejection(audio, end - start)
        utterance = None if reason else Utterance(self._utt, audio, start, end, closed_at=self.now)
        return SpeechEnded(self._utt, start, end, utterance, reason or "speech")

    def _rejection(self, audio: np.ndarray, duration: float) -> str | None:
        if duration < self.min_segment_s:
            return "too_short"
        if spectral_flatness(audio) > self.noise_flatness:
            return "noise"
        return None


def segmenter_for(
    settings: Settings, frame_samples: int, speculative: bool = True, utt_ids: Iterator[int] | None = None
) -> Segmenter:
    """The segmenter the settings describe (`speculative`: also offer pauses for early ASR).
    Without them it still cuts utterances exactly as the speculative one does."""
    return Segmenter(
        frame_samples,
        threshold=settings.vad_threshold,
        preroll_ms=settings.preroll_ms,
        min_segment_ms=settings.min_segment_ms,
        end_silence_ms=settings.end_silence_ms,
        max_segment_s=settings.max_segment_s,
        noise_flatness=settings.noise_flatness,
        speculate_after_ms=settings.speculative_asr_ms,
        offer_pauses=speculative,
        utt_ids=utt_ids,
    )
