"""Every file the product writes that holds speech, transcripts or a voiceprint is created
owner-only (0600), with the usual umask 022 in force, and an existing file is made 0600 too."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.config import SAMPLE_RATE
from conftest import RU_AUDIO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
PROC_FD = Path("/proc/self/fd")


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def speech() -> np.ndarray:
    return sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")[0]


def write_events(path: Path) -> None:
    from cluelypro.metrics.events import Asr
    from cluelypro.metrics.timeline import Timeline

    timeline = Timeline(path)
    timeline.emit(Asr("шестьдесят тысяч тенге сколько будет стоить", "whisper-base", 140), 1.0, utt=1)
    timeline.close()


def write_question(path: Path) -> None:
    from cluelypro.audio.io import write_audio

    write_audio(path, speech())


def write_earpiece_track(path: Path) -> None:
    from cluelypro.audio.earpiece import TrackEarpiece
    from cluelypro.metrics.timeline import Clock

    with TrackEarpiece(Clock(fast=True), SAMPLE_RATE) as earpiece:
        asyncio.run(earpiece.play(speech(), 0.5))
        earpiece.write(path, 44_100)


def bench_summary() -> dict:
    from cluelypro.bench.report import summarize
    from cluelypro.config import load_settings

    return summarize([], 1.0, None, load_settings(), 1, None)


def write_bench_json(path: Path) -> None:
    from cluelypro.bench.report import write_json

    write_json(bench_summary(), path)


def write_bench_plot(path: Path) -> None:
    from cluelypro.bench.report import plot_waterfall

    plot_waterfall(bench_summary(), path)


def write_profile(path: Path) -> None:
    from cluelypro.speaker.profiles import VoiceProfile, save_profile

    embedding = np.ones(192, np.float32) / np.sqrt(192)
    os.environ["CLUELYPRO_DATA_DIR"] = str(path.parent.parent)
    try:
        assert save_profile(VoiceProfile(path.stem, "campplus_cn_en_common", "1", 192, embedding)) == path
    finally:
        del os.environ["CLUELYPRO_DATA_DIR"]


WRITERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "events": (write_events, "events.jsonl"),
    "demo question": (write_question, "demo_question.wav"),
    "earpiece track": (write_earpiece_track, "earpiece.wav"),
    "bench json": (write_bench_json, "bench.json"),
    "bench plot": (write_bench_plot, "bench.png"),
    "voice profile": (write_profile, "profiles/me.json"),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_new_file_is_created_owner_only(kind: str, tmp_path: Path) -> None:
    write, name = WRITERS[kind]
    path = tmp_path / "out" / name
    write(path)
    assert path.stat().st_size > 0
    assert mode(path) == 0o600, f"{kind}: {oct(mode(path))}"


@pytest.mark.parametrize("kind", WRITERS)
def test_an_existing_readable_file_is_made_owner_only(kind: str, tmp_path: Path) -> None:
    write, name = WRITERS[kind]
    path = tmp_path / "out" / name
    path.parent.mkdir(parents=True)
    path.write_text("an older run\n", encoding="utf-8")
    path.chmod(0o644)
    write(path)
    assert mode(path) == 0o600, f"{kind}: {oct(mode(path))}"
    assert "an older run" not in path.read_bytes().decode("utf-8", "replace")


@pytest.mark.skipif(not PROC_FD.is_dir(), reason="lists open files through /proc")
def test_the_earpiece_spool_is_owner_only_and_gone_afterwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from cluelypro.audio.earpiece import TrackEarpiece
    from cluelypro.metrics.timeline import Clock

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with TrackEarpiece(Clock(fast=True), SAMPLE_RATE) as earpiece:
        asyncio.run(earpiece.play(speech(), 0.5))
        spooled = [os.fstat(fd) for fd in _open_descriptors_under(tmp_path)]
        assert spooled and all(stat.S_IMODE(info.st_mode) == 0o600 for info in spooled)
    assert not list(tmp_path.iterdir()) and not _open_descriptors_under(tmp_path)


def _open_descriptors_under(folder: Path) -> list[int]:
    """This process's open descriptors whose file is (or was, if deleted) in `folder`."""
    found = []
    for entry in PROC_FD.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(int(entry.name))
    return found
