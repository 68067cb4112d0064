"""The VAD segmenter: pure logic on scripted probabilities, and both detectors on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from cluelypro.audio.io import read_audio
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.vad.engines import make_detector
from cluelypro.vad.frames import segment_audio
from cluelypro.vad.segmenter import (
    Segmenter,
    SpeechEnded,
    SpeechPaused,
    SpeechStarted,
    segmenter_for,
    spectral_flatness,
)
from cluelypro.vad.turn import TurnPolicy, apply_turn

FRAME = 512
FRAME_S = FRAME / SAMPLE_RATE


def tone(frames: int, seed: int = 0) -> np.ndarray:
    """A voiced-like signal (harmonics + a little noise): low spectral flatness, like speech."""
    t = np.arange(frames * FRAME) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    return (0.2 * wave + 0.001 * rng.normal(size=t.size)).astype(np.float32)


def feed(segmenter: Segmenter, audio: np.ndarray, probabilities: list[float]) -> list:
    events = []
    for index, probability in enumerate(probabilities):
        events += segmenter.push(audio[index * FRAME : (index + 1) * FRAME], probability)
    return events + segmenter.flush()


def test_one_utterance_with_timestamps_and_preroll() -> None:
    probabilities = [0.0] * 10 + [0.9] * 30 + [0.0] * 20
    segmenter = Segmenter(FRAME, preroll_ms=160, end_silence_ms=400)
    events = feed(segmenter, tone(len(probabilities)), probabilities)
    started, ended = events
    assert isinstance(started, SpeechStarted) and started.t == pytest.approx(10 * FRAME_S)
    assert isinstance(ended, SpeechEnded) and ended.reason == "speech"
    assert ended.end == pytest.approx(40 * FRAME_S), "speech_end is the last voiced frame, not the window close"
    utterance = ended.utterance
    assert utterance.closed_at - utterance.end == pytest.approx(13 * FRAME_S)  # ≥ 400 ms of silence
    preroll_frames = 5  # ceil(160 ms / 32 ms)
    trailing = round(0.2 * SAMPLE_RATE)
    assert len(utterance.audio) == (preroll_frames + 30) * FRAME + trailing


def test_short_pause_does_not_split_and_long_pause_does() -> None:
    short_gap = [0.9] * 20 + [0.0] * 8 + [0.9] * 20 + [0.0] * 20  # 256 ms gap
    long_gap = [0.9] * 20 + [0.0] * 20 + [0.9] * 20 + [0.0] * 20  # 640 ms gap
    for probabilities, expected in ((short_gap, 1), (long_gap, 2)):
        events = feed(Segmenter(FRAME), tone(len(probabilities)), probabilities)
        assert sum(isinstance(event, SpeechEnded) for event in events) == expected


def test_hysteresis_keeps_soft_frames_voiced() -> None:
    probabilities = [0.9] * 10 + [0.4] * 20 + [0.9] * 10 + [0.0] * 20
    events = feed(Segmenter(FRAME, threshold=0.5), tone(len(probabilities)), probabilities)
    ends = [event for event in events if isinstance(event, SpeechEnded)]
    assert len(ends) == 1 and ends[0].end == pytest.approx(40 * FRAME_S)


def test_too_short_and_noise_are_rejected() -> None:
    blip = [0.9] * 5 + [0.0] * 20
    ((_, short),) = [feed(Segmenter(FRAME, min_segment_ms=500), tone(len(blip)), blip)]
    assert short.reason == "too_short" and short.utterance is None

    noisy = [0.9] * 40 + [0.0] * 20
    white = np.random.default_rng(1).normal(0, 0.1, len(noisy) * FRAME).astype(np.float32)
    _, noise = feed(Segmenter(FRAME), white, noisy)
    assert noise.reason == "noise" and noise.utterance is None


def test_monologue_is_cut_at_max_length() -> None:
    probabilities = [0.9] * 200
    events = feed(Segmenter(FRAME, max_segment_s=2.0), tone(len(probabilities)), probabilities)
    ends = [event for event in events if isinstance(event, SpeechEnded)]
    assert len(ends) == 4 and all(event.duration <= 2.0 + FRAME_S for event in ends)


def test_flatness_separates_speech_from_white_noise(ru_clips) -> None:
    speech = max(spectral_flatness(read_audio(clip)) for clip in ru_clips)
    noise = spectral_flatness(np.random.default_rng(2).normal(0, 0.1, SAMPLE_RATE).astype(np.float32))
    assert speech < 0.2 < 0.5 < noise


def accepted_utterances(engine: str, audio: np.ndarray) -> list[SpeechEnded]:
    detector = make_detector(engine)
    events = segment_audio(audio, detector, Segmenter(detector.frame_samples))
    return [event for event in events if isinstance(event, SpeechEnded) and event.utterance]


SILERO = pytest.param("silero", marks=pytest.mark.slow)  # a real model (WebRTC VAD is plain code)


@pytest.mark.parametrize("engine", [SILERO, "webrtc"])
def test_detectors_find_every_real_question(engine: str, ru_clips) -> None:
    for clip in ru_clips:
        audio = np.concatenate([read_audio(clip), np.zeros(SAMPLE_RATE, np.float32)])
        accepted = accepted_utterances(engine, audio)
        assert accepted, f"{engine} found no speech in {clip.name}"
        assert all(0 < event.end <= len(audio) / SAMPLE_RATE for event in accepted)


@pytest.mark.parametrize("engine", [SILERO, "webrtc"])
def test_detectors_ignore_silence_and_white_noise(engine: str) -> None:
    rng = np.random.default_rng(3)
    for audio in (np.zeros(3 * SAMPLE_RATE, np.float32), rng.normal(0, 0.05, 3 * SAMPLE_RATE).astype(np.float32)):
        assert accepted_utterances(engine, audio) == []


@pytest.mark.parametrize("pause_ms", [120, 200])
def test_pause_offers_the_final_audio_early_for_speculative_asr(pause_ms: int) -> None:
    probabilities = [0.9] * 30 + [0.0] * 20
    events = feed(Segmenter(FRAME, speculate_after_ms=pause_ms), tone(len(probabilities)), probabilities)
    started, paused, ended = events
    assert isinstance(paused, SpeechPaused) and paused.end == ended.end
    assert np.array_equal(paused.audio, ended.utterance.audio), "the speculation must be what is committed"


def test_the_sequential_baseline_cuts_the_same_utterance() -> None:
    probabilities = [0.9] * 30 + [0.0] * 20
    audio = tone(len(probabilities))
    settings = Settings(speculative_asr_ms=120)
    speculative = feed(segmenter_for(settings, FRAME), audio, probabilities)
    plain = feed(segmenter_for(settings, FRAME, speculative=False), audio, probabilities)
    assert not any(isinstance(event, SpeechPaused) for event in plain)
    assert np.array_equal(speculative[-1].utterance.audio, plain[-1].utterance.audio)


def test_a_resumed_pause_is_not_the_end() -> None:
    probabilities = [0.9] * 20 + [0.0] * 8 + [0.9] * 20 + [0.0] * 20
    events = feed(Segmenter(FRAME, speculate_after_ms=200), tone(len(probabilities)), probabilities)
    pauses = [event for event in events if isinstance(event, SpeechPaused)]
    ends = [event for event in events if isinstance(event, SpeechEnded)]
    assert len(ends) == 1 and len(pauses) == 2
    assert pauses[0].end < ends[0].end == pauses[1].end


def pushed_with_turns(segmenter: Segmenter, probabilities: list[float], decide) -> list:
    """Frames pushed one by one; at each pause the decision `decide(pause)` is applied at once,
    as the pipeline does when the turn model answers."""
    audio, events = tone(len(probabilities)), []
    for index, probability in enumerate(probabilities):
        for event in segmenter.push(audio[index * FRAME : (index + 1) * FRAME], probability):
            events.append(event)
            if isinstance(event, SpeechPaused):
                events += apply_turn(segmenter, event.utt, decide(event), TurnPolicy(hold_s=1.2))
    return events + segmenter.flush()


def test_a_complete_turn_ends_the_utterance_at_the_pause() -> None:
    probabilities = [0.9] * 30 + [0.0] * 40
    events = pushed_with_turns(Segmenter(FRAME, speculate_after_ms=120), probabilities, lambda pause: "complete")
    paused, ended = events[1], events[2]
    assert isinstance(paused, SpeechPaused) and isinstance(ended, SpeechEnded)
    assert ended.end == paused.end and ended.utterance is not None
    assert ended.utterance.closed_at - ended.end < 0.2, "closed at the 120 ms pause, not after 400 ms"
    assert np.array_equal(paused.audio, ended.utterance.audio)


def test_an_incomplete_turn_holds_the_pause_and_hears_the_question_whole() -> None:
    # speech, a 700 ms pause (the fixed 400 ms window would cut here), speech again, silence
    pause = round(0.7 / FRAME_S)
    probabilities = [0.9] * 30 + [0.0] * pause + [0.9] * 30 + [0.0] * 60
    fixed = feed(Segmenter(FRAME, speculate_after_ms=120), tone(len(probabilities)), probabilities)
    assert sum(isinstance(event, SpeechEnded) for event in fixed) == 2
    events = pushed_with_turns(
        Segmenter(FRAME, speculate_after_ms=120),
        probabilities,
        lambda paused: "incomplete" if paused.end < 1.5 else "complete",
    )
    ends = [event for event in events if isinstance(event, SpeechEnded)]
    assert len(ends) == 1 and ends[0].start < 0.5 and ends[0].end > 2.0


def test_a_held_pause_still_ends_at_the_hold() -> None:
    probabilities = [0.9] * 30 + [0.0] * 100
    events = pushed_with_turns(Segmenter(FRAME, speculate_after_ms=120), probabilities, lambda paused: "incomplete")
    (ended,) = [event for event in events if isinstance(event, SpeechEnded)]
    assert ended.utterance is not None
    assert 1.2 <= ended.utterance.closed_at - ended.end < 1.2 + 2 * FRAME_S


def test_a_late_decision_does_not_touch_the_next_utterance() -> None:
    segmenter = Segmenter(FRAME, speculate_after_ms=120)
    probabilities = [0.9] * 30 + [0.0] * 5
    feed_events = [
        event
        for index, p in enumerate(probabilities)
        for event in segmenter.push(tone(len(probabilities))[index * FRAME : (index + 1) * FRAME], p)
    ]
    (paused,) = [event for event in feed_events if isinstance(event, SpeechPaused)]
    segmenter.push(tone(1), 0.9)  # speech resumed before the model answered
    assert apply_turn(segmenter, paused.utt, "complete", TurnPolicy()) == []
    assert segmenter.in_speech
