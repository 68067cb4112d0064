"""End to end through the CLI, as a user runs it: `cluelypro run --fast` on real audio.

The question is a real human recording (Golos corpus, golos_00: «шестьдесят тысяч тенге сколько
будет стоить»), resampled to 44.1 kHz stereo FLAC to exercise format, rate and channel handling,
with 1 s of room silence before it and 10 s after it for the answer. Another copy is placed in
channel 6 of an 8-channel 48 kHz file whose other channels hold silence, noise and hum.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from cluelypro.audio.io import read_audio
from cluelypro.config import SAMPLE_RATE
from conftest import RU_AUDIO, assert_one_line_exit_2

CLI = [sys.executable, "-m", "cluelypro.cli"]
CHAIN = [
    "speech_start",
    "speech_end",
    "segment",
    "speaker",
    "asr",
    "question",
    "llm_first_token",
    "thesis",
    "tts_first_audio",
    "playback_start",
    "playback_end",
]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The CLI under the usual umask 022 (so that a private file is private by the product's doing)."""
    umask_022 = (lambda: os.umask(0o022)) if os.name == "posix" else None  # Windows has no umask, nor preexec_fn
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=umask_022)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cyrillic_share(text: str) -> float:
    letters = re.findall(r"[^\W\d_]", text)
    return sum("а" <= letter.lower() <= "я" or letter.lower() == "ё" for letter in letters) / max(1, len(letters))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


@pytest.fixture(scope="module")
def real_question_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], list[dict], Path, float]:
    folder = tmp_path_factory.mktemp("e2e")
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    speech = read_audio(RU_AUDIO / "golos_00.wav")
    mono = np.concatenate([silence, speech, np.tile(silence, 10)])
    stereo = np.stack([mono, 0.8 * mono], axis=1)
    talk = folder / "talk.flac"
    sf.write(talk, soxr.resample(stereo, SAMPLE_RATE, 44_100), 44_100)
    events, output = folder / "events.jsonl", folder / "earpiece.wav"
    result = run_cli("run", "--fast", "--input", str(talk), "--output", str(output), "--events", str(events))
    return result, read_events(events), output, len(mono) / SAMPLE_RATE


@pytest.mark.slow
def test_real_question_gets_spoken_russian_theses(real_question_run) -> None:
    result, events, output, input_seconds = real_question_run
    assert result.returncode == 0, result.stderr
    theses = [event["text"] for event in events if event["event"] == "thesis" and event["depth"] == 0]
    assert 1 <= len(theses) <= 5
    assert all(cyrillic_share(thesis) > 0.8 for thesis in theses), theses
    asr = next(event for event in events if event["event"] == "asr")
    assert "тысяч" in asr["text"].lower() and asr["engine"] == "whisper-base"

    track, rate = sf.read(output, dtype="float32")
    assert rate == 44_100 and len(track) >= round(input_seconds * rate), "earpiece track must cover the input"
    assert mode(output) == 0o600, "the earpiece track holds both people's words"
    speech_end = next(event["t"] for event in events if event["event"] == "speech_end")
    assert rms(track[: round(speech_end * rate)]) == 0.0, "nothing may play before the question ends"
    assert rms(track[round(speech_end * rate) :]) > 0.01, "the earpiece must hold speech after the question"


@pytest.mark.slow
def test_timeline_is_complete_and_ordered(real_question_run) -> None:
    _, events, output, _ = real_question_run
    events_path = output.parent / "events.jsonl"
    names = [event["event"] for event in events]
    for name in CHAIN:
        assert name in names, f"missing {name} in {names}"
    first = {name: next(event for event in events if event["event"] == name) for name in CHAIN}
    # Speech may start before thesis 1 is complete (early speech), so two orders must hold.
    for order in (
        CHAIN[:8] + ["playback_end"],
        ["llm_first_token", "tts_first_audio", "playback_start", "playback_end"],
    ):
        times = [first[name]["t"] for name in order]
        assert times == sorted(times), dict(zip(order, times, strict=True))
    assert all({"t", "wall", "utt", "q", "event"} <= event.keys() for event in events)
    assert mode(events_path) == 0o600, "the events hold both people's words"
    assert first["question"]["accepted"] is True and first["thesis"]["q"] == first["question"]["q"]
    assert first["llm_first_token"]["provider"].startswith("local:")
    assert first["playback_start"]["index"] == 1


@pytest.mark.slow
def test_the_earpiece_and_the_summary_agree_with_the_timeline(real_question_run) -> None:
    """What the timeline says was played is where the track holds sound, and the voice-to-voice
    the user reads is the one the timeline measures."""
    result, events, output, _ = real_question_run
    track, rate = sf.read(output, dtype="float32")
    question = next(event for event in events if event["event"] == "question" and event["accepted"])
    thesis_1 = [event for event in events if event["q"] == question["q"] and event.get("index") == 1]
    start = next(event["t"] for event in thesis_1 if event["event"] == "playback_start")
    end = next(event["t"] for event in thesis_1 if event["event"] == "playback_end")
    # The 16 → 44.1 kHz filter rings up to ~30 ms ahead of an onset, at about −80 dBFS (measured peak 1.2e-4):
    # inaudible, where a thesis played early would peak far above −60 dBFS.
    inaudible = 1e-3
    assert np.abs(track[: round(start * rate)]).max() < inaudible, "sound before the timeline's playback_start"
    assert rms(track[round(start * rate) : round(end * rate)]) > 0.01, "thesis 1's playback window is silent"
    speech_end = next(e["t"] for e in events if e["event"] == "speech_end" and e["utt"] == question["utt"])
    printed = re.search(r"voice-to-voice p50 (\d+\.\d+) s", result.stdout)
    assert printed, result.stdout
    assert abs(float(printed[1]) - (start - speech_end)) < 0.002, (printed[0], start - speech_end)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_produce_no_theses(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    audio = (
        np.zeros(8 * SAMPLE_RATE, np.float32)
        if kind == "silence"
        else rng.normal(0, 0.05, 8 * SAMPLE_RATE).astype(np.float32)
    )
    talk, events = tmp_path / f"{kind}.wav", tmp_path / "events.jsonl"
    output = tmp_path / os.fsdecode(b"out\xff.wav")  # a name that is not UTF-8
    sf.write(talk, audio, SAMPLE_RATE)
    result = run_cli("run", "--fast", "--input", str(talk), "--output", str(output), "--events", str(events))
    assert result.returncode == 0, result.stderr
    assert "earpiece track written to" in result.stdout and "out\\xff.wav" in result.stdout
    assert not [event for event in read_events(events) if event["event"] in ("thesis", "question")]
    with output.open("rb") as handle:
        assert rms(sf.read(handle, dtype="float32")[0]) == 0.0
    if kind == "silence":
        assert "no speech found" in result.stdout


@pytest.mark.slow
def test_an_8_channel_file_is_heard_through_its_speech_channel(tmp_path: Path) -> None:
    speech = read_audio(RU_AUDIO / "golos_00.wav")
    mono = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), speech, np.zeros(8 * SAMPLE_RATE, np.float32)])
    n, rng = len(mono) * 3, np.random.default_rng(3)
    hum = 0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / 48_000)
    channels = [
        np.zeros(n),
        rng.normal(0, 0.05, n),
        hum,
        np.zeros(n),
        rng.normal(0, 0.01, n),
        hum / 2,
        soxr.resample(mono, SAMPLE_RATE, 48_000),
        rng.normal(0, 0.03, n),
    ]
    talk, events = tmp_path / "eight.wav", tmp_path / "events.jsonl"
    sf.write(talk, np.stack(channels, axis=1).astype(np.float32), 48_000, subtype="FLOAT")
    result = run_cli("run", "--fast", "--input", str(talk), "--events", str(events))
    assert result.returncode == 0, result.stderr
    assert "input has 8 channels; using channel 7, the one with the most speech" in result.stdout
    heard = " ".join(event["text"] for event in read_events(events) if event["event"] == "asr")
    assert "тысяч" in heard.lower(), heard


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda folder: folder / "missing.wav", "input file not found"),
        (lambda folder: _write(folder / "notes.wav", b"these are not audio samples"), "cannot read"),
        (lambda folder: _write(folder / "empty.wav", b""), "cannot read"),
        (lambda folder: folder, "folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(make_input, message: str, tmp_path: Path) -> None:
    assert_one_line_exit_2(run_cli("run", "--fast", "--input", str(make_input(tmp_path))), message)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
