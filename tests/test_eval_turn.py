"""`cluelypro eval turn` and its set `eval/turn/` (issue 14): the manifest and its recordings, the
pause splice, the replay's verdicts on made-up frames, the CLI's one-line input errors, and — slow —
the labels against Silero, the fixed window's facts over the whole set, and the command end to end
with Silero and Smart Turn on a few cases.

The set (scripts/make_turn_set.py): 24 RHVoice questions paused at a comma for 300/500/700/900 ms
(eval/turn/audio), the 10 Golos clips of ../shared/audio/ru with a pause of their own background
spliced in at a word boundary at replay time, and as finished questions the 102 recordings of
eval/audio and the 10 Golos clips as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.eval.inputs import EvalInputError
from cluelypro.eval.turn import (
    TAIL_S,
    ReplayRun,
    TurnCase,
    background_like,
    case_audio,
    case_entry,
    load_cases,
    outcome,
    replay,
    splice_pause,
    summarize,
    with_tail,
)
from cluelypro.vad.segmenter import Segmenter, segmenter_for
from cluelypro.vad.turn import TurnPolicy
from conftest import ROOT, RU_AUDIO, assert_one_line_exit_2

CLI = [sys.executable, "-m", "cluelypro.cli"]
TURN = ROOT / "eval" / "turn"
MANIFEST = TURN / "cases.jsonl"
PAUSES = (0.3, 0.5, 0.7, 0.9)
RHVOICE = ("aleksandr", "anna", "elena", "irina")
FRAME = 512  # Silero's frame
FRAME_S = FRAME / SAMPLE_RATE
END_TOLERANCE = (-0.1, 0.15)
"""Where Silero's last speech (p ≥ 0.5) ends against a labelled end: measured −0.08 … +0.134 s
(its 32 ms frames, and the context it judges a frame in, run past a word's fading end)."""


@pytest.fixture(scope="module")
def cases() -> list[TurnCase]:
    return load_cases(MANIFEST)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=dict(os.environ), timeout=600)


# --- the set ---------------------------------------------------------------------------------------


def test_the_manifest_names_every_case_once_with_files_that_exist(cases: list[TurnCase]) -> None:
    paused = [case for case in cases if case.kind == "paused"]
    finished = [case for case in cases if case.kind == "finished"]
    assert (len(paused), len(finished)) == (34, 112)
    assert len({case.id for case in cases}) == len(cases)
    for case in cases:
        assert (TURN / case.file).is_file(), case.file
        assert case.start_s < case.end_s
    for pause in PAUSES:
        assert sum(case.pause_s == pause for case in paused) >= 8, pause
    assert {case.voice for case in paused} == {*RHVOICE, "golos"}
    assert {case.voice for case in finished} == {*RHVOICE, "golos"}
    recordings = {path.name for path in (ROOT / "eval" / "audio").glob("*.flac")}
    assert {Path(case.file).name for case in finished if case.voice != "golos"} == recordings
    golos = {path.name for path in RU_AUDIO.glob("golos_*.wav")}
    assert {Path(case.file).name for case in cases if case.voice == "golos"} == golos


def test_the_shared_clips_are_referenced_not_copied(cases: list[TurnCase]) -> None:
    for case in cases:
        if case.voice == "golos":
            assert (TURN / case.file).resolve().parent == RU_AUDIO.resolve()
    stored = sorted((TURN / "audio").iterdir())
    assert all(path.suffix == ".flac" and not path.name.startswith("golos") for path in stored)
    assert sum(path.stat().st_size for path in TURN.rglob("*") if path.is_file()) < 6 * 1024 * 1024


def test_the_stored_recordings_are_16_khz_mono_and_every_one_is_a_case(cases: list[TurnCase]) -> None:
    named = {(TURN / case.file).resolve() for case in cases}
    for path in sorted((TURN / "audio").glob("*.flac")):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16"), path.name
        assert path.resolve() in named, f"{path.name} is in no case"


def test_the_rhvoice_pauses_are_silent_for_exactly_their_length(cases: list[TurnCase]) -> None:
    """The labels of the stored paused recordings, sample by sample: the question sounds from
    start_s to end_s, with nothing above the trim floor (0.01) for pause_s from pause_start_s."""
    for case in (c for c in cases if c.kind == "paused" and c.voice != "golos"):
        assert case.pause_start_s is not None and case.pause_s is not None
        audio = sf.read(TURN / case.file, dtype="float32")[0]
        loud = np.flatnonzero(np.abs(audio) > 0.01)
        assert loud[0] == round(case.start_s * SAMPLE_RATE) and loud[-1] + 1 == round(case.end_s * SAMPLE_RATE)
        start, length = round(case.pause_start_s * SAMPLE_RATE), round(case.pause_s * SAMPLE_RATE)
        assert np.abs(audio[start : start + length]).max() <= 0.01, case.id
        assert abs(audio[start - 1]) > 0.01 and abs(audio[start + length]) > 0.01, case.id


# --- the splice and the tail ---------------------------------------------------------------------------


def _db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-20))


def test_a_spliced_pause_is_the_clips_own_background_exactly_as_long_as_asked() -> None:
    clip = sf.read(RU_AUDIO / "golos_03.wav", dtype="float32")[0]
    spliced = splice_pause(clip, 3.01, 0.76)
    assert len(spliced) == len(clip) + round(0.76 * SAMPLE_RATE)
    at, fade = round(3.01 * SAMPLE_RATE), round(0.01 * SAMPLE_RATE)
    assert np.array_equal(spliced[: at - fade], clip[: at - fade])
    assert np.array_equal(spliced[at + round(0.76 * SAMPLE_RATE) + fade :], clip[at + fade :])
    inserted = spliced[at + fade : at + round(0.76 * SAMPLE_RATE) - fade]
    quiet = clip[: round(0.6 * SAMPLE_RATE)]  # golos_03 is silent for its first 0.67 s
    assert abs(_db(inserted) - _db(quiet)) < 3.0
    assert _db(inserted) < _db(clip[round(0.7 * SAMPLE_RATE) : round(4.4 * SAMPLE_RATE)]) - 15  # far below the speech
    assert np.array_equal(spliced, splice_pause(clip, 3.01, 0.76))  # deterministic


def test_the_tail_is_appended_only_when_missing_and_silence_stays_silent() -> None:
    synthetic = np.concatenate([np.zeros(4800), np.sin(np.arange(16000) / 5), np.zeros(4800)]).astype(np.float32)
    longer = with_tail(synthetic, 3.0)
    assert len(longer) == 3 * SAMPLE_RATE and not longer[len(synthetic) :].any()
    assert with_tail(synthetic, 1.0) is synthetic
    assert not background_like(synthetic, 1000).any()
    noisy = sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")[0]
    tail = with_tail(noisy, 6.0)[len(noisy) :]
    lead = noisy[: round(0.44 * SAMPLE_RATE)]  # golos_00 is silent for its first 0.48 s
    assert len(tail) == 2 * SAMPLE_RATE and _db(tail) == pytest.approx(_db(lead), abs=2)


def test_every_case_is_replayed_with_two_seconds_after_its_end(cases: list[TurnCase]) -> None:
    for case in cases[::7]:
        audio = case_audio(case, TURN)
        assert len(audio) >= round((case.end_s + TAIL_S) * SAMPLE_RATE), case.id


# --- the replay's verdicts, on made-up frames ---------------------------------------------------------


def _frames(*spans: tuple[float, float]) -> list[tuple[np.ndarray, float]]:
    """Frames of a tone with speech probability `p` for `seconds`, span after span."""
    tone = (0.3 * np.sin(np.arange(FRAME) * 0.3)).astype(np.float32)
    return [(tone, p) for seconds, p in spans for _ in range(round(seconds / FRAME_S))]


def _segmenter() -> Segmenter:
    return segmenter_for(Settings(), FRAME)


PAUSED = TurnCase("made-up", "x.flac", "paused", "anna", "Скажите, почему небо голубое?", 0.0, 2.24, 0.96, 0.64)
FRAMES = _frames((0.96, 0.9), (0.64, 0.0), (0.64, 0.9), (2.0, 0.0))  # speech, a 0.64 s pause, speech, silence


def test_the_fixed_window_splits_a_question_paused_longer_than_it() -> None:
    verdict = outcome(PAUSED, replay(FRAMES, _segmenter()))
    assert verdict["cut_early"] and verdict["utterances"] == 2 and verdict["to_end_s"] is None
    assert verdict["cut_at_s"] == pytest.approx(0.96 + 0.416, abs=0.001)  # the window, in whole frames
    assert verdict["calls"] == []


def test_an_incomplete_verdict_holds_the_pause_and_a_complete_one_ends_the_question_at_once() -> None:
    probabilities = iter([0.1, 0.9])  # at the inner pause, then at the end

    def scorer(audio: np.ndarray) -> tuple[float, float]:
        return next(probabilities), 0.05

    verdict = outcome(PAUSED, replay(FRAMES, _segmenter(), scorer, TurnPolicy(complete_at=0.5, hold_s=1.2)))
    assert not verdict["cut_early"] and verdict["utterances"] == 1
    assert [call["decision"] for call in verdict["calls"]] == ["incomplete", "complete"]
    # closed at the first frame with 0.12 s of silence, plus the model's 0.05 s
    assert verdict["to_end_s"] == pytest.approx(0.128 + 0.05, abs=0.001)
    assert verdict["closed_by_model"]


def test_a_complete_verdict_at_the_inner_pause_splits_the_question_and_a_hold_lasts_its_window() -> None:
    verdict = outcome(
        PAUSED, replay(FRAMES, _segmenter(), lambda audio: (0.9, 0.05), TurnPolicy(complete_at=0.5, hold_s=1.2))
    )
    assert verdict["cut_early"] and verdict["cut_at_s"] == pytest.approx(0.96 + 0.128, abs=0.001)
    held = outcome(
        PAUSED, replay(FRAMES, _segmenter(), lambda audio: (0.1, 0.05), TurnPolicy(complete_at=0.5, hold_s=1.0))
    )
    assert not held["cut_early"] and held["to_end_s"] == pytest.approx(1.024, abs=0.001)
    assert not held["closed_by_model"]


def test_the_summary_counts_cuts_and_spreads_per_group() -> None:
    fixed = replay(FRAMES, _segmenter())
    learned = replay(FRAMES, _segmenter(), lambda audio: (0.1, 0.05), TurnPolicy(complete_at=0.5, hold_s=1.2))
    finished = TurnCase("whole", "y.flac", "finished", "golos", "найди боевики", 0.0, 0.96)
    entries = [
        case_entry(PAUSED, fixed, learned),
        case_entry(finished, replay(_frames((0.96, 0.9), (2.0, 0.0)), _segmenter()), ReplayRun()),
    ]
    summary = summarize(entries, [], Settings(), "fake")
    assert summary["paused"]["fixed"]["cut_early"] == 1 and summary["paused"]["learned"]["cut_early"] == 0
    assert summary["paused"]["by_pause_ms"]["0640"]["cases"] == 1
    assert summary["finished"]["fixed"]["to_end_s_p50"] == pytest.approx(0.416, abs=0.001)
    assert summary["calls"]["count"] == 2 and summary["calls"]["seconds_p50"] == 0.05


# --- input errors --------------------------------------------------------------------------------------

GOOD = '{"id": "a", "file": "a.flac", "kind": "finished", "voice": "anna", "text": "Что такое ДНК?", "start_s": 0.3, "end_s": 1.5}'  # noqa: E501


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"id": "b"', "line 2: not JSON"),
        (GOOD.replace('"finished"', '"over"'), 'line 2: "kind" must be "paused" or "finished"'),
        (GOOD.replace('"end_s": 1.5', '"end_s": "late"'), 'line 2: "end_s" must be a number'),
        (GOOD.replace('"finished"', '"paused"'), 'line 2: "pause_start_s" must be a number'),
        (
            GOOD.replace('"finished"', '"paused"').replace("}", ', "pause_start_s": 1.4, "pause_s": 0.5}'),
            "line 2: the pause must lie inside the question",
        ),
        (GOOD, "case id 'a' is used twice"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path: Path, line: str, needle: str) -> None:
    manifest = tmp_path / "cases.jsonl"
    manifest.write_text(GOOD + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(EvalInputError, match=needle):
        load_cases(manifest)


def test_turn_input_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_exit_2(run_cli("eval", "turn", "none.jsonl", cwd=tmp_path), "case file not found", "none.jsonl")
    manifest = tmp_path / "cases.jsonl"
    manifest.write_text(GOOD + "\n", encoding="utf-8")
    unreadable = run_cli("eval", "turn", str(manifest), cwd=tmp_path)
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    warning, error = unreadable.stderr.strip().splitlines()
    assert "skipping a:" in warning and "no case of" in error


# --- slow: Silero over the whole set, and the command with Smart Turn -------------------------------------


@pytest.fixture(scope="module")
def scored(cases: list[TurnCase]) -> dict[str, list[tuple[np.ndarray, float]]]:
    from cluelypro.vad.engines import make_detector
    from cluelypro.vad.frames import scored_frames

    detector = make_detector("silero")
    frames = {}
    for case in cases:
        detector.reset()
        frames[case.id] = list(scored_frames(case_audio(case, TURN), detector))
    return frames


def _speech_runs(frames: list[tuple[np.ndarray, float]]) -> list[tuple[float, float]]:
    """(start, end) in seconds of each run of frames with p ≥ 0.5."""
    voiced = np.array([p >= 0.5 for _, p in frames] + [False])
    edges = np.flatnonzero(np.diff(np.concatenate([[False], voiced]).astype(int)))
    return [(start * FRAME_S, end * FRAME_S) for start, end in zip(edges[::2], edges[1::2], strict=True)]


@pytest.mark.slow
def test_silero_hears_each_question_end_where_the_manifest_says(cases: list[TurnCase], scored: dict) -> None:
    """Silero's speech ends within END_TOLERANCE of each labelled end, and nothing as long as a
    word follows it (golos_06 ends with a breath Silero takes for 0.1 s of speech)."""
    low, high = END_TOLERANCE
    for case in cases:
        runs = _speech_runs(scored[case.id])
        last = max(end for start, end in runs if start < case.end_s)
        assert low <= last - case.end_s <= high, f"{case.id}: Silero's speech ends {last - case.end_s:+.3f} s off"
        after = [end - start for start, end in runs if start > case.end_s]
        assert all(length < 0.15 for length in after), f"{case.id}: speech after the end {after}"


@pytest.mark.slow
def test_silero_hears_each_pause_where_the_manifest_says(cases: list[TurnCase], scored: dict) -> None:
    """Within each labelled pause Silero hears no speech but for its own hangover at the pause's
    start (measured up to 0.26 s, golos_01 cut mid-vowel-fade) and its look-ahead at the end
    (up to 0.02 s)."""
    for case in (c for c in cases if c.kind == "paused"):
        assert case.pause_start_s is not None and case.pause_s is not None
        start, end = case.pause_start_s, case.pause_start_s + case.pause_s
        voiced = [(a, b) for a, b in _speech_runs(scored[case.id]) if b > start + 0.3 and a < end - 0.04]
        assert not voiced, f"{case.id}: speech inside the pause {voiced}"


@pytest.mark.slow
def test_the_fixed_window_splits_every_long_pause_and_no_short_one_or_whole_synthetic_question(
    cases: list[TurnCase], scored: dict
) -> None:
    """With the default settings' 400 ms window: every pause of 700 ms or more splits the question,
    no 300 ms pause does, and no RHVoice question said whole is split."""
    settings = Settings()
    assert settings.end_silence_ms == 400
    for case in cases:
        verdict = outcome(case, replay(scored[case.id], segmenter_for(settings, FRAME)))
        if case.kind == "paused" and case.pause_s is not None and case.pause_s >= 0.7:
            assert verdict["cut_early"], case.id
        elif (case.kind == "paused" and case.pause_s == 0.3) or (case.kind == "finished" and case.voice != "golos"):
            assert not verdict["cut_early"], case.id
            assert 0.3 <= verdict["to_end_s"] <= 0.6, (case.id, verdict["to_end_s"])


E2E_CASES = (
    "sky-anna-090-p300",
    "sky-aleksandr-100-p500",
    "climate-anna-100-p900",
    "golos_05-p500",
    "bio-02-irina-090",
    "phys-04-aleksandr-120",
    "golos_09",
)


@pytest.mark.slow
def test_eval_turn_end_to_end_on_a_few_cases(tmp_path: Path) -> None:
    lines = {json.loads(line)["id"]: json.loads(line) for line in MANIFEST.read_text(encoding="utf-8").splitlines()}
    manifest = tmp_path / "cases.jsonl"
    chosen = [{**lines[name], "file": str((TURN / lines[name]["file"]).resolve())} for name in E2E_CASES]
    manifest.write_text("".join(json.dumps(case, ensure_ascii=False) + "\n" for case in chosen), encoding="utf-8")
    out, report = tmp_path / "turn.json", tmp_path / "turn.md"
    result = run_cli("eval", "turn", str(manifest), "--json", str(out), "--report", str(report), "--hold-ms", "1000",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert summary["model"] == "smart-turn-v3.2" and "no wall clock" in summary["clock"]
    assert summary["settings"]["turn_hold_ms"] == 1000 and summary["settings"]["end_silence_ms"] == 400
    assert [entry["id"] for entry in summary["cases"]] == list(E2E_CASES)
    assert (summary["paused"]["cases"], summary["finished"]["cases"]) == (4, 3)
    by_id = {entry["id"]: entry for entry in summary["cases"]}
    # the fixed window: facts of the recordings
    assert not by_id["sky-anna-090-p300"]["fixed"]["cut_early"]
    assert (
        by_id["sky-aleksandr-100-p500"]["fixed"]["cut_early"] and by_id["climate-anna-100-p900"]["fixed"]["cut_early"]
    )
    for name in ("bio-02-irina-090", "phys-04-aleksandr-120"):
        assert not by_id[name]["fixed"]["cut_early"] and 0.3 <= by_id[name]["fixed"]["to_end_s"] <= 0.6
        assert by_id[name]["fixed"]["calls"] == []
    # the turn model: asked at each pause, its time added to the end it confirms, never past the hold
    for entry in summary["cases"]:
        learned = entry["learned"]
        assert learned["calls"], entry["id"]
        for call in learned["calls"]:
            assert 0.0 <= call["probability"] <= 1.0 and 0.0 < call["seconds"] < 2.0
            assert call["decision"] == TurnPolicy.from_settings(Settings()).decide(call["probability"])
        if learned["to_end_s"] is not None:  # ≥ the speculative pause, ≤ the hold, give or take Silero's lag
            earliest, latest = 0.12 + END_TOLERANCE[0], 1.0 + END_TOLERANCE[1] + 0.032
            if learned["closed_by_model"]:
                earliest += learned["calls"][-1]["seconds"]
                latest = 0.4 + END_TOLERANCE[1] + 0.032 + learned["calls"][-1]["seconds"]
            assert earliest <= learned["to_end_s"] <= latest, entry["id"]
    assert summary["calls"]["count"] == sum(len(entry["learned"]["calls"]) for entry in summary["cases"])
    assert report.read_text(encoding="utf-8").startswith("# End of turn")
    assert "End of turn overall" in result.stdout
    print(f"\nSmart Turn on {len(E2E_CASES)} cases: calls p50 {summary['calls']['seconds_p50']} s")
    for entry in summary["cases"]:
        print(f"  {entry['id']}: P {[call['probability'] for call in entry['learned']['calls']]}")
