"""`cluelypro bench --peer pipecat`: the same recordings through a Pipecat pipeline of the same engines.

After our own runs, the recordings are replayed, in real time and the same number of times,
through a Pipecat 1.14 pipeline built from the engines the product embeds:

    input (the recording as 20 ms InputAudioRawFrames at wall-clock pace, then silence)
    → WhisperSTTService on the same faster-whisper model folder (language, Whisper's previous-text
      prompt, no-speech threshold, compute type, threads and beam size as ours; Pipecat transcribes
      with faster-whisper's stock 30 s windows once the VAD has stopped)
    → LLMContextAggregatorPair's user side with Pipecat's own Silero VAD analyzer (threshold as ours)
      and its user-turn stop strategy (below)
    → OpenAILLMService on llama-cpp-python's OpenAI-compatible server (`llama_cpp.server`, a
      subprocess on 127.0.0.1) serving the same GGUF with the same context, threads and batch;
      the same system prompt and worked examples (`llm.prompts.thesis_messages`), temperature,
      repeat penalty and max tokens as our LLM call
    → a TTSService subclass speaking through our RHVoice engine (PCM streamed as it is made),
      sentence by sentence as Pipecat's text aggregator cuts them; it speaks what our thesis parser
      would (no list numbers, no lone "0" for "not a question", numbers in words)
    → an earpiece sink that stamps each audio frame on arrival (time.monotonic).

End of turn mirrors ours: with our fixed window (TURN_MODEL=off) Pipecat's VAD stops after
END_SILENCE_MS of silence and the turn ends as soon as the transcript is in
(SpeechTimeoutUserTurnStopStrategy with no extra timeout); with our Smart Turn (TURN_MODEL=smart-turn)
Pipecat runs its own default: Smart Turn v3 (LocalSmartTurnAnalyzerV3, the same weights) asked
after its VAD's default 0.2 s stop.

Voice-to-voice is the first audible audio frame of the answer minus the instant the question's
speech ended in the replayed audio, both on time.monotonic; that instant is the end of the last
voiced frame as our own segmenter finds it in the recording (`bench.baseline.utterances`), the
instant our timeline's `speech_end` marks, so both systems are measured from the same point.

Pipecat runs in a child process (`python -m cluelypro.bench.peer_pipecat <request folder>`), after
ours and never at the same time: its start-up time and peak memory (its own and the LLM server's)
are measured apart from ours, and our idle engines do not share its address space. This is the
only module that imports pipecat, inside functions: the product never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rich import box
from rich.markup import escape
from rich.table import Table

from cluelypro.bench.corpus import Recording
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.threads import iterate_in_thread

PIPECAT_VERSION = "1.14.0"
INSTALL_HINT = "install the peer extra: pip install -e '.[peer]'"

FRAME_S = 0.02  # the input's frames, as a WebRTC or websocket transport delivers them
AUDIBLE_PEAK = 0.01  # -40 dBFS: an audio frame quieter than this throughout is silence
SETTLE_S = 0.1  # after the recording's last silence window, as our runner waits
ANSWER_AUDIO_S = 1.5  # audio of the answer kept (to check it is speech) before a run stops
ANSWER_WAIT_S = 2.0  # ... or this long after its first audible frame
LLM_IDLE_S = 1.0  # the LLM ended this long ago and nothing audible came: no theses
NO_TURN_S = 5.0  # the VAD stopped this long ago and no turn ended: nothing was asked
SERVER_START_S = 180.0
SERVER_ALIAS = "cluelypro"
MARK = "@peer "  # prefix of the child's result lines on stdout (libraries may print there too)
LOG_TAIL_LINES = 15


class PeerUnavailableError(RuntimeError):
    """The peer cannot run here: pipecat (or the LLM server) is not installed, or it failed."""


def require_pipecat() -> None:
    """Raise PeerUnavailableError (one line) unless pipecat-ai PIPECAT_VERSION and the LLM server
    can be imported; nothing is imported."""
    if importlib.util.find_spec("pipecat") is None:
        raise PeerUnavailableError(f"pipecat-ai is not installed; {INSTALL_HINT}")
    version = importlib.metadata.version("pipecat-ai")
    if version != PIPECAT_VERSION:
        raise PeerUnavailableError(f"the peer is built for pipecat-ai {PIPECAT_VERSION}, not {version}; {INSTALL_HINT}")
    for module in ("loguru", "aiohttp", "faster_whisper", "openai", "llama_cpp", "uvicorn", "sse_starlette"):
        if importlib.util.find_spec(module) is None:
            raise PeerUnavailableError(f"{module} (needed by the peer) is not installed; {INSTALL_HINT}")


# --- what the child is asked and what it answers ----------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    """The settings of ours that the Pipecat pipeline mirrors."""

    vad_threshold: float
    end_silence_ms: int
    turn: str  # "vad": the fixed silence window; "smart-turn": Pipecat's default Smart Turn v3 stop
    asr_model: str
    asr_language: str
    asr_threads: int
    asr_beam_size: int
    asr_prompt: str | None
    llm_model: str
    llm_threads: int
    llm_prompt_threads: int
    llm_context_tokens: int
    llm_max_tokens: int
    tts_voice: str
    tts_speed: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PeerConfig:
        ours_turn = getattr(settings, "turn_model", "off")  # the learned end of turn, where ours has one
        return cls(
            vad_threshold=settings.vad_threshold,
            end_silence_ms=settings.end_silence_ms,
            turn="smart-turn" if ours_turn == "smart-turn" else "vad",
            asr_model=settings.asr_model,
            asr_language=settings.asr_language,
            asr_threads=settings.asr_threads,
            asr_beam_size=settings.asr_beam_size,
            asr_prompt=settings.asr_prompt,
            llm_model=settings.llm_model,
            llm_threads=settings.llm_threads,
            llm_prompt_threads=settings.llm_prompt_threads,
            llm_context_tokens=settings.llm_context_tokens,
            llm_max_tokens=settings.llm_max_tokens,
            tts_voice=settings.tts_voice,
            tts_speed=settings.tts_speed,
        )

    def describe(self) -> str:
        if self.turn == "smart-turn":
            return "end of turn: Pipecat's Smart Turn v3 after its VAD's 0.2 s stop (ours: Smart Turn)"
        return f"end of turn: Pipecat's VAD stop after {self.end_silence_ms} ms, then the transcript (as ours)"


@dataclass
class PeerRun:
    """One real-time replay of a recording through Pipecat; offsets are seconds after speech end."""

    heard: str
    stop: str  # "answered", "no question", "no theses", "llm error" or "timeout"
    offsets: dict[str, float] = field(default_factory=dict)
    theses: list[str] = field(default_factory=list)  # the sentences sent to the TTS
    output_audio_s: float = 0.0  # the answer's audio kept (up to about ANSWER_AUDIO_S)
    output_peak: float = 0.0
    output_speech_s: float = 0.0  # of it, what our Silero VAD calls speech

    @property
    def answered(self) -> bool:
        return "first_audio" in self.offsets

    @property
    def voice_to_voice(self) -> float | None:
        return self.offsets.get("first_audio")


PEER_STAGES = (
    ("vad_stop", "VAD stopped (VADUserStoppedSpeakingFrame)"),
    ("transcript", "transcript (TranscriptionFrame)"),
    ("turn_end", "end of turn: LLM request (LLMContextFrame)"),
    ("llm_first_token", "LLM first token (LLMTextFrame)"),
    ("sentence_1", "sentence 1 complete: TTS request (TTSStartedFrame)"),
    ("first_audio", "first audible audio = voice-to-voice"),
)


@dataclass
class PeerBench:
    runs: list[list[PeerRun]]  # per recording, in order
    startup_s: float
    rss_peak_mb: float | None  # the child's peak plus the LLM server's
    config: PeerConfig


def run_peer(
    recordings: list[Recording],
    settings: Settings,
    repeat: int,
    timeout_s: float,
    on_ready: Callable[[float], None] = lambda startup_s: None,
    on_run: Callable[[Recording, int, PeerRun], None] = lambda recording, attempt, run: None,
) -> PeerBench:
    """Every recording `repeat` times through Pipecat, in a child process; raises
    PeerUnavailableError when pipecat is missing or the child fails."""
    require_pipecat()
    config = PeerConfig.from_settings(settings)
    spans = [_speech_spans(recording.audio, settings) for recording in recordings]
    with tempfile.TemporaryDirectory(prefix="cluelypro-peer-") as folder:  # 0700: it holds the recordings
        request = Path(folder)
        np.savez(request / "audio.npz", *[recording.audio for recording in recordings])
        (request / "request.json").write_text(
            json.dumps(
                {
                    "config": asdict(config),
                    "names": [recording.name for recording in recordings],
                    "spans": spans,
                    "repeat": repeat,
                    "timeout_s": timeout_s,
                }
            ),
            encoding="utf-8",
        )
        runs: list[list[PeerRun]] = [[] for _ in recordings]
        done: dict[str, Any] = {}
        log_path = request / "peer.log"
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "cluelypro.bench.peer_pipecat", str(request)],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                start_new_session=True,  # its own process group, with the LLM server it starts
            )
            try:
                assert child.stdout is not None
                for line in child.stdout:
                    if not line.startswith(MARK):
                        continue
                    message = json.loads(line[len(MARK) :])
                    if message["type"] == "ready":
                        on_ready(message["startup_s"])
                    elif message["type"] == "run":
                        run = PeerRun(**message["run"])
                        runs[message["recording"]].append(run)
                        on_run(recordings[message["recording"]], message["attempt"], run)
                    elif message["type"] == "done":
                        done = message
                code = child.wait()
            finally:
                if child.poll() is None:  # we were interrupted: the child and its LLM server go too
                    _stop_group(child)
        if code != 0 or not done:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
            reason = next((line for line in reversed(tail) if "Error" in line), tail[-1] if tail else "no output")
            raise PeerUnavailableError(f"the Pipecat peer failed (exit {code}): {reason.strip()}")
    return PeerBench(runs, done["startup_s"], done["rss_peak_mb"], config)


def _stop_group(child: subprocess.Popen[str]) -> None:
    """Terminate the child's process group (the child and the LLM server), killing it if need be."""
    if not hasattr(os, "killpg"):  # Windows
        child.kill()
        child.wait()
        return
    for signal_number, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal_number)
        try:
            child.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _speech_spans(audio: np.ndarray, settings: Settings) -> list[tuple[float, float]]:
    """(start, end) of each utterance our segmenter finds in `audio`: `end` is the end of its last
    voiced frame, the `t` of our timeline's speech_end."""
    from cluelypro.bench.baseline import utterances
    from cluelypro.engines import Engines
    from cluelypro.vad.engines import make_detector

    detector = make_detector(settings.vad_engine, settings.webrtc_aggressiveness)
    found = utterances(audio, Engines(detector=detector, recognizers=[], llms=[], synthesizers=[]), settings)
    return [(utterance.start, utterance.end) for utterance in found]


# --- the summary, the JSON's "peer" and the tables ---------------------------------------------


def summarize_peer(bench: PeerBench, recordings: list[Recording], ours: dict[str, Any]) -> dict[str, Any]:
    """The JSON's "peer": Pipecat's voice-to-voice and stages (answered runs only), ours beside it
    per recording, and the ratio ours p50 / Pipecat p50 (below 1: ours answers sooner)."""
    from cluelypro.bench.report import stats

    runs = [run for recording_runs in bench.runs for run in recording_runs]
    answered = [run for run in runs if run.answered]
    v2v = stats([run.voice_to_voice for run in answered])
    ours_p50, peer_p50 = ours["voice_to_voice"]["p50"], v2v["p50"]
    ours_by_name = {entry["name"]: entry for entry in ours["per_recording"]}
    per_recording = []
    for recording, recording_runs in zip(recordings, bench.runs, strict=True):
        heard = [run.heard for run in recording_runs if run.answered] or [run.heard for run in recording_runs]
        ours_entry = ours_by_name.get(recording.name, {})
        per_recording.append(
            {
                "name": recording.name,
                "heard": heard[0] if heard else "",
                "answered_runs": sum(run.answered for run in recording_runs),
                "voice_to_voice": stats([run.voice_to_voice for run in recording_runs if run.answered]),
                "ours_voice_to_voice": ours_entry.get("voice_to_voice", {"p50": None, "p95": None}),
                "ours_answered_runs": ours_entry.get("answered_runs", 0),
                "runs": [
                    {
                        "heard": run.heard,
                        "stop": run.stop,
                        "voice_to_voice": None if run.voice_to_voice is None else round(run.voice_to_voice, 4),
                        "stages": {name: round(value, 4) for name, value in run.offsets.items()},
                        "theses": run.theses,
                        "output_audio_s": round(run.output_audio_s, 3),
                        "output_peak": round(run.output_peak, 4),
                        "output_speech_s": round(run.output_speech_s, 3),
                    }
                    for run in recording_runs
                ],
            }
        )
    both = [e for e in per_recording if e["answered_runs"] and e["ours_answered_runs"]]
    ours_both = [
        run["voice_to_voice"]
        for e in both
        for run in ours_by_name[e["name"]]["runs"]
        if run["voice_to_voice"] is not None
    ]
    peer_both = [run["voice_to_voice"] for e in both for run in e["runs"] if run["voice_to_voice"] is not None]
    ours_paired, peer_paired = stats(ours_both), stats(peer_both)
    paired = {
        "recordings": [e["name"] for e in both],
        "ours": ours_paired,
        "pipecat": peer_paired,
        "ratio": _ratio(ours_paired["p50"], peer_paired["p50"]),
    }
    return {
        "system": "pipecat",
        "pipecat_version": PIPECAT_VERSION,
        "pipeline": bench.config.describe(),
        "config": asdict(bench.config),
        "voice_to_voice": v2v,
        "stages": {name: stats([run.offsets.get(name) for run in answered]) for name, _ in PEER_STAGES},
        "ratio": _ratio(ours_p50, peer_p50),
        "ratio_means": "CluelyPro p50 / Pipecat p50 of voice-to-voice (below 1: CluelyPro answers sooner)",
        "both_answered": paired,  # the same statistics over the recordings both systems answered
        "runs": len(runs),
        "answered_runs": len(answered),
        "no_answer": {
            "runs": len(runs) - len(answered),
            "recordings": [e["name"] for e in per_recording if not e["answered_runs"]],
        },
        "startup_s": round(bench.startup_s, 3),
        "rss_peak_mb": None if bench.rss_peak_mb is None else round(bench.rss_peak_mb, 1),
        "per_recording": per_recording,
    }


def _ratio(ours: float | None, peer: float | None) -> float | None:
    return round(ours / peer, 3) if ours and peer else None


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _v2v(values: dict[str, float | None], answered: int, runs: int, repeat: int) -> str:
    if not answered or values["p50"] is None:
        return "[yellow]no answer[/]"
    text = _s(values["p50"]) if repeat == 1 else f"{_s(values['p50'])} / {_s(values['p95'])}"
    return text if answered == runs else f"{text} ({answered}/{runs})"


def peer_recordings_table(peer: dict[str, Any], repeat: int, heard: bool = True) -> Table:
    """One row per recording: our voice-to-voice beside Pipecat's, and Pipecat's stages."""
    title = "Peer: CluelyPro vs Pipecat, seconds after end of speech" + (
        "" if repeat == 1 else f" (v2v p50 / p95 over {repeat} runs)"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("recording", no_wrap=True)
    if heard:
        table.add_column("Pipecat heard", min_width=16, max_width=40)
    table.add_column("ours v2v", justify="right", no_wrap=True)
    table.add_column("Pipecat v2v", justify="right", no_wrap=True)
    for short in ("VAD", "text", "turn", "TTFT", "sent. 1"):
        table.add_column(short, justify="right", no_wrap=True)
    for entry in peer["per_recording"]:
        runs = len(entry["runs"])
        row = [escape(entry["name"])]
        if heard:
            text = escape(entry["heard"]) or "[dim](nothing heard)[/]"
            row.append(text if entry["answered_runs"] else f"{text} [dim]— {entry['runs'][0]['stop']}[/]")
        row.append(_v2v(entry["ours_voice_to_voice"], entry["ours_answered_runs"], runs, repeat))
        row.append(_v2v(entry["voice_to_voice"], entry["answered_runs"], runs, repeat))
        for name, _ in PEER_STAGES[:-1]:  # how far each run got, answered or not
            values = [run["stages"][name] for run in entry["runs"] if name in run["stages"]]
            row.append(_s(float(np.median(values))) if values else "—")
        table.add_row(*row)
    return table


def peer_overall_table(peer: dict[str, Any], ours: dict[str, Any]) -> Table:
    runs = f"Pipecat: {peer['answered_runs']} answered runs of {peer['runs']}"
    table = Table(
        title=f"Peer overall: seconds after end of speech ({runs})",
        title_justify="left",
        caption=f"Pipecat {peer['pipecat_version']}: {escape(peer['pipeline'])}",
        caption_justify="left",
    )
    table.add_column("", justify="left")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for name, label in PEER_STAGES[:-1]:
        table.add_row(f"Pipecat: {label}", _s(peer["stages"][name]["p50"]), _s(peer["stages"][name]["p95"]))
    table.add_section()
    for who, v2v in (("CluelyPro", ours["voice_to_voice"]), ("Pipecat", peer["voice_to_voice"])):
        table.add_row(f"[bold]voice-to-voice, {who}[/]", f"[bold]{_s(v2v['p50'])}[/]", f"[bold]{_s(v2v['p95'])}[/]")
    ratio = peer["ratio"]
    table.add_row("[bold]ratio CluelyPro / Pipecat (p50)[/]", "—" if ratio is None else f"[bold]{ratio:.2f}×[/]", "")
    paired = peer["both_answered"]
    if len(paired["recordings"]) < len(peer["per_recording"]):  # the answered sets differ
        table.add_section()
        count = f"the {len(paired['recordings'])} recordings both answered"
        for who in ("ours", "pipecat"):
            v2v = paired[who]
            label = "CluelyPro" if who == "ours" else "Pipecat"
            table.add_row(f"voice-to-voice, {label}, {count}", _s(v2v["p50"]), _s(v2v["p95"]))
        both_ratio = paired["ratio"]
        table.add_row(
            f"ratio CluelyPro / Pipecat (p50), {count}", "—" if both_ratio is None else f"{both_ratio:.2f}×", ""
        )
    table.add_section()
    for who, summary in (("CluelyPro", ours), ("Pipecat", peer)):
        rss = summary["rss_peak_mb"]
        table.add_row(
            f"{who}: start-up, peak RSS",
            f"{summary['startup_s']:.1f} s",
            "—" if rss is None else f"{rss:.0f} MB",
        )
    return table


# --- the child process: the Pipecat pipeline ----------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m cluelypro.bench.peer_pipecat <request folder>`: run the request, print results."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cluelypro.bench.peer_pipecat <request folder>", file=sys.stderr)
        return 2
    started = time.monotonic()
    request_dir = Path(args[0])
    request = json.loads((request_dir / "request.json").read_text(encoding="utf-8"))
    config = PeerConfig(**request["config"])
    with np.load(request_dir / "audio.npz") as stored:
        audios = [stored[f"arr_{index}"] for index in range(len(request["names"]))]
    _quiet_pipecat_logs()
    with _LlamaServer(config, request_dir / "llama-server.log") as server:
        engines = _PeerEngines.load(config)
        try:
            _say({"type": "ready", "startup_s": time.monotonic() - started})
            for index, audio in enumerate(audios):
                spans = [tuple(span) for span in request["spans"][index]]
                for attempt in range(request["repeat"]):
                    run = asyncio.run(_replay(audio, spans, engines, config, server.url, request["timeout_s"]))
                    _say({"type": "run", "recording": index, "attempt": attempt, "run": asdict(run)})
        finally:
            engines.close()
        server_peak_mb = server.peak_rss_mb()
    own_peak_mb = _own_peak_rss_mb()
    rss = None if own_peak_mb is None or server_peak_mb is None else own_peak_mb + server_peak_mb
    _say({"type": "done", "startup_s": engines.ready_s - started, "rss_peak_mb": rss})
    return 0


def _say(message: dict[str, Any]) -> None:
    print(MARK + json.dumps(message, ensure_ascii=False), flush=True)


def _quiet_pipecat_logs() -> None:
    """Pipecat logs every frame decision at DEBUG through loguru: warnings and errors only."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _own_peak_rss_mb() -> float | None:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec, unlike
    getrusage's ru_maxrss, which keeps the forking parent's (the bench, engines loaded)."""
    peak = _vm_hwm_mb("self")
    if peak is not None or sys.platform.startswith("linux"):
        return peak
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def _vm_hwm_mb(pid: int | str) -> float | None:
    """A process's peak resident memory from /proc (Linux), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


class _LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 and a free port, serving our GGUF
    with our engine's context, threads and batch; warmed with our system prompt, as ours is."""

    def __init__(self, config: PeerConfig, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> _LlamaServer:
        from cluelypro.llm.models import resolve_gguf

        gguf = resolve_gguf(self.config.llm_model)
        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            SERVER_ALIAS,
            "--n_ctx",
            str(self.config.llm_context_tokens),
            "--n_threads",
            str(self.config.llm_threads),
            "--n_threads_batch",
            str(self.config.llm_prompt_threads),
            "--n_batch",
            "512",
            "--use_mmap",
            "false",
            "--logits_all",
            "false",
            "--verbose",
            "false",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}/v1"
        try:
            self._wait_until_up()
            self._warm_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"llama_cpp.server exited: {tail[0] if tail else self.process.returncode}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"llama_cpp.server did not answer within {SERVER_START_S:.0f} s")

    def _warm_up(self) -> None:
        """One token after our system prompt and examples: the server's prefix cache then holds
        them, as our engine's warm_up does."""
        from openai import OpenAI

        from cluelypro.llm.prompts import thesis_messages

        client = OpenAI(api_key="local", base_url=self.url)
        client.chat.completions.create(
            model=SERVER_ALIAS,
            messages=thesis_messages("", language=self.config.asr_language),  # type: ignore[arg-type]
            max_tokens=1,
            temperature=0.0,
        )
        client.close()

    def peak_rss_mb(self) -> float | None:
        """The server's peak resident memory (Linux: VmHWM), while it still runs."""
        return None if self.process is None else _vm_hwm_mb(self.process.pid)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _PeerEngines:
    """The engines loaded once for every run: faster-whisper's model, RHVoice, our Silero VAD
    (only to check that Pipecat's output is speech)."""

    whisper: Any  # faster_whisper.WhisperModel, transcribing with our beam size
    whisper_dir: str
    whisper_prompt: str | None
    synthesizer: Any  # cluelypro.tts.rhvoice.RhVoiceSynthesizer
    detector: Any  # cluelypro.vad.engines.SpeechDetector
    ready_s: float = 0.0  # time.monotonic() when everything was loaded and warm

    @classmethod
    def load(cls, config: PeerConfig) -> _PeerEngines:
        import pipecat.services.whisper.stt  # noqa: F401  (import time belongs to start-up)
        from faster_whisper import WhisperModel

        from cluelypro.asr.whisper import EMBEDDED_NAMES, EXAM_PROMPTS, embedded_model_dir
        from cluelypro.tts.rhvoice import RhVoiceSynthesizer
        from cluelypro.vad.engines import make_detector

        folder = str(embedded_model_dir()) if config.asr_model in EMBEDDED_NAMES else config.asr_model
        whisper = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=config.asr_threads)
        # Pipecat's WhisperSTTService calls transcribe() without a beam size (faster-whisper's
        # default is 5); ours is ASR_BEAM_SIZE.
        whisper.transcribe = functools.partial(WhisperModel.transcribe, whisper, beam_size=config.asr_beam_size)
        prompt = EXAM_PROMPTS.get(config.asr_language, "") if config.asr_prompt is None else config.asr_prompt.strip()
        noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
        list(whisper.transcribe(noise, language=config.asr_language)[0])  # warm-up, as ours
        synthesizer = RhVoiceSynthesizer(config.tts_voice, config.tts_speed)
        synthesizer.load()
        synthesizer.warm_up()
        engines = cls(whisper, folder, prompt or None, synthesizer, make_detector("silero"))
        _pipecat_parts()  # Pipecat's modules, imported now rather than in the first run
        engines.ready_s = time.monotonic()
        return engines

    def close(self) -> None:
        self.synthesizer.close()


@functools.cache
def _pipecat_parts() -> SimpleNamespace:
    """Pipecat's classes, and ours built on them (imported on first use only)."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.clocks.base_clock import BaseClock
    from pipecat.frames.frames import (
        ErrorFrame,
        Frame,
        InputAudioRawFrame,
        LLMContextFrame,
        LLMFullResponseEndFrame,
        LLMTextFrame,
        OutputAudioRawFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
        TTSStartedFrame,
        UserStoppedSpeakingFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.observers.base_observer import BaseObserver, FramePushed
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import (
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.settings import TTSSettings
    from pipecat.services.tts_service import TTSService
    from pipecat.services.whisper.stt import WhisperSTTService
    from pipecat.transcriptions.language import Language
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies
    from pipecat.workers.runner import WorkerRunner

    from cluelypro.tts.normalize import normalize_for_tts

    class MonotonicClock(BaseClock):
        """The pipeline clock as time.monotonic_ns() itself, so that observers' timestamps are on
        the bench's clock."""

        def get_time(self) -> int:
            return time.monotonic_ns()

        def start(self) -> None:
            pass

    class Stamps(BaseObserver):
        """When each frame that marks a stage was first pushed (seconds, time.monotonic)."""

        KINDS = (
            (VADUserStartedSpeakingFrame, "vad_start"),
            (VADUserStoppedSpeakingFrame, "vad_stop"),
            (TranscriptionFrame, "transcript"),
            (UserStoppedSpeakingFrame, "user_stopped"),
            (LLMContextFrame, "turn_end"),
            (LLMTextFrame, "llm_token"),
            (LLMFullResponseEndFrame, "llm_end"),
            (TTSStartedFrame, "sentence"),
            (ErrorFrame, "error"),
        )

        def __init__(self) -> None:
            super().__init__(observe_every_push=False)
            self.events: list[tuple[float, str, str]] = []

        async def on_push_frame(self, data: FramePushed) -> None:
            for kind, name in self.KINDS:
                if isinstance(data.frame, kind):
                    text = getattr(data.frame, "text", None) or getattr(data.frame, "error", None) or ""
                    self.events.append((data.timestamp / 1e9, name, str(text)))
                    return

    class Earpiece(FrameProcessor):
        """Where the output transport would be: stamps each audio frame as it arrives."""

        def __init__(self) -> None:
            super().__init__()
            self.audio: list[tuple[float, np.ndarray, int]] = []  # (time.monotonic, samples, rate)

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, OutputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
                samples = np.frombuffer(frame.audio, dtype="<i2").astype(np.float32) / 32768.0
                self.audio.append((time.monotonic(), samples, frame.sample_rate))
            await self.push_frame(frame, direction)

    class SameWhisperSTT(WhisperSTTService):
        """Pipecat's faster-whisper service on a model loaded once for every run."""

        def __init__(self, *, loaded: Any, **kwargs: Any) -> None:
            self._loaded = loaded
            super().__init__(**kwargs)

        def _load(self) -> None:
            self._model = self._loaded

    class RhVoiceTTS(TTSService):
        """Our RHVoice engine as a Pipecat TTS service: PCM streamed as RHVoice makes it."""

        def __init__(self, *, engine: Any, language: str, **kwargs: Any) -> None:
            self._engine = engine
            self.spoken: list[tuple[float, str]] = []

            async def speakable(text: str, _type: str) -> str:
                return _speakable(text, language, normalize_for_tts)

            super().__init__(
                push_start_frame=True,
                push_stop_frames=True,
                sample_rate=engine.sample_rate,
                text_transforms=[("*", speakable)],
                max_consecutive_zero_audio_contexts=0,
                settings=TTSSettings(model=None, voice=engine.voice, language=_pipecat_language(Language, language)),
                **kwargs,
            )

        def can_generate_metrics(self) -> bool:
            return True

        async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
            self.spoken.append((time.monotonic(), text))
            async for chunk in iterate_in_thread(lambda: self._engine.synthesize(text)):
                await self.stop_ttfb_metrics()
                pcm = (np.clip(chunk, -1.0, 1.0) * 32767).astype("<i2").tobytes()
                yield TTSAudioRawFrame(
                    audio=pcm, sample_rate=self._engine.sample_rate, num_channels=1, context_id=context_id
                )

    return SimpleNamespace(
        SileroVADAnalyzer=SileroVADAnalyzer,
        VADParams=VADParams,
        InputAudioRawFrame=InputAudioRawFrame,
        Pipeline=Pipeline,
        PipelineParams=PipelineParams,
        PipelineWorker=PipelineWorker,
        WorkerRunner=WorkerRunner,
        LLMContext=LLMContext,
        LLMContextAggregatorPair=LLMContextAggregatorPair,
        LLMUserAggregatorParams=LLMUserAggregatorParams,
        UserTurnStrategies=UserTurnStrategies,
        SpeechTimeoutUserTurnStopStrategy=SpeechTimeoutUserTurnStopStrategy,
        OpenAILLMService=OpenAILLMService,
        WhisperSTTService=WhisperSTTService,
        Language=Language,
        MonotonicClock=MonotonicClock,
        Stamps=Stamps,
        Earpiece=Earpiece,
        SameWhisperSTT=SameWhisperSTT,
        RhVoiceTTS=RhVoiceTTS,
    )


def _pipecat_language(language_enum: Any, code: str) -> Any:
    try:
        return language_enum(code)
    except ValueError:
        return code


_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}\s*[.)]|[-*•–—])\s*")


def _speakable(text: str, language: str, normalize: Callable[[str, str], str]) -> str:
    """What our prompter would say of a sentence Pipecat cut from the LLM's stream: without its
    list number ("1." alone is nothing), nothing for the "0" that means "not a question", and
    numbers in words (RHVoice would read "1." as "один")."""
    text = _LIST_MARKER.sub("", text, count=1).strip()
    if not text or text.strip(".)") in ("", "0"):
        return ""
    return normalize(text, language)


async def _replay(
    audio: np.ndarray,
    spans: list[tuple[float, float]],
    engines: _PeerEngines,
    config: PeerConfig,
    llm_url: str,
    timeout_s: float,
) -> PeerRun:
    """`audio` in real time, then silence, through a fresh Pipecat pipeline on the loaded engines."""
    p = _pipecat_parts()
    from cluelypro.llm.llama import REPEAT_PENALTY, TEMPERATURE
    from cluelypro.llm.prompts import thesis_messages

    language = _pipecat_language(p.Language, config.asr_language)
    if config.turn == "smart-turn":  # Pipecat's defaults: VAD stop 0.2 s, then Smart Turn v3
        vad_params, strategies = p.VADParams(confidence=config.vad_threshold), None
    else:
        vad_params = p.VADParams(confidence=config.vad_threshold, stop_secs=config.end_silence_ms / 1000)
        strategies = p.UserTurnStrategies(stop=[p.SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)])
    stt = p.SameWhisperSTT(
        loaded=engines.whisper,
        device="cpu",
        compute_type="int8",
        settings=p.WhisperSTTService.Settings(
            model=engines.whisper_dir,
            language=language,
            initial_prompt=engines.whisper_prompt,
            no_speech_prob=0.6,  # ours drops a transcript above it (asr/whisper.py)
        ),
    )
    # Our rules as the system instruction, our worked examples as the context; the user
    # aggregator appends the transcript: the same messages as `thesis_messages(transcript)`.
    system, *examples = thesis_messages("", language=config.asr_language)[:-1]
    llm = p.OpenAILLMService(
        api_key="local",
        base_url=llm_url,
        settings=p.OpenAILLMService.Settings(
            model=SERVER_ALIAS,
            system_instruction=system["content"],
            temperature=TEMPERATURE,
            max_tokens=config.llm_max_tokens,
            extra={"extra_body": {"repeat_penalty": REPEAT_PENALTY}},
        ),
    )
    tts = p.RhVoiceTTS(engine=engines.synthesizer, language=config.asr_language)
    context = p.LLMContext(messages=examples)
    user, assistant = p.LLMContextAggregatorPair(
        context,
        user_params=p.LLMUserAggregatorParams(
            vad_analyzer=p.SileroVADAnalyzer(params=vad_params), user_turn_strategies=strategies
        ),
    )
    earpiece, stamps = p.Earpiece(), p.Stamps()
    worker = p.PipelineWorker(
        p.Pipeline([stt, user, llm, tts, earpiece, assistant]),
        params=p.PipelineParams(
            audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=engines.synthesizer.sample_rate
        ),
        observers=[stamps],
        clock=p.MonotonicClock(),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    started = asyncio.Event()

    async def on_started(_worker: Any, _frame: Any) -> None:
        started.set()

    worker.add_event_handler("on_pipeline_started", on_started)
    runner = p.WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(started.wait(), 60)
        origin = time.monotonic()  # input time 0: the recording starts arriving
        feeding = asyncio.create_task(_feed(worker, p.InputAudioRawFrame, audio, origin))
        try:
            watch = _Watch(stamps, earpiece, origin, len(audio) / SAMPLE_RATE, timeout_s, config)
            stop = await watch.wait()
        finally:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
    finally:
        await worker.cancel()
        try:
            await asyncio.wait_for(running, 30)
        except asyncio.TimeoutError:
            running.cancel()
    return _run_result(stop, stamps.events, earpiece.audio, tts.spoken, spans, origin, engines.detector)


async def _feed(worker: Any, frame_type: Any, audio: np.ndarray, origin: float) -> None:
    """The recording as 20 ms frames, each when its last sample 'arrives', then silence."""
    size = round(FRAME_S * SAMPLE_RATE)
    silence = np.zeros(size, dtype="<i2").tobytes()
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    position = 0
    while True:
        chunk = pcm[position : position + size]
        position += size
        data = silence if len(chunk) == 0 else np.pad(chunk, (0, size - len(chunk))).tobytes()
        await asyncio.sleep(max(0.0, origin + position / SAMPLE_RATE - time.monotonic()))
        await worker.queue_frame(frame_type(audio=data, sample_rate=SAMPLE_RATE, num_channels=1))


class _Watch:
    """Follows a Pipecat run until its outcome is known, as our runner's OutcomeWatch does: the
    answer to the last turn is audible (and some of it heard), or it is clear none will come."""

    POLL_S = 0.02

    def __init__(
        self, stamps: Any, earpiece: Any, origin: float, audio_end: float, timeout_s: float, config: PeerConfig
    ) -> None:
        self.stamps, self.earpiece, self.origin = stamps, earpiece, origin
        window = config.end_silence_ms / 1000 if config.turn == "vad" else 0.2
        self.settled = origin + audio_end + window + SETTLE_S
        self.deadline = origin + audio_end + timeout_s

    async def wait(self) -> str:
        await asyncio.sleep(max(0.0, self.settled - time.monotonic()))
        while True:
            if verdict := self.verdict(time.monotonic()):
                return verdict
            if time.monotonic() >= self.deadline:
                return "timeout"
            await asyncio.sleep(self.POLL_S)

    def verdict(self, now: float) -> str | None:
        events = list(self.stamps.events)
        turn_ends = [t for t, name, _ in events if name == "turn_end"]
        vad = [(t, name) for t, name, _ in events if name in ("vad_start", "vad_stop")]
        if vad and vad[-1][1] == "vad_start":
            return None  # someone is speaking (Pipecat's VAD says)
        last_vad_stop = max((t for t, name in vad if name == "vad_stop"), default=None)
        if not turn_ends:
            quiet_since = self.settled if last_vad_stop is None else last_vad_stop
            return "no question" if now - quiet_since >= NO_TURN_S else None
        turn_end = turn_ends[-1]
        if last_vad_stop is not None and last_vad_stop > turn_end and now - last_vad_stop < NO_TURN_S:
            return None  # a later utterance may still become a turn (its transcript is on its way)
        audible = [t for t, samples, _ in self.earpiece.audio if t > turn_end and _audible(samples)]
        if audible:
            kept = sum(len(s) / rate for t, s, rate in self.earpiece.audio if t >= audible[0])
            return "answered" if kept >= ANSWER_AUDIO_S or now - audible[0] >= ANSWER_WAIT_S else None
        if any(t > turn_end and name == "error" for t, name, _ in events):
            return "llm error"
        llm_end = [t for t, name, _ in events if name == "llm_end" and t > turn_end]
        return "no theses" if llm_end and now - llm_end[-1] >= LLM_IDLE_S else None


def _audible(samples: np.ndarray) -> bool:
    return bool(len(samples)) and float(np.abs(samples).max()) >= AUDIBLE_PEAK


def _run_result(
    stop: str,
    events: list[tuple[float, str, str]],
    audio: list[tuple[float, np.ndarray, int]],
    spoken: list[tuple[float, str]],
    spans: list[tuple[float, float]],
    origin: float,
    detector: Any,
) -> PeerRun:
    """The milestones of the last turn that got audible audio (else of the last turn), each
    measured from the end of the speech that turn answered (in our segmenter's reading)."""
    turn_ends = [t for t, name, _ in events if name == "turn_end"]
    answered = [end for end in turn_ends if any(t > end and _audible(s) for t, s, _ in audio)]
    turn_end = answered[-1] if answered else (turn_ends[-1] if turn_ends else None)
    if turn_end is None:
        heard = " ".join(text.strip() for _, name, text in events if name == "transcript").strip()
        return PeerRun(heard, stop if stop != "answered" else "no question")
    previous = max((end for end in turn_ends if end < turn_end), default=-np.inf)
    ends = [end for _, end in spans if origin + end <= turn_end]
    if not ends:  # our segmenter heard nothing in the recording that Pipecat's turn answered
        return PeerRun("", "no question")
    speech_end = origin + ends[-1]

    def first_after(name: str) -> float | None:
        return next((t for t, kind, _ in events if kind == name and t > turn_end), None)

    def last_before(name: str) -> float | None:
        return max((t for t, kind, _ in events if kind == name and previous < t <= turn_end), default=None)

    milestones = {
        "vad_stop": last_before("vad_stop"),
        "transcript": last_before("transcript"),
        "turn_end": turn_end,
        "llm_first_token": first_after("llm_token"),
        "sentence_1": first_after("sentence"),
        "first_audio": next((t for t, s, _ in audio if t > turn_end and _audible(s)), None),
    }
    offsets = {name: t - speech_end for name, t in milestones.items() if t is not None}
    heard = " ".join(text.strip() for t, kind, text in events if kind == "transcript" and previous < t <= turn_end)
    theses = [text.strip() for t, text in spoken if t > turn_end]
    answer = [(samples, rate) for t, samples, rate in audio if t > turn_end]
    output = _to_16k(answer)
    result = PeerRun(
        heard.strip(),
        "answered" if "first_audio" in offsets else (stop if stop != "answered" else "no theses"),
        offsets,
        theses,
        output_audio_s=len(output) / SAMPLE_RATE,
        output_peak=float(np.abs(output).max()) if len(output) else 0.0,
        output_speech_s=_speech_seconds(output, detector),
    )
    return result


def _to_16k(chunks: list[tuple[np.ndarray, int]]) -> np.ndarray:
    from cluelypro.audio.io import to_mono_16k

    if not chunks:
        return np.zeros(0, dtype=np.float32)
    rate = chunks[0][1]
    return to_mono_16k(np.concatenate([samples for samples, _ in chunks]), rate)


def _speech_seconds(audio: np.ndarray, detector: Any) -> float:
    """Seconds of `audio` (16 kHz) our Silero VAD scores as speech (probability 0.5 or more)."""
    size = detector.frame_samples
    detector.reset()
    voiced = sum(
        detector.speech_probability(audio[start : start + size]) >= 0.5
        for start in range(0, len(audio) - size + 1, size)
    )
    detector.reset()
    return voiced * size / SAMPLE_RATE


if __name__ == "__main__":
    sys.exit(main())
