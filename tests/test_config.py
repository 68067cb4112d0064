"""Settings sources, lowest precedence first: TOML, environment, .env, CLI flags (SPEC §3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluelypro.config import load_settings


def test_precedence_toml_env_dotenv_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluelypro.toml").write_text(
        'end_silence_ms = 300\nthesis_repeats = 3\nvoice_threshold = 0.4\ntts_voice = "elena"\n', encoding="utf-8"
    )
    assert load_settings().end_silence_ms == 300
    monkeypatch.setenv("THESIS_REPEATS", "4")
    monkeypatch.setenv("VOICE_THRESHOLD", "0.45")
    (tmp_path / ".env").write_text("VOICE_THRESHOLD=0.5\n", encoding="utf-8")
    settings = load_settings(tts_voice="aleksandr", end_silence_ms=None)
    assert settings.end_silence_ms == 300  # TOML; a flag left unset does not override
    assert settings.thesis_repeats == 4  # environment over TOML
    assert settings.voice_threshold == 0.5  # .env over environment
    assert settings.tts_voice == "aleksandr"  # CLI flag over everything


def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVANCE_POLICY", "sometimes")
    with pytest.raises(Exception, match="advance_policy"):
        load_settings()


def test_cli_names_the_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ADVANCE_POLICY": "sometimes"}
    result = subprocess.run([sys.executable, "-m", "cluelypro.cli", "run", "--input", "x.wav"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "ADVANCE_POLICY" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
