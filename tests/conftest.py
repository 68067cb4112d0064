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
