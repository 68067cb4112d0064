"""Shared test fixtures: paths to the shared real recordings, and audio helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
RU_AUDIO = SHARED_AUDIO / "ru"


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
