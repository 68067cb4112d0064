"""`cluelypro enroll` and `cluelypro profiles …` as a user runs them, on a real speaker's voice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.audio.io import read_audio
from cluelypro.config import SAMPLE_RATE
from conftest import SHARED_AUDIO

LIBRI = SHARED_AUDIO / "speakers" / "libri_1688"


def cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLUELYPRO_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "cluelypro.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def recording(path: Path, *names: str) -> Path:
    sf.write(path, np.concatenate([read_audio(LIBRI / name) for name in names]), SAMPLE_RATE)
    return path


@pytest.mark.slow
def test_enroll_list_use_delete(tmp_path: Path) -> None:
    voice = recording(tmp_path / "me.wav", "1688-142285-0000.flac", "1688-142285-0001.flac")
    enrolled = cli("enroll", "--input", str(voice), "--name", "reader", data=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "suggested VOICE_THRESHOLD" in enrolled.stdout
    saved = json.loads((tmp_path / "profiles" / "reader.json").read_text(encoding="utf-8"))
    assert saved["embedder"] == "campplus_cn_en_common" and len(saved["embedding"]) == 192
    assert 0.45 <= saved["suggested_threshold"] <= 0.55

    listed = cli("profiles", "list", data=tmp_path)
    assert "reader" in listed.stdout and "*" in listed.stdout
    assert cli("profiles", "use", "reader", data=tmp_path).returncode == 0
    assert cli("profiles", "delete", "reader", data=tmp_path).returncode == 0
    assert "no voice profiles" in cli("profiles", "list", data=tmp_path).stdout


@pytest.mark.slow
def test_too_little_speech_is_refused(tmp_path: Path) -> None:
    voice = recording(tmp_path / "short.wav", "1688-142285-0002.flac", "1688-142285-0003.flac")  # ~8 s
    result = cli("enroll", "--input", str(voice), data=tmp_path)
    assert result.returncode == 2 and "at least 12 s" in result.stderr
    assert not (tmp_path / "profiles" / "me.json").exists()


def test_unknown_profile_and_foreign_embedder_are_refused(tmp_path: Path) -> None:
    assert cli("profiles", "use", "nobody", data=tmp_path).returncode == 2
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    foreign = {
        "format": 1,
        "name": "old",
        "embedder": "ecapa",
        "embedder_version": "1",
        "dim": 2,
        "suggested_threshold": 0.5,
        "embedding": [0.6, 0.8],
    }
    (profiles / "old.json").write_text(json.dumps(foreign), encoding="utf-8")
    (profiles / "active").write_text("old\n", encoding="utf-8")
    result = cli("run", "--fast", "--input", str(SHARED_AUDIO / "ru" / "ohf_02.wav"), data=tmp_path)
    assert result.returncode == 2
    assert "was made by ecapa" in result.stderr and "Traceback" not in result.stderr
