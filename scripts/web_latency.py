"""What the browser path adds to voice-to-voice latency, with the real engines, on this machine.

For N recordings of ../shared/audio/ru (each with 8 s of silence before, so that Chromium has
started before the question, and 20 s after; 16-bit WAV):

1. `cluelypro run --input X --events A.jsonl` (real-time replay): voice-to-voice from A.jsonl
   (SPEC §3a: first playback_start − speech_end of the utterance that asked);
2. one `cluelypro serve --audio browser` on 127.0.0.1, and for each recording a Chromium
   (Debian's, via Playwright) whose fake microphone plays X into the page (?autostart=1&aec=0…):
   voice-to-voice from /api/events (each recording starts once the previous answer is over, no
   event for 3 s, as each `run` starts idle), and from the page (window.cluelypro.stats()):
   - page-side delay: the answer's first PCM frame received → audible (the playback worklet
     starts it, plus the context's output latency);
   - audible − playback_start: when the page made it audible (unix time) minus the `wall` of the
     server's playback_start (the same machine's clock);
   - flush: after the answer starts, POST /api/control/mute (the earpiece's stop, as an
     interruption does) → ms from the {"type": "flush"} message to the worklet's first silent
     quantum.

With --nice-browser N, Chromium runs at that nice level: on 2 cores, a browser beside the engines
takes CPU from llama.cpp, which is contention, not the path (a phone's browser takes none).
With --client ws, a Python client speaks the page's /ws/audio protocol instead of Chromium (the
recording in 20 ms frames at real time, as the capture worklet sends them): the path's server
side and socket with the engines' CPU left alone; it reports when the answer's first PCM frame
was received, minus playback_start.

Both paths run with question_filter_mode=all (any recording is answered), thesis_repeats=1,
deepening_max_depth=0 (shorter runs; the first playback is unchanged) and context_window_s=0 (the
one serve hears every clip; with context, a clip's prompt would hold the one before, and the LLM
would read a longer prompt than under `run`). Each clip's stages (seconds after speech_end: ASR,
first token, first audio, playback start) are printed for both paths: the route can change only
the end-of-speech confirmation (`segment`, from audio as it arrived) and playback_start after
tts_first_audio; the rest is the engines' time. Prints medians and writes
a JSON file.

    .venv/bin/python scripts/web_latency.py [--clips golos_00 ohf_02 ...] [--out /tmp/web-latency]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf
from websockets.typing import Origin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_web_browser import CHROMIUM, chromium_args, free_port, question_wav  # noqa: E402

AUDIO = ROOT.parent / "shared" / "audio" / "ru"
CLIPS = ["golos_00", "ohf_02", "ohf_06", "ohf_07", "golos_06"]
ANSWER_WITHIN_S = 90.0  # a clip the model answers with «0» (not a question) is given up after this
FRAME = 320  # 20 ms at 16 kHz, as the page's capture worklet sends
ENV = {
    "QUESTION_FILTER_MODE": "all",
    "THESIS_REPEATS": "1",
    "DEEPENING_MAX_DEPTH": "0",
    "CONTEXT_WINDOW_S": "0",  # one serve hears every clip: no clip becomes the next one's context
}


def recording(clip: str, folder: Path) -> Path:
    return question_wav(folder / f"{clip}.wav", before_s=8.0, after_s=20.0, clip=AUDIO / f"{clip}.wav")


def voice_to_voice(events: list[dict[str, Any]], after_q: int = 0) -> tuple[int, float, dict[str, Any]] | None:
    """(q, latency s, its first playback_start) of the first question after `after_q` answered."""
    speech_end = {e["utt"]: e["t"] for e in events if e["event"] == "speech_end"}
    asked = {e["q"]: e["utt"] for e in events if e["event"] == "question" and e.get("accepted") and e["q"]}
    for event in events:
        if event["event"] == "playback_start" and event["q"] is not None and event["q"] > after_q:
            utt = asked.get(event["q"])
            if utt in speech_end:
                return event["q"], event["t"] - speech_end[utt], event
    return None


STAGES = ("segment", "asr", "llm_first_token", "tts_first_audio", "playback_start")


def stages(events: list[dict[str, Any]], q: int) -> dict[str, float]:
    """Seconds from speech_end to each stage's first event for question `q` (SPEC §3a): what the
    engines took (asr, llm_first_token, tts_first_audio) against what a route can change (the end
    of speech confirmed from the audio as it arrived: segment; the earpiece: playback_start)."""
    utt = next(e["utt"] for e in events if e["event"] == "question" and e["q"] == q)
    end = next(e["t"] for e in events if e["event"] == "speech_end" and e["utt"] == utt)
    found: dict[str, float] = {}
    for event in events:
        name = event["event"]
        if (
            name in STAGES
            and name not in found
            and (event["utt"] == utt if name in ("segment", "asr") else event["q"] == q)
        ):
            found[name] = round(event["t"] - end, 3)
    return found


def env() -> dict[str, str]:
    return {**os.environ, **ENV}


run_stages: dict[str, dict[str, float]] = {}


def run_path(clips: list[Path], folder: Path) -> dict[str, float | None]:
    results: dict[str, float | None] = {}
    for clip in clips:
        events = folder / f"run-{clip.stem}.jsonl"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "cluelypro.cli", "run", "--input", str(clip), "--events", str(events)],
            capture_output=True,
            text=True,
            env=env(),
            cwd=folder,
            timeout=600,
        )
        lines = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
        found = voice_to_voice(lines)
        results[clip.stem] = found[1] if found else None
        if found:
            run_stages[clip.stem] = stages(lines, found[0])
        took = time.monotonic() - started
        print(f"run   {clip.stem}: voice-to-voice {fmt(results[clip.stem])} ({took:.0f} s, rc {done.returncode})")
    return results


def wait_until_quiet(base: str, quiet_s: float = 3.0, cap_s: float = 120.0) -> None:
    """Until the timeline has had no event for `quiet_s` (the LLM done writing, the theses said)."""
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        events = httpx.get(base + "/api/events").json()
        if events and time.time() - events[-1]["wall"] >= quiet_s:
            return
        time.sleep(0.5)


def browser_executable(folder: Path, nice: int) -> Path:
    """Debian's Chromium, or a wrapper that starts it at `nice` (its children inherit it)."""
    if not nice:
        return CHROMIUM
    wrapper = folder / "chromium-nice.sh"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {nice} "{CHROMIUM}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """One `cluelypro serve --audio browser` on 127.0.0.1 for all the clips; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (folder / "serve.log").open("w")
    command = [sys.executable, "-m", "cluelypro.cli", "serve", "--audio", "browser", "--port", str(port)]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=folder)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start: {(folder / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/api/status", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def await_answer(base: str, after_q: int) -> tuple[int, float, dict[str, Any]] | None:
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while time.monotonic() < deadline:
        time.sleep(0.3)
        found = voice_to_voice(httpx.get(base + "/api/events").json(), after_q)
        if found is not None:
            return found
    return None


def interrupt_and_read_stats(page: Any, base: str) -> dict[str, Any]:
    """Once the page plays the answer, stop the earpiece as an interruption does (mute: the server
    sends `flush`), wait for the page to measure the flush, unmute, and return the page's stats."""
    page.wait_for_function("window.cluelypro.stats().starts >= 1", timeout=10_000)
    time.sleep(0.5)  # the answer plays
    headers = {"X-CluelyPro-Client": page.evaluate("window.cluelypro.clientId")}
    httpx.post(base + "/api/control/mute", headers=headers).raise_for_status()
    page.wait_for_function("window.cluelypro.stats().flushDelays.length >= 1", timeout=10_000)
    httpx.post(base + "/api/control/unmute", headers=headers).raise_for_status()
    return page.evaluate("window.cluelypro.stats()")


def browser_path(clips: list[Path], folder: Path, nice: int = 0) -> dict[str, dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, Any]] = {}
    last_q = 0
    executable = browser_executable(folder, nice)
    with serving(folder) as base, sync_playwright() as pw:
        for clip in clips:
            browser = pw.chromium.launch(executable_path=str(executable), args=chromium_args(clip))
            try:
                page = browser.new_page()
                page.goto(f"{base}/?autostart=1&aec=0&ns=0&agc=0")
                page.wait_for_function("window.cluelypro && window.cluelypro.stats().audioReady", timeout=30_000)
                found = await_answer(base, last_q)
                if found is None:
                    print(f"page  {clip.stem}: no answer in {ANSWER_WITHIN_S:.0f} s")
                    results[clip.stem] = {"voice_to_voice": None}
                    continue
                q, latency, first_play = found
                last_q = q
                stats = interrupt_and_read_stats(page, base)
                wait_until_quiet(base)  # as each `run` starts idle: the answer fully written and said
                events = httpx.get(base + "/api/events").json()
                audible = [w for w in stats["audibleWalls"] if w >= first_play["wall"] - 0.5]
                results[clip.stem] = {
                    "voice_to_voice": latency,
                    "page_delay_ms": stats["pageDelays"][0] if stats["pageDelays"] else None,
                    "audible_minus_playback_start_ms": (audible[0] - first_play["wall"]) * 1000 if audible else None,
                    "flush_ms": stats["flushDelays"][0],
                    "context": stats["context"],
                    "stages": stages(events, q),
                }
                print(f"page  {clip.stem}: {json.dumps(results[clip.stem])}")
            finally:
                browser.close()
    return results


class SocketClient:
    """The page's /ws/audio protocol without a browser: hello, then the recording in 20 ms int16
    frames at real time (silence once it ends), and the wall time of every PCM frame received."""

    def __init__(self, base: str, clip: Path) -> None:
        from websockets.sync.client import connect

        audio, rate = sf.read(clip, dtype="int16")
        assert rate == 16000, rate
        self.frames = [audio[i : i + FRAME].tobytes() for i in range(0, len(audio), FRAME)]
        url = base.replace("http", "ws", 1) + "/ws/audio"
        self.stack = ExitStack()
        self.socket = self.stack.enter_context(connect(url, origin=Origin(base), max_size=None))
        self.socket.send(json.dumps({"type": "hello", "rate": 16000, "client": "web-latency"}))
        self.received: list[tuple[float, int]] = []  # (wall time, samples) of each PCM frame
        self.flushes: list[float] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.send_frames), threading.Thread(target=self.receive)]
        for thread in self.threads:
            thread.start()

    def send_frames(self) -> None:
        started = time.monotonic()
        silence = bytes(2 * FRAME)
        n = 0
        while not self.stopping.is_set():
            self.socket.send(self.frames[n] if n < len(self.frames) else silence)
            n += 1
            time.sleep(max(0.0, started + n * FRAME / 16000 - time.monotonic()))

    def receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for message in self.socket:
                if isinstance(message, bytes):
                    self.received.append((time.time(), len(message) // 2))
                elif json.loads(message).get("type") == "flush":
                    self.flushes.append(time.time())
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.stopping.set()
        self.threads[0].join()
        self.stack.close()
        self.threads[1].join()


def socket_path(clips: list[Path], folder: Path) -> dict[str, dict[str, Any]]:
    """The browser path's server side, with a client that takes no CPU worth counting."""
    results: dict[str, dict[str, Any]] = {}
    last_q = 0
    with serving(folder) as base:
        for clip in clips:
            client = SocketClient(base, clip)
            try:
                found = await_answer(base, last_q)
                if found is None:
                    print(f"ws    {clip.stem}: no answer in {ANSWER_WITHIN_S:.0f} s")
                    results[clip.stem] = {"voice_to_voice": None}
                    continue
                q, latency, first_play = found
                last_q = q
                wait_until_quiet(base)
                events = httpx.get(base + "/api/events").json()
                since = first_play["wall"] - 0.5
                received = [wall for wall, _ in client.received if wall >= since]
                results[clip.stem] = {
                    "voice_to_voice": latency,
                    "received_minus_playback_start_ms": (received[0] - first_play["wall"]) * 1000 if received else None,
                    "stages": stages(events, q),
                }
                print(f"ws    {clip.stem}: {json.dumps(results[clip.stem])}")
            finally:
                client.close()
    return results


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=CLIPS, help="recordings of ../shared/audio/ru, without .wav")
    parser.add_argument("--out", type=Path, default=Path("/tmp/web-latency"))
    parser.add_argument("--skip-run", action="store_true", help="only the browser path")
    parser.add_argument("--nice-browser", type=int, default=0, help="run Chromium at this nice level (0-19)")
    parser.add_argument(
        "--client",
        choices=["chromium", "ws"],
        default="chromium",
        help="the page in Chromium, or a Python client speaking its /ws/audio protocol (no browser CPU)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clips = [recording(clip, args.out) for clip in args.clips]
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.client == "ws":
        browser = socket_path(clips, args.out)
    else:
        browser = browser_path(clips, args.out, args.nice_browser)
    run = {} if args.skip_run else run_path(clips, args.out)
    pairs = [(run.get(c.stem), browser[c.stem]["voice_to_voice"]) for c in clips if c.stem in browser]
    both = [(r, b) for r, b in pairs if r is not None and b is not None]
    summary = {
        "run_p50": median([r for r, _ in pairs]),
        "browser_p50": median([b for _, b in pairs]),
        "difference_p50": median([b - r for r, b in both]),
        "page_delay_ms_p50": median([v.get("page_delay_ms") for v in browser.values()]),
        "audible_minus_playback_start_ms_p50": median(
            [v.get("audible_minus_playback_start_ms") for v in browser.values()]
        ),
        "flush_ms_p50": median([v.get("flush_ms") for v in browser.values()]),
        "received_minus_playback_start_ms_p50": median(
            [v.get("received_minus_playback_start_ms") for v in browser.values()]
        ),
        "client": args.client,
        "browser_nice": args.nice_browser,
        "load_before": load,
        "load_after": os.getloadavg(),
    }
    for clip in clips:
        if clip.stem in run_stages and "stages" in browser.get(clip.stem, {}):
            print(f"stages {clip.stem}: run {run_stages[clip.stem]}")
            print(f"stages {clip.stem}: {args.client} {browser[clip.stem]['stages']}")
    (args.out / "web_latency.json").write_text(
        json.dumps({"run": run, "run_stages": run_stages, "browser": browser, "summary": summary}, indent=1)
    )
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
