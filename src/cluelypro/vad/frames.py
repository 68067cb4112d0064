"""Audio cut into the detector's frames, and each frame scored: the one frame-by-frame loop that
the pipeline's input stage, the benchmark's baseline, enrolment and the tests share."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cluelypro.vad.engines import SpeechDetector
from cluelypro.vad.segmenter import Segmenter, SegmenterEvent


class FrameCutter:
    """Cuts audio, block by block, into frames of `frame_samples`; a partial frame at a block's
    end waits for the next block."""

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)

    def cut(self, block: np.ndarray) -> Iterator[np.ndarray]:
        pending = np.concatenate([self._pending, block])
        whole = len(pending) - len(pending) % self.frame_samples
        self._pending = pending[whole:]
        for start in range(0, whole, self.frame_samples):
            yield pending[start : start + self.frame_samples]


def scored_frames(audio: np.ndarray, detector: SpeechDetector) -> Iterator[tuple[np.ndarray, float]]:
    """Each whole frame of `audio` with the detector's speech probability (a last partial frame
    is left out)."""
    for frame in FrameCutter(detector.frame_samples).cut(audio):
        yield frame, detector.speech_probability(frame)


def segment_audio(audio: np.ndarray, detector: SpeechDetector, segmenter: Segmenter) -> list[SegmenterEvent]:
    """What `segmenter` makes of the whole of `audio`, flushed at its end."""
    events = [
        event for frame, probability in scored_frames(audio, detector) for event in segmenter.push(frame, probability)
    ]
    return events + segmenter.flush()
