"""What the browser audio route itself adds to voice-to-voice, with the engines' time taken out.

A measurement, not a test. The same pipeline configuration hears the same recordings through two
routes, one after the other, in this process:

- file: as `cluelypro run --input X` — the real `Pipeline`, the file replayed in real time
  (`replay_file`), a `TrackEarpiece`; voice-to-voice from its timeline (SPEC §3a: first
  playback_start t − speech_end t);
- browser: as `cluelypro serve --audio browser` — the real `WebPrompter` and server on
  127.0.0.1, and a real headless Chromium (Debian's, through Playwright, at nice N) whose fake
  microphone plays X into the page (`?autostart=1&aec=0&ns=0&agc=0`): the page's capture
  worklet → /ws/audio → pipeline → /ws/audio → the page's playback worklet.

The engines are STAND-INS whose time does not depend on the CPU, so that a difference between the
routes is the route's, not the engines' (with the real engines on two shared cores, ASR and the
LLM's first token vary by up to a second between runs and swamp a 100 ms difference). They
implement the real protocols (asr/base.py, llm/base.py, tts/base.py): the recogniser returns the
clip's transcript after ASR_S, the LLM streams two fixed theses after LLM_FIRST_TOKEN_S, the
synthesiser yields a tone after TTS_FIRST_AUDIO_S. What decides when speech has ended stays
real: the Silero VAD and the segmenter, with the default END_SILENCE_MS and speculation.
Settings: question_filter_mode=all, thesis_repeats=1, deepening_max_depth=0, context_window_s=0.

Each recording is written with BEFORE_S of silence (Chromium starts meanwhile), a MARKER (a 5 ms
1 kHz burst, the only sound before the speech) MARKER_BEFORE_S ahead of the clip, and AFTER_S
after it; both routes get that same file. Figures, per recording and run:

- timeline v2v on each route; and the end of speech confirmed (segment − speech_end);
- browser, true v2v as the user lives it: when the page made the answer audible (its playback
  worklet started it, plus the context's output latency) − when the question's speech ended in
  the world. The world's clock: the capture worklet stamps Date.now() when the marker's first
  sample reaches it; the speech ended (x_end − x_marker) later, x_end being the speech_end the
  file route's segmenter finds in the file (the same for every run of a recording);
- its decomposition, all in unix time on this machine's one clock: upload (world speech end →
  the frame holding that sample received by the server; the server-side stamp wraps
  BrowserAudio's frame queue) → segment (the end confirmed) → playback_start → the answer's first
  PCM frame received by the page → audible;
- the interruption: the earpiece stopped (POST /api/control/mute, as an interruption stops it)
  → the page's playback silent (flush message → first silent quantum).

Offline, for the end of speech: the real Silero VAD and segmenter over the file and over the
audio the server received (aligned on the marker), each with its 32 ms frames at 16 phases
(a microphone starts at any phase; the file route always at 0): when the end was found, when the
pause was offered to the speculative ASR (which starts the answer) and when the end was confirmed.

Each run gets a fresh pipeline (and, for the browser, a fresh server and Chromium): each starts
idle, as each `run` does; the first pipeline of the process is a warm-up, not counted.

Limits: the world's clock starts at the capture worklet, so Chromium's capture buffering before
it (its track reports `latency` 10 ms) is not in the upload; "audible" takes Chromium's reported
`outputLatency` on trust (there is no loudspeaker here); the server-side stamp relies on
BrowserAudio's `_queues` (a measurement, not an interface).

`--jitter MS` sets the page's playback buffer (`?jitter=`, 30 ms by default).
`--pulse` also asks PortAudio, through a private PulseAudio (tests/pulse.py, null sinks), for the
input and output latencies of the streams `run` opens live (not counted by a file replay).

    .venv/bin/python scripts/web_route_cost.py [--clips golos_00 ohf_02 ohf_07 golos_06]
        [--repeats 3] [--nice-browser 19] [--jitter MS] [--pulse] [--out /tmp/web-route-cost]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluelypro.audio.earpiece import TrackEarpiece  # noqa: E402
from cluelypro.audio.io import open_input, read_audio, stream_audio  # noqa: E402
from cluelypro.audio.sources import replay_file  # noqa: E402
from cluelypro.config import SAMPLE_RATE, Settings  # noqa: E402
from cluelypro.engines import Engines  # noqa: E402
from cluelypro.metrics.timeline import Clock, Record, Timeline  # noqa: E402
from cluelypro.pipeline.pipeline import Pipeline  # noqa: E402
from cluelypro.vad.engines import make_detector  # noqa: E402
from cluelypro.vad.segmenter import SpeechEnded, SpeechPaused, segmenter_for  # noqa: E402
from cluelypro.web.app import serve_in_thread  # noqa: E402
from cluelypro.web.browser_audio import BrowserAudio  # noqa: E402
from cluelypro.web.runtime import WebPrompter  # noqa: E402
from test_web_browser import chromium_args  # noqa: E402
from web_latency import browser_executable, interrupt_and_read_stats  # noqa: E402 (scripts/ is on the path: this script's folder)

AUDIO = ROOT.parent / "shared" / "audio" / "ru"
CLIPS = ["golos_00", "ohf_02", "ohf_07", "golos_06"]
BEFORE_S, AFTER_S = 8.0, 7.0
MARKER_BEFORE_S = 3.0  # the marker this long before the clip
MARKER_S, MARKER_HZ, MARKER_LEVEL = 0.005, 1000.0, 0.5
LOUD = 0.05  # the capture worklet's MARK: the first sample above it is the marker's
ASR_S, LLM_FIRST_TOKEN_S, TTS_FIRST_AUDIO_S = 0.3, 0.4, 0.1
THESES = "1. Первый тезис ответа и его суть.\n2. Второй тезис ответа.\n"
ANSWER_WITHIN_S = 40.0
SETTINGS = {
    "question_filter_mode": "all",
    "thesis_repeats": 1,
    "deepening_max_depth": 0,
    "context_window_s": 0.0,
}


# --- fixed-delay stand-ins (the engine protocols; their time does not depend on the CPU) --------


class FixedRecognizer:
    name = "fixed-asr"
    remote = False

    def __init__(self, text: str, delay_s: float = ASR_S) -> None:
        self.text, self.delay_s = text, delay_s

    def load(self, progress: Any = None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def transcribe(self, audio: np.ndarray) -> str:
        time.sleep(self.delay_s)
        return self.text


class FixedLLM:
    name = "fixed-llm"
    remote = False

    def __init__(self, reply: str = THESES, first_token_s: float = LLM_FIRST_TOKEN_S) -> None:
        self.reply, self.first_token_s = reply, first_token_s

    def load(self, progress: Any = None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        time.sleep(self.first_token_s)
        for start in range(0, len(self.reply), 6):
            yield self.reply[start : start + 6]


class FixedSynthesizer:
    """A 220 Hz tone, 0.06 s per character of the thesis, in 50 ms chunks after a fixed delay."""

    name = "fixed-tts"
    remote = False
    sample_rate = SAMPLE_RATE

    def __init__(self, first_audio_s: float = TTS_FIRST_AUDIO_S) -> None:
        self.first_audio_s = first_audio_s

    def load(self, progress: Any = None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        time.sleep(self.first_audio_s)
        chunk = round(0.05 * SAMPLE_RATE)
        n = np.arange(round(0.06 * len(text) * SAMPLE_RATE))
        tone = (0.3 * np.sin(2 * np.pi * 220.0 * n / SAMPLE_RATE)).astype(np.float32)
        for start in range(0, len(tone), chunk):
            yield tone[start : start + chunk]


def engines(text: str) -> Engines:
    """A fresh real Silero detector (the end of speech stays real) and the stand-ins."""
    return Engines(make_detector("silero"), [FixedRecognizer(text)], [FixedLLM()], [FixedSynthesizer()], None)


def settings() -> Settings:
    return Settings(_env_file=None, **SETTINGS)


# --- recordings ---------------------------------------------------------------------------------


def transcripts() -> dict[str, str]:
    lines = (AUDIO / "transcripts.tsv").read_text().splitlines()
    return {name.removesuffix(".wav"): text for name, text in (line.split("\t", 1) for line in lines if "\t" in line)}


def recording(clip: str, folder: Path) -> tuple[Path, float]:
    """The clip with silence around it and the marker before it (16-bit WAV); the marker's offset."""
    speech = read_audio(AUDIO / f"{clip}.wav")
    audio = np.zeros(round((BEFORE_S + AFTER_S) * SAMPLE_RATE) + len(speech), np.float32)
    clip_at = round(BEFORE_S * SAMPLE_RATE)
    audio[clip_at : clip_at + len(speech)] = speech
    marker_at = clip_at - round(MARKER_BEFORE_S * SAMPLE_RATE)
    n = np.arange(round(MARKER_S * SAMPLE_RATE))
    audio[marker_at : marker_at + len(n)] = MARKER_LEVEL * np.sin(2 * np.pi * MARKER_HZ * n / SAMPLE_RATE)
    path = folder / f"{clip}.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    written = sf.read(path, dtype="float32")[0]
    first_loud = int(np.argmax(np.abs(written) > LOUD))
    return path, first_loud / SAMPLE_RATE


# --- the timeline -------------------------------------------------------------------------------


def first(events: list[dict[str, Any]], name: str, **fields: Any) -> dict[str, Any] | None:
    return next((e for e in events if e["event"] == name and all(e.get(k) == v for k, v in fields.items())), None)


def answered(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """speech_end, segment, asr, llm_first_token, tts_first_audio, playback_start of the first
    question answered (its first playback_start), or None."""
    play = next((e for e in events if e["event"] == "playback_start" and e["q"] is not None), None)
    if play is None:
        return None
    utt = first(events, "question", q=play["q"])["utt"]  # type: ignore[index]
    found = {
        "speech_end": first(events, "speech_end", utt=utt),
        "segment": first(events, "segment", utt=utt),
        "asr": first(events, "asr", utt=utt),
        "llm_first_token": first(events, "llm_first_token", q=play["q"]),
        "tts_first_audio": first(events, "tts_first_audio", q=play["q"]),
        "playback_start": play,
    }
    return found if all(found.values()) else None  # type: ignore[return-value]


def since_speech_end(found: dict[str, dict[str, Any]]) -> dict[str, float]:
    end = found["speech_end"]["t"]
    return {name: round(event["t"] - end, 4) for name, event in found.items() if name != "speech_end"}


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --- the file route (as `run --input`) -------------------------------------------------------------


async def _replay(path: Path, text: str) -> list[dict[str, Any]]:
    clock, timeline, lines = Clock(), Timeline(), []

    def keep(record: Record) -> None:
        lines.append(record.line())

    timeline.subscribe(keep)
    audio = open_input(path)
    with TrackEarpiece(clock, audio.samples, keep=False) as earpiece:
        pipeline = Pipeline(settings(), engines(text), clock, timeline, earpiece, None)
        await pipeline.run(replay_file(stream_audio(audio), clock))
    timeline.close()
    return lines


def file_route(path: Path, text: str) -> dict[str, Any]:
    before = loadavg()
    box: list[list[dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: box.append(asyncio.run(_replay(path, text))))
    worker.start()  # a thread of its own: Playwright's sync API holds this one's event loop
    worker.join()
    events = box[0] if box else []
    found = answered(events)
    if found is None:
        return {"v2v": None, "load": before}
    stages = since_speech_end(found)
    return {
        "v2v": stages["playback_start"],
        "speech_end_t": found["speech_end"]["t"],
        "stages": stages,
        "segment_to_playback": stages["playback_start"] - stages["segment"],
        "load": before,
    }


# --- the browser route (as `serve --audio browser`, a real Chromium) -------------------------------


class StampedQueue(asyncio.Queue):  # type: ignore[type-arg]
    """The server's queue of the page's frames, noting when each arrived (unix time)."""

    def __init__(self, maxsize: int, arrivals: list[tuple[float, np.ndarray]]) -> None:
        super().__init__(maxsize)
        self.arrivals = arrivals

    def put_nowait(self, item: np.ndarray) -> None:
        self.arrivals.append((time.time(), item))
        super().put_nowait(item)


class StampedBrowserAudio(BrowserAudio):
    """BrowserAudio whose microphone queue stamps each frame as the socket hands it over."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.arrivals: list[tuple[float, np.ndarray]] = []

    def _queues(self):  # type: ignore[no-untyped-def]
        if self._frames is None or self._outgoing is None:
            self._frames = StampedQueue(round(10.0 * SAMPLE_RATE / 320), self.arrivals)
            self._outgoing = asyncio.Queue()
        return self._frames, self._outgoing


def received_with_marker(arrivals: list[tuple[float, np.ndarray]]) -> tuple[np.ndarray, int] | None:
    """Everything the server received, and the index of the marker's first loud sample in it."""
    if not arrivals:
        return None
    audio = np.concatenate([frame for _, frame in arrivals])
    loud = np.flatnonzero(np.abs(audio) > LOUD)
    return (audio, int(loud[0])) if len(loud) else None


def arrival_of(arrivals: list[tuple[float, np.ndarray]], x_marker: float, x: float) -> float | None:
    """When the frame holding file offset `x` reached the server: the received audio is aligned
    on the marker (its first loud sample), so no assumption is made on what the page lost
    before its socket was ready."""
    received = received_with_marker(arrivals)
    if received is None:
        return None
    wanted = received[1] + round((x - x_marker) * SAMPLE_RATE)
    position = 0
    for wall, frame in arrivals:
        position += len(frame)
        if position > wanted:
            return wall
    return None


def frame_lags(
    arrivals: list[tuple[float, np.ndarray]], sound_wall: float, x_marker: float, until: float
) -> list[float]:
    """For each frame from the marker to file offset `until`: when it reached the server minus
    when its last sample was captured in the world (the upload of that frame)."""
    received = received_with_marker(arrivals)
    if received is None:
        return []
    lags, position = [], 0
    for wall, frame in arrivals:
        position += len(frame)
        x = x_marker + (position - 1 - received[1]) / SAMPLE_RATE
        if x_marker <= x <= until:
            lags.append(wall - (sound_wall + x - x_marker))
    return lags


def received_audio(arrivals: list[tuple[float, np.ndarray]], x_marker: float) -> np.ndarray | None:
    """What the server received, aligned on the marker so that sample n is file offset n/16000."""
    received = received_with_marker(arrivals)
    if received is None:
        return None
    audio, marker = received
    shift = marker - round(x_marker * SAMPLE_RATE)
    return audio[shift:] if shift >= 0 else np.concatenate([np.zeros(-shift, np.float32), audio])


def browser_route(
    pw: Any,
    executable: Path,
    path: Path,
    x_marker: float,
    x_end: float | None,
    text: str,
    save: Path,
    page_params: str = "",
) -> dict[str, Any]:
    before = loadavg()
    clock = Clock()
    browser_audio = StampedBrowserAudio(clock)
    timeline = Timeline()
    web = WebPrompter(settings(), engines(text), clock, timeline, None, browser=browser_audio)
    result: dict[str, Any] = {"v2v": None, "load": before}
    with serve_in_thread(web) as base:
        browser = pw.chromium.launch(executable_path=str(executable), args=chromium_args(path))
        result["chromium"] = browser.version
        try:
            page = browser.new_page()
            errors: list[str] = []
            result["page_errors"] = errors
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(f"{base}/?autostart=1&aec=0&ns=0&agc=0{page_params}")
            page.wait_for_function("window.cluelypro && window.cluelypro.stats().audioReady", timeout=60_000)
            deadline = time.monotonic() + ANSWER_WITHIN_S
            found = None
            while found is None and time.monotonic() < deadline:
                time.sleep(0.2)
                found = answered([r.line() for r in list(timeline.events)])
            if found is None:
                return result
            stats = interrupt_and_read_stats(page, base)
            track = page.evaluate(
                "(() => { const s = window.cluelypro.audio.mic.stream.getAudioTracks()[0].getSettings();"
                " return {latency: s.latency ?? null, sampleRate: s.sampleRate ?? null}; })()"
            )
        finally:
            browser.close()
    received = received_audio(browser_audio.arrivals, x_marker)
    if received is not None:
        sf.write(save, received, SAMPLE_RATE, subtype="FLOAT")
    stages = since_speech_end(found)
    play_wall = found["playback_start"]["wall"]
    audible = [w for w in stats["audibleWalls"] if w >= play_wall - 0.5]
    came = [w for w in stats["receivedWalls"] if w >= play_wall - 0.5]
    sound = stats["capture"].get("sound")
    result.update(
        v2v=stages["playback_start"],
        stages=stages,
        flush_ms=stats["flushDelays"][0] if stats["flushDelays"] else None,
        context=stats["context"],
        track=track,
        capture=stats["capture"],
        server_flush_ms=1000 * browser_audio.flush_delays[0] if browser_audio.flush_delays else None,
    )
    if sound is None or x_end is None or not audible or not came:
        return result
    world_end = sound["wall"] + (x_end - x_marker)  # when the question's speech ended, in the world
    arrived = arrival_of(browser_audio.arrivals, x_marker, x_end)
    segment_wall = found["segment"]["wall"]
    lags = frame_lags(browser_audio.arrivals, sound["wall"], x_marker, x_end + 0.5)
    result.update(
        frame_upload_p50=p50(lags),  # type: ignore[arg-type]
        frame_upload_max=max(lags) if lags else None,
        true_v2v=audible[0] - world_end,
        upload=None if arrived is None else arrived - world_end,
        arrived_to_segment=None if arrived is None else segment_wall - arrived,
        segment_to_playback=play_wall - segment_wall,
        playback_to_received=came[0] - play_wall,
        received_to_audible=audible[0] - came[0],
        first_frame_minus_first_input=stats["capture"]["firstFrame"]["wall"] - stats["capture"]["first"]["wall"]
        if "firstFrame" in stats["capture"] and "first" in stats["capture"]
        else None,
    )
    return result


# --- the end of speech, offline: VAD frame phase and the route's audio ------------------------

PHASES = range(0, 512, 32)  # samples of silence before the audio: where Silero's 32 ms frames fall


def end_points(audio: np.ndarray, phase: int) -> tuple[float, float | None, float] | None:
    """The real Silero VAD and segmenter (the pipeline's settings) over `audio` with `phase`
    samples of silence before it: the first utterance's speech_end, when its pause was offered
    for speculation (the ASR starts then) and when its end was confirmed (segment), in seconds
    of `audio`."""
    detector = make_detector("silero")
    segmenter = segmenter_for(settings(), detector.frame_samples)
    shifted = np.concatenate([np.zeros(phase, np.float32), audio.astype(np.float32)])
    size, paused, back = detector.frame_samples, None, phase / SAMPLE_RATE
    for start in range(0, len(shifted) - size + 1, size):
        frame = shifted[start : start + size]
        for event in segmenter.push(frame, detector.speech_probability(frame)):
            if isinstance(event, SpeechPaused):
                paused = segmenter.now - back
            elif isinstance(event, SpeechEnded) and event.utterance is not None:
                return event.end - back, paused, segmenter.now - back
            elif isinstance(event, SpeechEnded):
                paused = None
    return None


def phase_study(audio: np.ndarray, x_end: float) -> dict[str, Any]:
    """Over PHASES: the speech end found, and when the pause and the end were told, minus x_end."""
    found = [end_points(audio, phase) for phase in PHASES]
    kept = [f for f in found if f is not None]
    return {
        "speech_end": [round(f[0] - x_end, 4) for f in kept],
        "paused": [None if f[1] is None else round(f[1] - x_end, 4) for f in kept],
        "segment": [round(f[2] - x_end, 4) for f in kept],
    }


# --- PortAudio's latencies on a private PulseAudio ---------------------------------------------

PROBE = """
import json
from cluelypro.audio.devices import open_input_stream, open_output_stream
streams = {}
for kind, opener in (("input", open_input_stream), ("output", open_output_stream)):
    stream, name = opener(None, lambda *args: None)
    stream.start()
    streams[kind] = {"device": name, "latency_s": stream.latency, "samplerate": stream.samplerate,
                     "blocksize": stream.blocksize}
    stream.stop()
    stream.close()
print(json.dumps(streams))
"""


def pulse_latencies() -> dict[str, Any]:
    from pulse import PulseServer, pulseaudio_installed

    if not pulseaudio_installed():
        return {"error": "pulseaudio is not installed"}
    with PulseServer(["room", "earpiece"]) as pulse:
        env = pulse.client_env(PULSE_SOURCE="room.monitor", PULSE_SINK="earpiece")
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
        if done.returncode:
            return {"error": done.stderr[-1000:]}
        return json.loads(done.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------------


def p50(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def ms(value: float | None) -> str:
    return "—" if value is None else f"{1000 * value:6.0f}"


ROWS = [
    ("file: timeline v2v", "file", "v2v"),
    ("file: segment − speech_end", "file", ("stages", "segment")),
    ("browser: timeline v2v", "browser", "v2v"),
    ("browser: segment − speech_end (timeline)", "browser", ("stages", "segment")),
    ("browser: TRUE v2v (audible − world speech end)", "browser", "true_v2v"),
    ("  upload: world speech end → frame at server", "browser", "upload"),
    ("  frame at server → segment", "browser", "arrived_to_segment"),
    ("  segment → playback_start", "browser", "segment_to_playback"),
    ("  playback_start → PCM received by the page", "browser", "playback_to_received"),
    ("  PCM received → audible", "browser", "received_to_audible"),
    ("file: segment → playback_start", "file", "segment_to_playback"),
]


def value(run: dict[str, Any], key: str | tuple[str, str]) -> float | None:
    if isinstance(key, tuple):
        return run.get(key[0], {}).get(key[1])
    return run.get(key)


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    clips = list(results)
    lines = [f"{'ms, p50 of the runs':52}" + "".join(f"{c:>10}" for c in clips) + f"{'all p50':>10}"]
    for label, route, key in ROWS:
        cells, pooled = [], []
        for clip in clips:
            values = [value(run, key) for run in results[clip][route]]
            pooled += values
            cells.append(ms(p50(values)))
        lines.append(f"{label:52}" + "".join(f"{c:>10}" for c in cells) + f"{ms(p50(pooled)):>10}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=CLIPS, help="recordings of ../shared/audio/ru, without .wav")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nice-browser", type=int, default=19, help="Chromium's nice level (0-19)")
    parser.add_argument("--pulse", action="store_true", help="also PortAudio's latencies on a private PulseAudio")
    parser.add_argument("--jitter", type=int, help="the page's ?jitter=MS (its playback buffer; default: the page's)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/web-route-cost"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    texts = transcripts()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()}")
    executable = browser_executable(args.out, args.nice_browser)
    with sync_playwright() as pw:
        warm = file_route(*recording(args.clips[0], args.out)[:1], texts.get(args.clips[0], ""))
        print(f"warm-up (not counted: the first pipeline of the process) file {json.dumps(warm)}")
        for clip in args.clips:
            path, x_marker = recording(clip, args.out)
            text = texts.get(clip, "сколько это стоит")
            results[clip] = {"file": [], "browser": []}
            for k in range(args.repeats):
                for_file = file_route(path, text)
                if for_file["v2v"] is not None:
                    for_file["segment_to_playback"] = (
                        for_file["stages"]["playback_start"] - for_file["stages"]["segment"]
                    )
                results[clip]["file"].append(for_file)
                print(f"{clip} #{k + 1} file    {json.dumps(for_file)}", flush=True)
                ends = [r["speech_end_t"] for r in results[clip]["file"] if r.get("speech_end_t") is not None]
                x_end = ends[0] if ends else None  # the file route's speech_end: offset in the file
                save = args.out / f"received-{clip}-{k + 1}.wav"
                extra = "" if args.jitter is None else f"&jitter={args.jitter}"
                on_page = browser_route(pw, executable, path, x_marker, x_end, text, save, extra)
                results[clip]["browser"].append(on_page)
                print(f"{clip} #{k + 1} browser {json.dumps(on_page)}", flush=True)
    phases: dict[str, Any] = {}
    for clip in results:
        ends = [r["speech_end_t"] for r in results[clip]["file"] if r.get("speech_end_t") is not None]
        if not ends:
            continue
        x_end = ends[0]
        file_audio = sf.read(args.out / f"{clip}.wav", dtype="float32")[0]
        at_zero = end_points(file_audio, 0)
        studies = [phase_study(file_audio, x_end)]
        for k in range(args.repeats):
            received = args.out / f"received-{clip}-{k + 1}.wav"
            if received.exists():
                studies.append(phase_study(sf.read(received, dtype="float32")[0], x_end))
        phases[clip] = {
            "file_phase0": None if at_zero is None else [None if v is None else round(v - x_end, 4) for v in at_zero],
            "file": studies[0],
            "received": {key: [v for study in studies[1:] for v in study[key]] for key in studies[0]},
        }
        study = phases[clip]
        zero = ms(at_zero[1] - x_end if at_zero and at_zero[1] is not None else None)
        print(
            f"end of speech, {clip} (ms after x_end, p50 over {len(PHASES)} frame phases): pause told: file "
            f"{ms(p50(study['file']['paused']))} (phase 0: {zero}), received {ms(p50(study['received']['paused']))}; "
            f"speech_end: file {ms(p50(study['file']['speech_end']))}, "
            f"received {ms(p50(study['received']['speech_end']))}"
        )
    pulse = pulse_latencies() if args.pulse else None
    pooled = {
        route: [r for clip in results.values() for r in clip[route]] for route in ("file", "browser")
    }  # fmt: skip
    file_p50 = p50([r["v2v"] for r in pooled["file"]])
    true_p50 = p50([r.get("true_v2v") for r in pooled["browser"]])
    paired = [
        p50([r.get("true_v2v") for r in results[c]["browser"]]) - p50([r["v2v"] for r in results[c]["file"]])  # type: ignore[operator]
        for c in results
        if p50([r.get("true_v2v") for r in results[c]["browser"]]) is not None
        and p50([r["v2v"] for r in results[c]["file"]]) is not None
    ]
    summary = {
        "file_timeline_v2v_p50": file_p50,
        "browser_timeline_v2v_p50": p50([r["v2v"] for r in pooled["browser"]]),
        "browser_true_v2v_p50": true_p50,
        "route_added_p50": None if file_p50 is None or true_p50 is None else true_p50 - file_p50,
        "route_added_per_recording": paired,
        "flush_to_silent_ms_p50": p50([r.get("flush_ms") for r in pooled["browser"]]),
        "flush_ms_all": [r.get("flush_ms") for r in pooled["browser"]],
        "server_flush_ms_p50": p50([r.get("server_flush_ms") for r in pooled["browser"]]),
        "browser_nice": args.nice_browser,
        "page_jitter_ms": args.jitter,
        "stand_ins": {"asr_s": ASR_S, "llm_first_token_s": LLM_FIRST_TOKEN_S, "tts_first_audio_s": TTS_FIRST_AUDIO_S},
        "load_end": loadavg(),
        "pulse": pulse,
        "end_of_speech_offline": phases,
    }
    (args.out / "web_route_cost.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1))
    print()
    print(table(results))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
