"""Settings sources, lowest precedence first: TOML, .env, environment, CLI flags (SPEC §3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cluelypro.config import load_settings
from conftest import assert_one_line_exit_2

CLI = [sys.executable, "-m", "cluelypro.cli"]
ENDPOINT_SETTINGS = (
    "openai_base_url",
    "gemini_base_url",
    "cerebras_base_url",
    "compatible_base_url",
    "google_tts_endpoint",
)


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd, timeout=120
    )


def test_precedence_toml_dotenv_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluelypro.toml").write_text(
        'end_silence_ms = 300\nthesis_repeats = 3\nvoice_threshold = 0.4\ntts_voice = "elena"\n', encoding="utf-8"
    )
    assert load_settings().end_silence_ms == 300
    (tmp_path / ".env").write_text("THESIS_REPEATS=5\nVOICE_THRESHOLD=0.5\n", encoding="utf-8")
    monkeypatch.setenv("VOICE_THRESHOLD", "0.45")
    settings = load_settings(tts_voice="aleksandr", end_silence_ms=None)
    assert settings.end_silence_ms == 300  # TOML; a flag left unset does not override
    assert settings.thesis_repeats == 5  # .env over TOML
    assert settings.voice_threshold == 0.45  # environment over .env
    assert settings.tts_voice == "aleksandr"  # CLI flag over everything


def test_the_old_filter_mode_name_llm_still_means_all_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().question_filter_mode == "heuristic"
    assert load_settings().voice_threshold is None, "unset: the profile's suggested threshold is used"
    monkeypatch.setenv("QUESTION_FILTER_MODE", "all")
    assert load_settings().question_filter_mode == "all" and not caplog.records
    monkeypatch.setenv("QUESTION_FILTER_MODE", "llm")
    with caplog.at_level("WARNING"):
        assert load_settings().question_filter_mode == "all"
    assert "deprecated" in caplog.text and "'all'" in caplog.text


def test_a_folders_dotenv_cannot_redirect_the_environments_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=https://collector.example/v1\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-of-the-user")
    assert load_settings().openai_base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "http://127.0.0.1:8080/v1",
        "http://127.3.4.5",
        "http://localhost:11434/v1",
        "http://[::1]:9000",
        "HTTPS://Example.COM",
    ],
)
def test_https_or_loopback_endpoints_are_accepted(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ENDPOINT_SETTINGS:
        monkeypatch.setenv(name.upper(), url)
    settings = load_settings()
    assert all(getattr(settings, name) == url for name in ENDPOINT_SETTINGS)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.com/v1",
        "http://10.0.0.7:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "ftp://127.0.0.1/",
        "api.openai.com/v1",
        "https://",
        "http://[::ffff:8.8.8.8]/",
    ],
)
@pytest.mark.parametrize("name", ENDPOINT_SETTINGS)
def test_plain_http_to_another_host_is_refused(
    name: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name.upper(), url)
    with pytest.raises(ValidationError, match=f"(?s){name}.*must be an https:// URL"):
        load_settings()


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True).filter(
    lambda h: h != "localhost"
)


@given(hosts, st.sampled_from(ENDPOINT_SETTINGS))
def test_any_http_host_but_loopback_is_refused_and_its_https_accepted(host: str, name: str) -> None:
    from cluelypro.config import Settings

    with pytest.raises(ValidationError, match="must be an https:// URL"):
        Settings.model_validate({name: f"http://{host}/v1"})
    assert getattr(Settings.model_validate({name: f"https://{host}/v1"}), name) == f"https://{host}/v1"


def test_cli_refuses_a_plain_http_endpoint_in_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--input", "x.wav", cwd=tmp_path, OPENAI_BASE_URL="http://collector.example/v1")
    assert_one_line_exit_2(result, "OPENAI_BASE_URL: must be an https:// URL", "not http://collector.example")


def test_cli_names_a_malformed_toml_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "cluelypro.toml").write_text("end_silence_ms = [300,\n", encoding="utf-8")
    assert_one_line_exit_2(run_cli("run", "--input", "x.wav", cwd=tmp_path), "cannot read cluelypro.toml")


@pytest.mark.parametrize("name", [".env", "cluelypro.toml"])
def test_cli_names_a_settings_file_that_is_not_utf8_in_one_line(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes("TTS_VOICE=«анна»\n".encode("cp1251"))
    assert_one_line_exit_2(
        run_cli("run", "--input", "x.wav", cwd=tmp_path), f"cannot read {name}: it is not UTF-8 text"
    )


def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVANCE_POLICY", "sometimes")
    with pytest.raises(Exception, match="advance_policy"):
        load_settings()


def test_cli_names_the_bad_setting_in_one_line(tmp_path: Path) -> None:
    assert_one_line_exit_2(
        run_cli("run", "--input", "x.wav", cwd=tmp_path, ADVANCE_POLICY="sometimes"), "ADVANCE_POLICY"
    )


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


def test_every_engine_name_a_setting_accepts_has_one_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cluelypro.engine_names import CHAIN_ENGINES, EMBEDDED, STAGES
    from cluelypro.engines import FACTORIES, chain_names

    monkeypatch.chdir(tmp_path)
    for stage in STAGES:
        assert sorted(FACTORIES[stage]) == sorted(CHAIN_ENGINES[stage]), stage
        assert EMBEDDED[stage] in CHAIN_ENGINES[stage]
    variable = {"llm": "USE_LLM_ENGINE", "asr": "ASR_ENGINE", "tts": "USE_TTS_ENGINE"}
    for stage in STAGES:
        monkeypatch.setenv(variable[stage], ",".join(CHAIN_ENGINES[stage]))  # every name is accepted
    settings = load_settings()
    assert {stage: sorted(chain_names(settings, stage)) for stage in STAGES} == {
        stage: sorted(CHAIN_ENGINES[stage]) for stage in STAGES
    }


def test_without_keys_only_the_embedded_engines_remain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cluelypro.engines import build_engines

    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "CEREBRAS_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USE_LLM_ENGINE", "cerebras")  # the embedded engine ends every chain anyway
    engines = build_engines(load_settings())
    assert [e.name for e in engines.llms] == ["local:qwen2.5-coder-1.5b"]
    assert [e.name for e in engines.recognizers] == ["whisper-base"]
    embedded_voice = {"win32": "sapi", "darwin": "say:Milena"}.get(sys.platform, "rhvoice:anna")  # not loaded here
    assert [e.name for e in engines.synthesizers] == [embedded_voice]
    reasons = {(item.stage, item.engine): item.reason for item in engines.left_out}
    if sys.platform in ("win32", "darwin"):  # Piper follows the system voice there, once a voice is pulled
        assert "piper" in reasons.pop(("tts", "piper"))
    assert reasons == {
        ("llm", "cerebras"): "CEREBRAS_API_KEY not set",
        ("asr", "openai"): "OPENAI_API_KEY not set",
        ("tts", "openai"): "OPENAI_API_KEY not set",
        ("tts", "google"): "GOOGLE_APPLICATION_CREDENTIALS not set",
    }


def test_keys_are_hidden_in_every_dump(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-secret-value-123")
    settings = load_settings()
    assert settings.gemini_api_key.get_secret_value() == "AIza-test-secret-value-123"
    for dump in (repr(settings), str(settings.model_dump()), str(settings.model_dump(mode="json"))):
        assert "secret-value" not in dump
