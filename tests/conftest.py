"""Shared test fixtures: a clean environment and working folder for every test, paths to the
shared real recordings, and audio helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluelypro import secrets

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
RU_AUDIO = SHARED_AUDIO / "ru"

# Where a developer's own cloud accounts and settings come from: none may reach a test.
CREDENTIAL_SUFFIXES = ("_API_KEY", "_BASE_URL")
CREDENTIAL_NAMES = ("GOOGLE_APPLICATION_CREDENTIALS", "CLUELYPRO_CONFIG")


def is_credential(name: str) -> bool:
    return name.endswith(CREDENTIAL_SUFFIXES) or name in CREDENTIAL_NAMES


def _without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if is_credential(name)]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for session- and module-scoped fixtures (servers, shared runs), which are set up
    before any test's own fixtures."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _without_credentials(monkeypatch)
        # A relative PYTHONPATH (`PYTHONPATH=src`) would point elsewhere from another working
        # folder, and the CLI subprocesses would import another copy of cluelypro.
        if pythonpath := os.environ.get("PYTHONPATH"):
            entries = [str(Path(entry).resolve()) if entry else entry for entry in pythonpath.split(os.pathsep)]
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(entries))
        monkeypatch.chdir(tmp_path_factory.mktemp("session-cwd"))
        yield


@pytest.fixture(scope="module", autouse=True)
def secrets_of_this_module() -> Iterator[None]:
    """Keys a module's fixtures register for redaction (as the app does) are forgotten after it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(secrets, "_known", set(secrets._known))
        yield


@pytest.fixture(autouse=True)
def isolated_test(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts with no cloud key, endpoint or credentials file from the developer's
    environment (a key set there would otherwise give failures, or a bill), and runs in its own
    empty working folder, so that no `.env` or `cluelypro.toml` of the repo is read. The keys a
    test registers for redaction are forgotten after it."""
    _without_credentials(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(secrets, "_known", set(secrets._known))


@pytest.fixture(scope="session")
def ru_clips() -> list[Path]:
    clips = sorted(RU_AUDIO.glob("*.wav"))
    assert clips, f"the shared recordings are missing: {RU_AUDIO}"
    return clips


def assert_one_line_exit_2(result, *needles: str) -> None:
    """A user error as the CLI must end it: exit code 2, one line on stderr naming `needles`, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
