"""Smart Turn v3.2, the learned end-of-turn model: real Russian questions, whole and cut.

Audio: ../shared/audio/ru (golos_* human voice-assistant requests, ohf_* synthetic commands) and
eval/audio (102 RHVoice exam questions, whole sentences). The model file comes from the pipecat-ai
wheel (requirements/models.txt); the model tests fail, with the install hint, when it is missing.

Measured on the 2-core dev machine (onnxruntime 1.32, 1 thread), probabilities of the clips as
recorded and of the same clips cut at 50 % of their speech (Silero's first to last voiced frame):
  whole clips (120):            median 0.972, 93.3 % ≥ 0.5 (golos 8/10, ohf 8/8, eval 96/102)
  cut, golos + eval (112):      median 0.155, 66.1 % < 0.5, 88.4 % lower than the whole clip
  cut + 0.3 s of the clip's
  own background after speech:  median 0.539, 48.2 % < 0.5, 82.1 % lower than the whole clip
A pause mid-sentence is told from the end of a question only about half the time at 0.5, so the
model can lengthen or shorten the silence the segmenter waits for, not replace it. ohf's commands
(1–3 words) are left out of the cut tests: half of «Забудь» or «Неважно» is not mid-sentence.
The features are bit-identical to pipecat's own (its _whisper_features.py, run here as a file).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cluelypro.audio.io import read_audio
from cluelypro.config import SAMPLE_RATE
from cluelypro.packaged import ModelUnavailableError
from cluelypro.turn import smart_turn
from cluelypro.turn.smart_turn import MODEL_FILE, WINDOW_SAMPLES, SmartTurn, default_model_path
from cluelypro.vad.engines import SileroDetector
from conftest import ROOT, RU_AUDIO

EVAL_AUDIO = ROOT / "eval" / "audio"
CUT_AT = 0.5  # of the speech, from its first to its last voiced frame
PAUSE_S = 0.3  # background appended after a cut: the pause a segmenter would wait through

MIN_WHOLE_COMPLETE = 0.85  # measured 93.3 % ≥ 0.5
MIN_WHOLE_MEDIAN = 0.9  # measured 0.972
MIN_CUT_LOWER = 0.75  # measured 88.4 %
MIN_CUT_INCOMPLETE = 0.5  # measured 66.1 % < 0.5
MAX_CUT_MEDIAN = 0.4  # measured 0.155
MIN_PAUSED_LOWER = 0.7  # measured 82.1 %
MAX_PAUSED_MEDIAN = 0.75  # measured 0.539


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    turn = SmartTurn(threads=1)
    try:
        turn.load()
    except ModelUnavailableError as error:
        pytest.fail(f"{error} (scripts/setup.sh installs requirements/models.txt)")
    turn.warm_up()
    return turn


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    paths = sorted(RU_AUDIO.glob("*.wav")) + sorted(EVAL_AUDIO.glob("*.flac"))
    assert len(paths) >= 110, f"the recordings are missing: {RU_AUDIO}, {EVAL_AUDIO}"
    return {path.name: read_audio(path) for path in paths}


@pytest.fixture(scope="module")
def whole(model: SmartTurn, clips: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: model.complete_probability(audio) for name, audio in clips.items()}


@pytest.fixture(scope="module")
def sentences(clips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The clips long enough to be cut mid-sentence (all but ohf's 1–3 word commands)."""
    return {name: audio for name, audio in clips.items() if not name.startswith("ohf_")}


@pytest.fixture(scope="module")
def cuts(sentences: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each sentence cut mid-sentence: alone, and followed by a pause (PAUSE_S of its own background)."""
    detector = SileroDetector()
    return {name: cut_mid_sentence(audio, detector) for name, audio in sentences.items()}


def speech_span(audio: np.ndarray, detector: SileroDetector) -> tuple[int, int]:
    """Sample indices of the first and just after the last frame Silero calls speech."""
    detector.reset()
    size = detector.frame_samples
    voiced = [
        start
        for start in range(0, audio.size - size + 1, size)
        if detector.speech_probability(audio[start : start + size]) > 0.5
    ]
    assert voiced, "no speech found"
    return voiced[0], voiced[-1] + size


def cut_mid_sentence(audio: np.ndarray, detector: SileroDetector) -> tuple[np.ndarray, np.ndarray]:
    """`audio` up to CUT_AT of its speech, and the same followed by PAUSE_S of the background
    after its speech."""
    start, end = speech_span(audio, detector)
    cut = audio[: start + int(CUT_AT * (end - start))]
    return cut, np.concatenate([cut, audio[end : end + int(PAUSE_S * SAMPLE_RATE)]])


def share(values: list[bool]) -> float:
    return sum(values) / len(values)


# --------------------------------------------------------------------------- the model file


def test_a_model_file_with_another_sha256_is_refused_in_one_line(tmp_path: Path) -> None:
    data = bytearray(default_model_path().read_bytes())
    data[len(data) // 2] ^= 1
    changed = tmp_path / MODEL_FILE
    changed.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailableError) as refused:
        SmartTurn(model_path=changed).load()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{MODEL_FILE}: SHA-256 of {changed} is ")
    assert f"expected {smart_turn.MODEL_SHA256}" in message
    assert message.endswith("reinstall it with `pip install --force-reinstall --no-deps pipecat-ai==1.14.0`")


def test_a_missing_model_file_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"missing; run the setup script \(make setup\)"):
        SmartTurn(model_path=tmp_path / MODEL_FILE).load()


def test_without_the_pipecat_wheel_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_turn, "SOURCE_PACKAGE", "pipecat_not_installed")
    with pytest.raises(ModelUnavailableError, match=r"`pip install --no-deps pipecat-ai==1\.14\.0`") as refused:
        SmartTurn().load()
    assert "\n" not in str(refused.value)


def test_the_pinned_model_is_the_installed_one() -> None:
    from cluelypro.packaged import sha256_of

    path = default_model_path()
    assert path.name == MODEL_FILE and path.stat().st_size == 8_679_182
    assert sha256_of(path) == smart_turn.MODEL_SHA256


# --------------------------------------------------------------------------- features


@pytest.mark.slow
def test_the_features_are_pipecats_bit_for_bit(model: SmartTurn, clips: dict[str, np.ndarray]) -> None:
    """pipecat's numpy feature file, run on its own (not `pipecat`, which is never imported).

    The int8 model is that sensitive: faster-whisper's float32 log-mel, 1e-5 away, moved
    probabilities by up to 0.17."""
    reference = pipecat_features_module()
    for name in list(clips)[::10]:
        for audio in (clips[name], clips[name][: SAMPLE_RATE // 5], np.tile(clips[name], 4)):
            window = smart_turn.last_window(audio)
            expected = reference.compute_whisper_log_mel_features(window, do_normalize=True)
            assert np.array_equal(model.features(audio), expected), name


def pipecat_features_module() -> ModuleType:
    path = default_model_path().parents[1] / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- whole and cut questions


@pytest.mark.slow
def test_whole_questions_mostly_score_complete(whole: dict[str, float]) -> None:
    scores = list(whole.values())
    assert share([score >= 0.5 for score in scores]) >= MIN_WHOLE_COMPLETE, sorted(whole.items(), key=lambda i: i[1])
    assert float(np.median(scores)) >= MIN_WHOLE_MEDIAN


@pytest.mark.slow
def test_a_question_cut_mid_sentence_scores_lower_than_whole(
    model: SmartTurn, cuts: dict[str, tuple[np.ndarray, np.ndarray]], whole: dict[str, float]
) -> None:
    cut = {name: model.complete_probability(audio) for name, (audio, _) in cuts.items()}
    lower = share([cut[name] < whole[name] for name in cut])
    incomplete = share([score < 0.5 for score in cut.values()])
    assert lower >= MIN_CUT_LOWER, f"{lower:.1%} of cuts score lower than their whole clip"
    assert incomplete >= MIN_CUT_INCOMPLETE, f"{incomplete:.1%} of cuts score < 0.5"
    assert float(np.median(list(cut.values()))) <= MAX_CUT_MEDIAN


@pytest.mark.slow
def test_a_pause_mid_sentence_scores_lower_than_the_end(
    model: SmartTurn, cuts: dict[str, tuple[np.ndarray, np.ndarray]], whole: dict[str, float]
) -> None:
    """The cut followed by the clip's own background, as the segmenter hands it over after a pause."""
    paused = {name: model.complete_probability(audio) for name, (_, audio) in cuts.items()}
    lower = share([paused[name] < whole[name] for name in paused])
    assert lower >= MIN_PAUSED_LOWER, f"{lower:.1%} of paused cuts score lower than their whole clip"
    assert float(np.median(list(paused.values()))) <= MAX_PAUSED_MEDIAN


# --------------------------------------------------------------------------- lengths and threads


@pytest.mark.slow
def test_only_the_last_8_seconds_count(model: SmartTurn, clips: dict[str, np.ndarray]) -> None:
    speech = np.concatenate(list(clips.values())[-8:])
    assert speech.size > 2 * WINDOW_SAMPLES
    last = speech[-WINDOW_SAMPLES:]
    earlier_speech = np.concatenate([speech[:WINDOW_SAMPLES], last])
    earlier_noise = np.concatenate([np.random.default_rng(0).normal(0, 0.1, 3 * SAMPLE_RATE), last])
    expected = model.complete_probability(last)
    assert model.complete_probability(earlier_speech) == expected
    assert model.complete_probability(earlier_noise) == expected
    assert np.array_equal(model.features(earlier_speech), model.features(last))
    # The window is the end, not the start: the first 8 s of these two differ, and so would their scores.
    assert not np.array_equal(model.features(earlier_speech[:WINDOW_SAMPLES]), model.features(last))


@pytest.mark.slow
def test_a_fifth_of_a_second_is_scored(model: SmartTurn, clips: dict[str, np.ndarray]) -> None:
    audio = clips["golos_07.wav"]
    start, end = speech_span(audio, SileroDetector())
    short = SAMPLE_RATE // 5
    for clip in (audio[start : start + short], audio[end - short : end], np.zeros(short, dtype=np.float32)):
        assert model.features(clip).shape == (80, 800)
        assert 0.0 <= model.complete_probability(clip) <= 1.0
    with pytest.raises(ValueError, match="empty"):
        model.complete_probability(np.zeros(0, dtype=np.float32))


@pytest.mark.slow
def test_calls_from_several_threads_give_the_same_scores(
    model: SmartTurn, clips: dict[str, np.ndarray], whole: dict[str, float]
) -> None:
    names = list(clips)[:8]
    scores: dict[str, float] = {}

    def score(name: str) -> None:
        scores[name] = model.complete_probability(clips[name])

    threads = [threading.Thread(target=score, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert scores == {name: whole[name] for name in names}


@pytest.mark.slow
def test_pipecat_is_never_imported(model: SmartTurn, whole: dict[str, float]) -> None:
    assert whole and model.name == "smart-turn-v3.2"
    assert not [name for name in sys.modules if name == "pipecat" or name.startswith("pipecat.")]


@pytest.mark.slow
def test_load_takes_a_progress_callback_like_the_other_engines() -> None:
    """engines.load_engines calls `load(progress)` then `warm_up()` on every engine."""
    reported: list[tuple[int, int]] = []
    turn = SmartTurn()
    turn.load(lambda done, total: reported.append((done, total)))
    turn.warm_up()
    assert reported == [(1, 1)]
