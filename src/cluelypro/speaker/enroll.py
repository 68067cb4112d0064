"""Enrolment of the user's voice: the profile the speaker gate (speaker/gate.py) scores against.

Domain logic only (no CLI, no audio devices): the caller records or reads ~20–30 s of the user
reading ENROLL_TEXT, `build_profile` turns it into a VoiceProfile, and `gate.SpeakerGate` scores
every utterance against it.

Measured on the shared real recordings (9 speakers, LibriSpeech + VCTK; tests/test_speaker.py),
CAM++ profiles from ~20 s of speech (27 enrolments: 9 speakers × 3 choices of utterances) against
held-out 1.5–3 s cuts (358 own, 4800 impostor trials):
- profile = re-normalised mean of 3 s window embeddings: EER 0.01 %; one embedding of the whole
  audio 0.05 %, 2 s windows 0.05 %, 6 s windows 0.06 %, 50 %-overlapping 3 s windows 0.01 %
  (one or two errors either way, so mostly a tie; the windows also give the leave-out spread);
- impostor scores against a profile: mean 0.08, p99 0.37, p99.9 0.44, max 0.48;
- own held-out scores: mean 0.78, p5 0.67, min 0.46; the leave-out p5 of the enrolment's own
  cuts (below) is on average 0.02 above the held-out p5, at worst 0.14;
- a colleague's cross-session measurement on real speech: threshold 0.55 held FRR ≤ 2.4 % and
  FAR ≤ 0.4 % (own scores drop across sessions and microphones, so higher thresholds cost FRR).
The suggested threshold is therefore the leave-out p5 of own scores minus 0.2 (≈ 3 σ of own
scores, and more than the worst leave-out optimism), kept within [0.45, 0.55]: not below the
impostor tail (p99.9 0.44), not above the cross-session operating point 0.55. Over the 27
enrolments: FRR 0.28 % (1/358), FAR 0 % (0/4800); a fixed 0.45 gave FRR 0 % and FAR 0.08 %.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from cluelypro.config import SAMPLE_RATE
from cluelypro.speaker.base import SpeakerEmbedder, l2_normalised
from cluelypro.speaker.profiles import ProfileError, VoiceProfile, validate_name
from cluelypro.vad.engines import SpeechDetector
from cluelypro.vad.frames import scored_frames

MIN_VOICED_S = 12.0
"""Enrolments with less voiced audio are refused (SPEC: 20–30 s of reading is asked for)."""

WINDOW_S = 3.0
"""The profile is the re-normalised mean of the embeddings of 3 s windows of the voiced audio."""

PIECE_PATTERN_S = (2.0, 1.5, 3.0, 2.5)
"""Lengths of the enrolment's own cuts, scored against the profile to see its spread (1.5–3 s,
like the utterances the gate sees)."""

THRESHOLD_MARGIN = 0.2
THRESHOLD_RANGE = (0.45, 0.55)
LOW_SPREAD_P5 = 0.6
"""Own cuts scoring this low against their own profile mean a noisy or mixed recording."""

VAD_THRESHOLD = 0.5
VAD_HYSTERESIS = 0.15

ENROLL_TEXT = (
    "Съешь же ещё этих мягких французских булок да выпей чаю. "
    "Вчера вечером я долго гулял по широкой набережной: над рекой кружились чайки, "
    "пахло хвоей и свежим хлебом, а где-то вдалеке гудел поезд. "
    "Щенок терпеливо ждал хозяина у подъезда. "
    "Экзамен начнётся ровно в девять утра, поэтому я заранее повторю формулы, даты и определения. "
    "Жёлтые листья шуршат под ногами, и кажется, что осень пришла чуть раньше обычного."
)
"""About 25–30 s read aloud: a pangram, then sibilants, soft and hard consonants, all vowels."""


def voiced_audio(
    audio: np.ndarray,
    detector: SpeechDetector,
    threshold: float = VAD_THRESHOLD,
    hysteresis: float = VAD_HYSTERESIS,
) -> np.ndarray:
    """Only the voiced frames of 16 kHz float audio, concatenated (the detector is reset first).

    A frame starts speech at `threshold` and keeps it down to `threshold - hysteresis`, as the
    segmenter does, so soft syllables are not chopped out.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    detector.reset()
    kept: list[np.ndarray] = []
    in_speech = False
    for frame, probability in scored_frames(audio, detector):
        in_speech = probability >= threshold or (in_speech and probability >= threshold - hysteresis)
        if in_speech:
            kept.append(frame)
    detector.reset()
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.float32)


def _windows(length: int, window: int) -> list[tuple[int, int]]:
    """Back-to-back windows; the last one ends at the end (overlapping its neighbour)."""
    if length <= window:
        return [(0, length)]
    starts = list(range(0, length - window + 1, window))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(start, start + window) for start in starts]


def _pieces(length: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    start, index = 0, 0
    while True:
        size = round(PIECE_PATTERN_S[index % len(PIECE_PATTERN_S)] * SAMPLE_RATE)
        if start + size > length:
            return pieces
        pieces.append((start, start + size))
        start += size
        index += 1


def suggest_threshold(own_p5: float) -> float:
    low, high = THRESHOLD_RANGE
    return float(np.clip(own_p5 - THRESHOLD_MARGIN, low, high))


def build_profile(
    name: str,
    audio: np.ndarray,
    embedder: SpeakerEmbedder,
    detector: SpeechDetector,
) -> VoiceProfile:
    """A voice profile from a recording of the user (16 kHz float mono), or ProfileError.

    The spread statistics score each 1.5–3 s cut of the enrolment against the profile without
    the windows that overlap the cut (leave-out), which estimates how unseen own speech scores.
    """
    validate_name(name)
    voiced = voiced_audio(audio, detector)
    seconds = len(voiced) / SAMPLE_RATE
    if seconds < MIN_VOICED_S:
        raise ProfileError(
            f"only {seconds:.1f} s of speech were heard, at least {MIN_VOICED_S:.0f} s are needed; "
            "read the whole text aloud, close to the microphone"
        )
    windows = _windows(len(voiced), round(WINDOW_S * SAMPLE_RATE))
    window_embeddings = np.stack([embedder.embed(voiced[a:b]) for a, b in windows])
    total = window_embeddings.sum(axis=0)
    embedding = l2_normalised(total)

    scores = []
    for a, b in _pieces(len(voiced)):
        piece = embedder.embed(voiced[a:b])
        overlapping = [i for i, (wa, wb) in enumerate(windows) if wa < b and a < wb]
        reference = embedding
        if len(overlapping) < len(windows):
            reference = l2_normalised(total - window_embeddings[overlapping].sum(axis=0))
        scores.append(float(piece @ reference))
    own = np.array(scores)
    p5 = float(np.percentile(own, 5))
    return VoiceProfile(
        name=name,
        embedder=embedder.name,
        embedder_version=embedder.version,
        dim=int(embedding.shape[0]),
        embedding=embedding,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        voiced_seconds=round(seconds, 2),
        suggested_threshold=round(suggest_threshold(p5), 4),
        score_min=float(own.min()),
        score_p5=p5,
        score_median=float(np.median(own)),
        score_pieces=len(own),
    )


def enrollment_warning(profile: VoiceProfile) -> str | None:
    """A one-line hint when the enrolment looks unreliable, else None."""
    if profile.score_pieces and profile.score_p5 < LOW_SPREAD_P5:
        return (
            f"the recording is inconsistent (own cuts score down to {profile.score_p5:.2f}); "
            "re-enroll in a quiet room, alone, close to the microphone"
        )
    return None
