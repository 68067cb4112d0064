"""Terminal keys while `run` plays in real time (cli/keys.py, pipeline/controls.py): the keys'
dispatch on a real thesis plan and a muting earpiece, the reader on a real pseudo-terminal, and
`cluelypro run --input` under a pseudo-terminal with real engines — `n` pressed while thesis 1
plays cuts it off for good, and the terminal's settings are as they were after the run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cluelypro.audio.io import read_audio
from cluelypro.cli.keys import KEYS_LINE, TerminalKeys, keys_available
from cluelypro.config import SAMPLE_RATE
from cluelypro.pipeline.controls import ControlledEarpiece
from cluelypro.prompter.plan import ThesisPlan
from conftest import RU_AUDIO

termios = pytest.importorskip("termios", reason="POSIX terminals (the Windows path is only read)")

CLI = [sys.executable, "-m", "cluelypro.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- the keys' dispatch --------------------------------------------------------------------------


class RecordingEarpiece:
    def __init__(self) -> None:
        self.played: list[np.ndarray] = []
        self.stops = 0
        self.echo = None

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        self.played.append(chunk)
        return at, at + len(chunk) / SAMPLE_RATE

    def stop(self) -> None:
        self.stops += 1

    def close(self) -> None:
        pass


class PlanAnswer:
    """The answer's control surface (repeat_now, skip) over a real thesis plan."""

    def __init__(self, plan: ThesisPlan) -> None:
        self.plan = plan

    def repeat_now(self):
        return self.plan.repeat_now()

    def skip(self):
        return self.plan.skip()


class FakePipeline:
    def __init__(self, answer: PlanAnswer | None) -> None:
        self.answer = answer


def plan_with(*theses: str) -> ThesisPlan:
    plan = ThesisPlan(1, policy="repeat", repeats=2, repeat_interval_s=10.0, max_depth=0)
    for text in theses:
        plan.add(text)
    return plan


def keys_on(plan: ThesisPlan | None) -> tuple[TerminalKeys, RecordingEarpiece, list[str]]:
    inner, said = RecordingEarpiece(), []
    pipeline = FakePipeline(PlanAnswer(plan) if plan is not None else None)
    keys = TerminalKeys(pipeline, ControlledEarpiece(inner), now=lambda: 1.5, say=lambda line: said.append(str(line)))
    return keys, inner, said


def test_m_mutes_the_earpiece_and_m_again_unmutes_it() -> None:
    keys, inner, _ = keys_on(None)
    chunk = np.full(160, 0.5, np.float32)
    assert keys.press("m") == "muted — the prompter goes on unheard; m to unmute"
    assert inner.stops == 1, "what the earpiece already holds is not heard either"
    asyncio.run(keys.earpiece.play(chunk, 0.0))
    assert not inner.played[-1].any(), "muted: silence in place of the thesis"
    assert keys.press("M") == "unmuted"
    asyncio.run(keys.earpiece.play(chunk, 0.0))
    assert np.array_equal(inner.played[-1], chunk)


def test_n_skips_the_current_thesis_and_r_repeats_the_one_playing() -> None:
    plan = plan_with("Первый тезис.", "Второй тезис.")
    keys, _, _ = keys_on(plan)
    assert keys.press("r") == "no thesis has been spoken yet"
    assert plan.next_to_say(0.0).index == 1  # thesis 1 starts playing
    assert keys.press("n") == "skipped thesis 1"
    plan.spoken(1, 2.0)
    assert plan.next_to_say(2.0).index == 2, "thesis 1 is not said a second time"
    assert keys.press("r") == "repeating thesis 2"
    plan.spoken(2, 4.0)
    assert plan.next_to_say(4.0).index == 2


def test_russian_layout_keys_do_the_same() -> None:
    plan = plan_with("Первый тезис.", "Второй тезис.")
    keys, _, _ = keys_on(plan)
    assert keys.press("т") == "skipped thesis 1"
    assert keys.press("Ь").startswith("muted")
    assert keys.press("к") == "no thesis has been spoken yet"


def test_keys_without_an_answer_are_refused_and_other_keys_ignored() -> None:
    keys, inner, _ = keys_on(None)
    assert keys.press("n") == "nothing to skip: no answer is being spoken"
    assert keys.press("r") == "nothing to repeat: no answer is being spoken"
    for key in ("x", " ", "\n", "q"):
        assert keys.press(key) is None
    assert inner.stops == 0 and not keys.earpiece.muted


def test_all_theses_skipped_leaves_nothing_to_skip() -> None:
    keys, _, _ = keys_on(plan_with("Единственный тезис."))
    assert keys.press("n") == "skipped thesis 1"
    assert keys.press("n") == "no thesis is left"


# --- the reader on a real pseudo-terminal ----------------------------------------------------------


def test_keys_are_not_read_from_a_pipe_or_a_terminal_this_process_does_not_own() -> None:
    read_end, write_end = os.pipe()
    master, slave = os.openpty()
    try:
        with os.fdopen(read_end, closefd=False) as pipe, os.fdopen(slave, closefd=False) as other_terminal:
            assert keys_available(pipe) is False
            assert keys_available(other_terminal) is False  # not our controlling terminal
    finally:
        for fd in (read_end, write_end, master, slave):
            os.close(fd)


def test_reader_acts_on_keys_in_cbreak_mode_and_restores_the_terminal() -> None:
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    plan = plan_with("Первый тезис.", "Второй тезис.")
    keys, _, said = keys_on(plan)
    plan.next_to_say(0.0)
    during: list[list] = []

    async def press_and_stop() -> None:
        with os.fdopen(slave, encoding="utf-8", closefd=False) as stdin:
            listening = asyncio.create_task(keys.listen(stdin))
            await asyncio.sleep(0.2)
            during.append(termios.tcgetattr(slave))
            os.write(master, b"n")
            os.write(master, "ь".encode()[:1])  # a Cyrillic key arriving in two reads
            await asyncio.sleep(0.1)
            os.write(master, "ь".encode()[1:])
            await asyncio.sleep(0.2)
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    try:
        asyncio.run(press_and_stop())
        lflag = during[0][3]
        assert not lflag & (termios.ICANON | termios.ECHO), "keys without Enter, not echoed"
        assert lflag & termios.ISIG, "Ctrl+C still interrupts"
        assert termios.tcgetattr(slave) == before
        assert [ANSI.sub("", line) for line in said] == [
            "   1.50s key n skipped thesis 1",
            "   1.50s key ь muted — the prompter goes on unheard; m to unmute",
        ]
    finally:
        os.close(master)
        os.close(slave)


# --- job control: Ctrl+Z and `fg` ----------------------------------------------------------------

LISTENER = """
import asyncio, sys
from cluelypro.cli.keys import TerminalKeys
from cluelypro.pipeline.controls import ControlledEarpiece

class Pipeline:
    answer = None

class Inner:
    echo = None
    def stop(self): pass

async def main():
    said = asyncio.Event()
    def say(line):
        print(line, flush=True)
        said.set()
    keys = TerminalKeys(Pipeline(), ControlledEarpiece(Inner()), now=lambda: 0.0, say=say)
    listening = asyncio.create_task(keys.listen(sys.stdin))
    await said.wait()
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    print("listener done", flush=True)

asyncio.run(main())
"""


SHELL = """
import os, signal, sys, termios

tty = sys.stdin.fileno()
signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a shell hands the terminal around without being stopped
own = termios.tcgetattr(tty)
job = os.fork()
if job == 0:  # the job: a process group of its own, in the foreground (set on both sides, as shells do)
    os.setpgid(0, 0)
    os.tcsetpgrp(tty, os.getpid())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
os.setpgid(job, job)
os.tcsetpgrp(tty, job)


def wait():
    _, status = os.waitpid(job, os.WUNTRACED)
    os.tcsetpgrp(tty, os.getpgrp())  # the terminal back to the shell
    return status


status = wait()
as_before = termios.tcgetattr(tty) == own
print(f"shell: job stopped {os.WIFSTOPPED(status)}; terminal as before: {as_before}", flush=True)
termios.tcsetattr(tty, termios.TCSANOW, own)  # the shell's own mode while it holds the terminal
if input() == "fg":
    os.tcsetpgrp(tty, job)
    os.kill(-job, signal.SIGCONT)
    status = wait()
as_before = termios.tcgetattr(tty) == own
print(f"shell: job exited {os.WEXITSTATUS(status)}; terminal as before: {as_before}", flush=True)
"""


def cbreak_on(terminal: Terminal) -> bool:
    lflag = termios.tcgetattr(terminal.slave)[3]
    return not lflag & (termios.ICANON | termios.ECHO)


def test_ctrl_z_gives_the_terminal_back_and_fg_puts_it_in_cbreak_mode_again(tmp_path: Path) -> None:
    """The key reader as a job of a small shell (SHELL: job control as bash does it — the job in a
    process group of its own in the terminal's foreground, the terminal taken back and the
    shell's own mode set when the job stops, SIGCONT on `fg`). Ctrl+Z and `fg` are typed into
    the pseudo-terminal as a user types them."""
    terminal = Terminal()
    before = termios.tcgetattr(terminal.slave)
    shell = terminal.start([sys.executable, "-c", SHELL, LISTENER], cli_env(tmp_path))
    try:
        wait_for(lambda: KEYS_LINE in terminal.text() and cbreak_on(terminal), "cbreak mode", shell, timeout=30)
        os.write(terminal.master, b"\x1a")  # the terminal's suspend character: SIGTSTP, as a user's Ctrl+Z
        wait_for(lambda: "shell: job stopped" in terminal.text(), "the job stopped", shell, timeout=10)
        assert "shell: job stopped True; terminal as before: True" in terminal.text(), (
            "the job stopped with the terminal still in cbreak mode"
        )
        os.write(terminal.master, b"fg\n")
        wait_for(lambda: cbreak_on(terminal), "cbreak mode again after `fg`", shell, timeout=10)
        os.write(terminal.master, b"n")  # a key without Enter is read again
        assert shell.wait(timeout=20) == 0, terminal.text()
        after = termios.tcgetattr(terminal.slave)
    finally:
        if shell.poll() is None:
            shell.kill()
        terminal.close()
    shown = terminal.text()
    assert "nothing to skip: no answer is being spoken" in shown and "listener done" in shown, shown
    assert "shell: job exited 0; terminal as before: True" in shown, shown
    assert after == before, "the terminal's settings are as they were before"


# --- `cluelypro run` with real engines -------------------------------------------------------------


def question_recording(folder: Path, room_s: float) -> Path:
    """A real recorded question (Golos golos_00, «шестьдесят тысяч тенге сколько будет стоить»)
    after 1 s of silence, with `room_s` of silence after it for the answer."""
    speech = read_audio(RU_AUDIO / "golos_00.wav")
    silence = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([silence, speech, np.zeros(round(room_s * SAMPLE_RATE), np.float32)])
    path = folder / "question.wav"
    sf.write(path, audio, SAMPLE_RATE)
    return path


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLUELYPRO_DATA_DIR": str(tmp_path / "data"),
        "THESIS_REPEATS": "2",
        "ADVANCE_POLICY": "repeat",
    }


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


class Terminal:
    """A pseudo-terminal that is the controlling terminal of the CLI started in it; what the CLI
    writes is collected by a thread (so that it never blocks on a full terminal)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.output = b""
        self._reader = threading.Thread(target=self._collect, daemon=True)

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        import fcntl

        def take_the_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen(
            args,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=env,
            start_new_session=True,
            preexec_fn=take_the_terminal,
        )
        self._reader.start()
        return process

    def _collect(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def text(self) -> str:
        return ANSI.sub("", self.output.decode("utf-8", errors="replace"))

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)
        self._reader.join(5)


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
    return result


@pytest.mark.slow
def test_n_pressed_in_a_real_run_skips_thesis_1_and_the_terminal_is_restored(tmp_path: Path) -> None:
    question, events = question_recording(tmp_path, room_s=25), tmp_path / "events.jsonl"
    terminal = Terminal()
    before = termios.tcgetattr(terminal.slave)
    run = terminal.start([*CLI, "run", "--input", str(question), "--events", str(events)], cli_env(tmp_path))
    try:
        started = wait_for(
            lambda: [e for e in read_events(events) if e["event"] == "playback_start" and e["index"] == 1],
            "thesis 1 playing",
            run,
            timeout=300,
        )
        lflag = termios.tcgetattr(terminal.slave)[3]
        assert not lflag & (termios.ICANON | termios.ECHO) and lflag & termios.ISIG, "cbreak while running"
        pressed = time.time()
        os.write(terminal.master, b"n")
        assert run.wait(timeout=600) == 0, terminal.text()
        after = termios.tcgetattr(terminal.slave)
    finally:
        if run.poll() is None:
            run.kill()
        terminal.close()
    shown = terminal.text()
    assert KEYS_LINE in shown
    assert "key n skipped thesis 1" in shown, shown
    timeline = read_events(events)
    plays = [e["index"] for e in timeline if e["event"] == "playback_start" and e["q"] == 1]
    assert plays.count(1) == 1, f"thesis 1 would be said twice (THESIS_REPEATS=2) but was skipped: {plays}"
    end_1 = next(e for e in timeline if e["event"] == "playback_end" and e["index"] == 1)
    assert end_1["wall"] - pressed < 2.0, "thesis 1 was cut off when n was pressed, not played to its end"
    assert end_1["t"] >= started[0]["t"]
    assert after == before, "the terminal's settings are as they were before the run"


@pytest.mark.slow
def test_without_a_terminal_no_keys_are_read_or_mentioned(tmp_path: Path) -> None:
    question = question_recording(tmp_path, room_s=1)
    result = subprocess.run(
        [*CLI, "run", "--input", str(question), "--events", str(tmp_path / "events.jsonl")],
        input="n",  # a pipe: nothing read from it is a key
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "keys:" not in result.stdout + result.stderr
    assert " key " not in result.stdout and "skipped thesis" not in result.stdout


@pytest.mark.slow
def test_ctrl_c_still_stops_a_run_with_keys_and_the_terminal_is_restored(tmp_path: Path) -> None:
    question = question_recording(tmp_path, room_s=60)
    terminal = Terminal()
    before = termios.tcgetattr(terminal.slave)
    run = terminal.start([*CLI, "run", "--input", str(question)], cli_env(tmp_path))
    try:
        wait_for(lambda: KEYS_LINE in terminal.text(), "keys line", run, timeout=300)
        time.sleep(0.5)
        os.write(terminal.master, b"\x03")  # the terminal's interrupt character: SIGINT, as a user's Ctrl+C
        run.wait(timeout=20)
        after = termios.tcgetattr(terminal.slave)
    finally:
        if run.poll() is None:
            run.kill()
        terminal.close()
    assert run.returncode != 0, "interrupted, not run to the end of the input"
    assert after == before, "the terminal's settings are as they were before the run"
