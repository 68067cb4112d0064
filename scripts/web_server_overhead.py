"""What `cluelypro serve` itself adds to the prompter's latency, with scripted engines (the
harness's: they implement the real protocols and take no CPU), on a real server on 127.0.0.1:

- earpiece chunk due → its first byte sent on /ws/audio (server side: the BrowserEarpiece hands
  a chunk over when it is due, LEAD_S ahead of its playing time; the sender records when the
  socket has taken it), for every chunk and for each question's first chunk;
- interruption → {"type": "flush"} sent (server side: the earpiece's stop() → the socket took it);
- timeline emit → /ws/events message: on the socket (server side), and received (client side:
  receive time − the line's `wall`, the same machine's clock).

Over N questions (default 20) asked in real time through /ws/audio, each interrupting the
previous answer while it plays. Prints medians and p95 in milliseconds.

    .venv/bin/python scripts/web_server_overhead.py [--questions 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cluelypro.config import SAMPLE_RATE  # noqa: E402
from cluelypro.metrics.timeline import Clock, Timeline  # noqa: E402
from cluelypro.web.app import serve_in_thread  # noqa: E402
from cluelypro.web.browser_audio import to_pcm16  # noqa: E402
from cluelypro.web.runtime import WebPrompter  # noqa: E402
from harness.engines import ScriptedDetector, ScriptedLLM, speech  # noqa: E402
from harness.run import Harness  # noqa: E402

TOPICS = [
    "фотосинтез", "гравитация", "инфляция", "демократия", "эволюция", "вулкан", "атом", "клетка",
    "электричество", "магнетизм", "энтропия", "алгоритм", "иммунитет", "климат", "рынок", "язык",
    "память", "сон", "звезда", "океан", "ветер", "металл", "вирус", "налог",
]  # fmt: skip
FRAME_S = 0.02  # the page's frames: 20 ms


def prompter(questions: int) -> WebPrompter:
    topics = TOPICS[:questions]
    lines = {k + 1: f"Что такое {topic}?" for k, topic in enumerate(topics)}
    replies = {topic: f"1. Первый тезис про {topic} и его суть.\n2. Второй тезис про {topic}.\n" for topic in topics}
    harness = Harness(lines, llms=[ScriptedLLM(replies)], thesis_repeats=3)
    return WebPrompter(harness.settings, harness.engines(), Clock(), Timeline(), None, detector=ScriptedDetector)


def percentiles_ms(values: list[float]) -> str:
    if not values:
        return "—"
    p50, p95 = np.percentile(np.array(values) * 1000, [50, 95])
    return f"p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20)
    count = min(parser.parse_args().questions, len(TOPICS))
    web = prompter(count)
    event_delays: list[float] = []
    first_chunk: list[float] = []
    with serve_in_thread(web) as base:
        url = base.replace("http", "ws", 1)
        stop = threading.Event()
        connected = threading.Event()

        def watch_events() -> None:
            with connect(url + "/ws/events") as events:
                connected.set()
                while not stop.is_set():
                    try:
                        line = json.loads(events.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    event_delays.append(time.time() - line["wall"])

        watcher = threading.Thread(target=watch_events, daemon=True)
        watcher.start()
        connected.wait(10)
        with connect(url + "/ws/audio") as audio:
            audio.send(json.dumps({"type": "hello", "rate": SAMPLE_RATE, "client": "overhead"}))
            assert json.loads(audio.recv(timeout=5)) == {"type": "ready"}
            for line in range(1, count + 1):
                sent_before = len(web.browser.sent_delays)
                question = np.concatenate([speech(line, 0.8), np.zeros(round(0.6 * SAMPLE_RATE), np.float32)])
                step = round(FRAME_S * SAMPLE_RATE)
                for start in range(0, len(question), step):
                    audio.send(to_pcm16(question[start : start + step]))
                    time.sleep(FRAME_S)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # until this answer is heard
                    message = audio.recv(timeout=10)
                    if isinstance(message, bytes):
                        break
                time.sleep(0.3)  # let it play a little, then the next question interrupts it
                delays = list(web.browser.sent_delays)
                if len(delays) > sent_before:
                    first_chunk.append(delays[sent_before])
            httpx.post(base + "/api/control/stop", headers={"X-CluelyPro-Client": "overhead"})
            latency = httpx.get(base + "/api/status").json()["latency"]
        time.sleep(0.5)
        stop.set()
        watcher.join(5)
    print(f"questions asked: {count} (scripted engines, real server on 127.0.0.1, this machine)")
    print(f"earpiece chunk due → sent on /ws/audio, every chunk:   {percentiles_ms(list(web.browser.sent_delays))}")
    print(f"earpiece chunk due → sent, first chunk of each answer: {percentiles_ms(first_chunk)}")
    print(f"interruption (earpiece stop) → flush sent:             {percentiles_ms(list(web.browser.flush_delays))}")
    print(f"timeline emit → /ws/events message sent (server):      {percentiles_ms(list(web.fanout.sent_delays))}")
    print(f"timeline emit → /ws/events message received (client):  {percentiles_ms(event_delays)}")
    print(f"voice-to-voice over the browser path (scripted engines): p50 {latency['p50']:.3f} s, n={latency['count']}")


if __name__ == "__main__":
    main()
