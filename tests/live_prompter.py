"""The prompter as a user runs it in a terminal, and recorders of the private PulseAudio's sinks:
the helpers the live tests share (tests/test_live.py, tests/test_call.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from pulse import PulseServer

CLUELYPRO = Path(sys.prefix) / "bin" / "cluelypro"
RECORD_RATE = 16_000


class Prompter:
    """`cluelypro run` live, as a user would run it in a terminal (Ctrl+C = SIGINT)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.events_path = workdir / "events.jsonl"
        self.stderr_path = workdir / "prompter.stderr"
        self.lines: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()

    def start(self, *args: str) -> None:
        command = [str(CLUELYPRO), "run", "--events", str(self.events_path), *args]
        with self.stderr_path.open("w") as stderr:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                text=True,
                bufsize=1,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # our own Ctrl+C must not reach it; SIGINT is sent explicitly
                # a shell without job control may have started us with SIGINT ignored; Python
                # would inherit that and never raise KeyboardInterrupt
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stderr_lines(self) -> list[str]:
        return self.stderr_path.read_text(errors="replace").splitlines() if self.stderr_path.exists() else []

    def underruns_after_ready(self) -> int:
        """ALSA's "underrun occurred" lines printed after "ready": gaps in the earpiece audio.
        (The output stream starts before the models load, so a few during loading are expected.)"""
        lines = self.stderr_lines()
        ready = next((i for i, line in enumerate(lines) if line.startswith("ready in")), len(lines))
        return sum("underrun occurred" in line for line in lines[ready:])

    def diagnostics(self) -> str:
        stderr = [line for line in self.stderr_lines() if "underrun occurred" not in line]  # ALSA noise
        return f"--- stdout ---\n{self.output}\n--- stderr (tail, no ALSA underruns) ---\n" + "\n".join(stderr[-40:])

    def wait_for_line(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not any(needle in line for line in self.lines):
                if not self.running:
                    pytest.fail(
                        f"prompter exited (code {self._process.poll()}) before {needle!r}\n{self.diagnostics()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"no {needle!r} from the prompter within {timeout_s:.0f} s\n{self.diagnostics()}")
                self._changed.wait(timeout=0.5)

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        events = []
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # the last line, still being written
                break
        return events

    def wait_for_event(self, name: str, timeout_s: float, after_wall: float = 0.0, **fields: Any) -> dict[str, Any]:
        """The first event `name` with these fields (emitted after `after_wall`, a unix time)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events():
                if event["wall"] > after_wall and matches(event, name, **fields):
                    return event
            if not self.running:
                pytest.fail(f"prompter exited before a {name} {fields} event\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                seen = [event["event"] for event in self.events()]
                pytest.fail(f"no {name} {fields} event within {timeout_s:.0f} s; events: {seen}\n{self.diagnostics()}")
            time.sleep(0.2)

    def interrupt(self, timeout_s: float) -> int:
        """Ctrl+C: SIGINT, then wait for the summary and the exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"prompter did not exit within {timeout_s:.0f} s of SIGINT\n{self.diagnostics()}")
        if self._reader is not None:
            self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.running:
            self._process.kill()
            self._process.wait(timeout=10)


class Recorder:
    """parecord of one source into a 16 kHz mono WAV.

    `wall_of(sample)` dates a sample from the end of the recording (the moment parecord is
    stopped), which does not depend on how long parecord took to connect."""

    def __init__(self, env: dict[str, str], device: str, path: Path) -> None:
        self.path = path
        self.audio = np.zeros(0, np.float32)
        self._stopped_wall = 0.0
        self._process = subprocess.Popen(
            [
                "parecord",
                f"--device={device}",
                "--file-format=wav",
                "--format=s16le",
                f"--rate={RECORD_RATE}",
                "--channels=1",
                "--latency-msec=20",
                str(path),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_audio(self, timeout_s: float = 10.0) -> None:
        """Until samples flow. The first client of a null sink waits up to 2 s for its first
        block (the sink idles with 2 s blocks); after that the sink runs with 20 ms blocks."""
        deadline = time.monotonic() + timeout_s
        enough = 44 + 2 * RECORD_RATE // 10  # WAV header + 0.1 s of 16-bit samples
        while not (self.path.exists() and self.path.stat().st_size > enough):
            if self._process.poll() is not None:
                pytest.fail(f"parecord exited: {self._process.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"parecord recorded nothing into {self.path} within {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self) -> np.ndarray:
        if self._process.poll() is None:
            self._stopped_wall = time.time()
            self._process.send_signal(signal.SIGINT)  # parecord finalises the WAV header on SIGINT
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.audio, rate = sf.read(self.path, dtype="float32")
        assert rate == RECORD_RATE and len(self.audio), f"empty recording {self.path}: {self._process.stderr.read()}"
        return self.audio

    def wall_of(self, sample: int) -> float:
        return self._stopped_wall - (len(self.audio) - sample) / RECORD_RATE

    def sample_at(self, wall: float) -> int:
        return min(len(self.audio), max(0, round(len(self.audio) - (self._stopped_wall - wall) * RECORD_RATE)))

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0


def matches(event: dict[str, Any], name: str, **fields: Any) -> bool:
    return event["event"] == name and all(event.get(key) == value for key, value in fields.items())


def first(events: list[dict[str, Any]], name: str, **fields: Any) -> dict[str, Any] | None:
    return next((event for event in events if matches(event, name, **fields)), None)


def stream_routes(pulse: PulseServer, pid: int) -> dict[str, list[str]]:
    """The sources and sinks that process `pid` records from and plays into."""
    routes = {}
    for kind, device_kind in (("source-outputs", "sources"), ("sink-inputs", "sinks")):
        names = {
            device["index"]: device["name"] for device in json.loads(pulse.pactl("-f", "json", "list", device_kind))
        }
        streams = json.loads(pulse.pactl("-f", "json", "list", kind))
        device_key = "source" if kind == "source-outputs" else "sink"
        routes[kind] = [
            names.get(stream[device_key], str(stream[device_key]))
            for stream in streams
            if stream["properties"].get("application.process.id") == str(pid)
        ]
    return routes


def wait_for_routes(
    pulse: PulseServer, prompter: Prompter, expected: dict[str, list[str]], timeout_s: float = 10.0
) -> None:
    """The microphone opens just after "listening" is printed: poll until every stream is routed (in any order)."""
    deadline = time.monotonic() + timeout_s
    while _sorted(routes := stream_routes(pulse, prompter.pid)) != _sorted(expected):
        if not prompter.running:
            pytest.fail(f"prompter exited after 'listening' (streams {routes})\n{prompter.diagnostics()}")
        if time.monotonic() > deadline:
            pytest.fail(f"prompter streams {routes}, expected {expected}\n{prompter.diagnostics()}")
        time.sleep(0.1)


def input_now(events: list[dict[str, Any]]) -> float:
    """The prompter's input time now, from an event stamped when emitted (live: t runs with wall).

    speech_* carry the segmenter's audio times and playback_* the (future) times audio is heard,
    so they can't anchor; asr is stamped with the clock at emission."""
    anchor = first(events, "asr")
    return anchor["t"] + (time.time() - anchor["wall"])


def _sorted(routes: dict[str, list[str]]) -> dict[str, list[str]]:
    return {kind: sorted(names) for kind, names in routes.items()}
