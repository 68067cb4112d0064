"""User errors through the real CLI: each ends in one line on stderr and exit code 2, never a
traceback — a file name that is not UTF-8, a voice profile file nested 100000 deep or too big."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RU_AUDIO, assert_one_line_exit_2

CLI = [sys.executable, "-m", "cluelypro.cli"]
NOT_UTF8 = b"\xff\xfe"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows file names are Unicode")
any_bytes_names = pytest.mark.skipif(sys.platform == "darwin", reason="macOS (APFS) refuses names that are not UTF-8")


def run_cli(*args: str | bytes, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLUELYPRO_DATA_DIR": str(data)}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, errors="replace", env=env, cwd=data, timeout=120
    )


def not_utf8_name(folder: Path, stem: str) -> bytes:
    return os.fsencode(folder) + b"/" + stem.encode() + NOT_UTF8 + b".wav"


@any_bytes_names
def test_a_missing_input_whose_name_is_not_utf8(tmp_path: Path) -> None:
    result = run_cli("run", "--fast", "--input", not_utf8_name(tmp_path, "missing"), data=tmp_path)
    assert_one_line_exit_2(result, "input file not found", "missing\\xff\\xfe.wav")


@any_bytes_names
def test_an_input_that_is_not_audio_whose_name_is_not_utf8(tmp_path: Path) -> None:
    name = not_utf8_name(tmp_path, "notes")
    Path(os.fsdecode(name)).write_bytes(b"these are not audio samples")
    assert_one_line_exit_2(
        run_cli("run", "--fast", "--input", name, data=tmp_path), "cannot read", "notes\\xff\\xfe.wav"
    )


@any_bytes_names
def test_an_audio_file_whose_name_is_not_utf8_is_read(tmp_path: Path) -> None:
    from cluelypro.audio.io import read_audio

    path = Path(os.fsdecode(not_utf8_name(tmp_path, "golos")))
    shutil.copy(RU_AUDIO / "golos_00.wav", path)
    assert len(read_audio(path)) == len(read_audio(RU_AUDIO / "golos_00.wav")) > 0


def write_active_profile(data: Path, content: bytes) -> None:
    (data / "profiles").mkdir(parents=True)
    (data / "profiles" / "me.json").write_bytes(content)
    (data / "profiles" / "active").write_text("me\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
        (b'{"pad": "' + b"x" * 2_000_000 + b'"}', "larger than 1 MB"),
    ],
    ids=["nested 100000 deep", "2 MB"],
)
@pytest.mark.parametrize(
    "command",
    [["profiles", "use", "me"], ["run", "--fast", "--input", str(RU_AUDIO / "golos_00.wav")]],
    ids=["profiles use", "run"],
)
def test_a_damaged_profile_file_is_one_line(command: list[str], content: bytes, reason: str, tmp_path: Path) -> None:
    write_active_profile(tmp_path, content)
    assert_one_line_exit_2(run_cli(*command, data=tmp_path), "voice profile file", "is damaged", reason)
