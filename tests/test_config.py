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


def test_engine_chains_from_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluelypro.toml").write_text('use_tts_engine = ["google", "rhvoice"]\n', encoding="utf-8")
    monkeypatch.setenv("USE_LLM_ENGINE", "Gemini, local")
    settings = load_settings()
    assert settings.use_llm_engine == ["gemini", "local"]
    assert settings.use_tts_engine == ["google", "rhvoice"]
    assert settings.asr_engine == ["openai", "local"]  # the default chain


def test_an_unknown_engine_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USE_LLM_ENGINE", "cerebras,claude")
    with pytest.raises(Exception, match="unknown engine claude; choose from cerebras, gemini"):
        load_settings()


def test_without_keys_only_the_embedded_engines_remain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cluelypro.pipeline.engines import build_engines

    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "CEREBRAS_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USE_LLM_ENGINE", "cerebras")  # the embedded engine ends every chain anyway
    engines = build_engines(load_settings())
    assert [e.name for e in engines.llms] == ["local:qwen2.5-coder-1.5b"]
    assert [e.name for e in engines.recognizers] == ["whisper-base"]
    assert [e.name for e in engines.synthesizers] == ["rhvoice:anna"]
    reasons = {(item.stage, item.engine): item.reason for item in engines.left_out}
    assert reasons == {("llm", "cerebras"): "CEREBRAS_API_KEY not set", ("asr", "openai"): "OPENAI_API_KEY not set",
                       ("tts", "openai"): "OPENAI_API_KEY not set",
                       ("tts", "google"): "GOOGLE_APPLICATION_CREDENTIALS not set"}


def test_keys_are_hidden_in_every_dump(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-secret-value-123")
    settings = load_settings()
    assert settings.gemini_api_key.get_secret_value() == "AIza-test-secret-value-123"
    for dump in (repr(settings), str(settings.model_dump()), str(settings.model_dump(mode="json"))):
        assert "secret-value" not in dump
