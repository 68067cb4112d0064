"""`cluelypro serve`'s API against a real server on 127.0.0.1 (a free port), over real HTTP and
WebSockets (httpx, websockets): the server's own logic around the real Pipeline, with the
harness's scripted engines (they implement the real protocols) — events, status, settings,
controls, profiles, the browser audio path and its limits, and the security model. Fake API keys
are set and must appear in no response or message. The slow tests run the real `cluelypro
serve --input` process with the embedded engines, and an enrolment with the real CAM++."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from cluelypro import secrets
from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.config import SAMPLE_RATE
from cluelypro.metrics.events import Device
from cluelypro.metrics.timeline import Clock, Timeline
from cluelypro.speaker.profiles import VoiceProfile, save_profile
from cluelypro.web import browser_audio
from cluelypro.web.app import serve_in_thread
from cluelypro.web.browser_audio import MAX_FRAME_BYTES, to_pcm16
from cluelypro.web.runtime import Route, WebPrompter
from cluelypro.web.security import COOKIE, Policy, ensure_certificate
from conftest import RU_AUDIO
from harness.engines import ScriptedDetector, ScriptedEmbedder, ScriptedLLM, speech
from harness.run import Harness

FAKE_KEYS = {"OPENAI_API_KEY": "sk-test-web0123456789abcdef", "GEMINI_API_KEY": "sk-test-gemini0123456789"}
LINES = {1: "Что такое фотосинтез?", 2: "Почему небо голубое?", 3: "Вчера я долго гулял по набережной у реки."}
REPLIES = {
    "фотосинтез": "1. Растения превращают свет в энергию сахаров.\n2. Хлорофилл поглощает красный и синий свет.\n",
    "небо": "1. Свет рассеивается на молекулах воздуха.\n2. Синий рассеивается сильнее красного.\n",
    "набережной": "1. Прогулка у реки успокаивает.\n",
}
SEEN: list[str] = []  # every response body and message of this file, checked for the keys at the end
FRAME_S = 0.1
PAGE_A = {"X-CluelyPro-Client": "page-a"}  # the page holding the audio


# --- a server in a thread ------------------------------------------------------------------------


def make_prompter(route: Route | None = None, events: Path | None = None, **overrides: Any) -> WebPrompter:
    """A server's prompter around the harness's scripted engines, with fake keys in its settings."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_KEYS.items():
            env.setenv(name, value)
        settings = {"thesis_repeats": 3, **overrides}
        harness = Harness(LINES, llms=[ScriptedLLM(REPLIES)], embedder=ScriptedEmbedder(), **settings)
    secrets.register(*harness.settings.secrets())
    return WebPrompter(harness.settings, harness.engines(), Clock(), Timeline(events), route, detector=ScriptedDetector)


def seen(text: str) -> str:
    SEEN.append(text)
    return text


HTTP = httpx.Client(timeout=10)  # one client: making an SSL context per request costs ~40 ms


def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    if "verify" in kwargs:
        response = httpx.request(method, url, timeout=10, **kwargs)
    else:
        cookies = kwargs.pop("cookies", None)
        if cookies:  # per request, not kept in the shared client
            kwargs.setdefault("headers", {})["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        response = HTTP.request(method, url, **kwargs)
        HTTP.cookies.clear()
    seen(response.text + json.dumps(dict(response.headers)))
    return response


def ws_url(base: str, path: str) -> str:
    """The WebSocket address of `path` (an audio socket is opened with max_queue=None: a test that
    stops reading its PCM must not stall the client's close handshake)."""
    return base.replace("http", "ws", 1) + path


def receive(socket_: ClientConnection, timeout: float = 5.0) -> str | bytes:
    message = socket_.recv(timeout=timeout)
    if isinstance(message, str):
        seen(message)
    return message


def close_code(socket_: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """The code and reason the server closed the socket with."""
    try:
        while True:
            socket_.recv(timeout=timeout)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        seen(closed.rcvd.reason)
        return closed.rcvd.code, closed.rcvd.reason


def hello(socket_: ClientConnection, client: str = "page-a") -> None:
    socket_.send(json.dumps({"type": "hello", "rate": SAMPLE_RATE, "client": client}))
    assert json.loads(receive(socket_)) == {"type": "ready"}


def say(socket_: ClientConnection, line: int, seconds: float = 0.8, quiet_s: float = 0.6) -> None:
    """Speak harness line `line` into the socket, 100 ms frames of int16 PCM, four times faster
    than real time (the segmenter counts samples; the server's clock only runs ahead)."""
    audio = np.concatenate([speech(line, seconds), np.zeros(round(quiet_s * SAMPLE_RATE), np.float32)])
    step = round(FRAME_S * SAMPLE_RATE)
    for start in range(0, len(audio), step):
        socket_.send(to_pcm16(audio[start : start + step]))
        time.sleep(FRAME_S / 4)


def events_of(base: str, name: str) -> list[dict]:
    return [e for e in call("GET", base + "/api/events").json() if e["event"] == name]


def wait_until(condition: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return result


# --- the browser audio path, with the events stream watched all along --------------------------


class Watcher(threading.Thread):
    """Collects every /ws/events message until the stream is quiet after `stop()`."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.url = ws_url(base, "/ws/events")
        self.messages: list[dict] = []
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        with connect(self.url) as events:
            self.connected.set()
            while True:
                try:
                    message = events.recv(timeout=0.5)
                except TimeoutError:
                    if self.stopping.is_set():
                        return
                    continue
                self.messages.append(json.loads(seen(str(message))))

    def start_watching(self) -> None:
        self.start()
        assert self.connected.wait(10), "the events socket did not connect"

    def stop(self) -> list[dict]:
        self.stopping.set()
        self.join(10)
        return self.messages


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A question asked through /ws/audio; once its answer plays, a second question interrupts it."""
    events_path = tmp_path_factory.mktemp("web") / "events.jsonl"
    prompter = make_prompter(events=events_path)
    with serve_in_thread(prompter) as base:
        watcher = Watcher(base)
        watcher.start_watching()
        got: dict[str, Any] = {"base": base, "events_path": events_path, "pcm": [], "after_flush": []}
        with connect(ws_url(base, "/ws/audio"), max_queue=None) as audio:
            hello(audio)
            say(audio, 1)
            while not isinstance(message := receive(audio, 10), bytes):
                pass
            got["pcm"].append(message)
            status = lambda: call("GET", base + "/api/status").json()  # noqa: E731
            # with early speech, thesis 1 plays from its first words before its `thesis` event
            got["status_speaking"] = wait_until(lambda: (now := status())["plan"] and now, "a plan")
            say(audio, 2)
            while (message := receive(audio, 10)) != json.dumps({"type": "flush"}):
                if isinstance(message, bytes):
                    got["pcm"].append(message)
            while not isinstance(message := receive(audio, 10), bytes):
                pass
            got["after_flush"].append(message)
            assert call("POST", base + "/api/control/stop", headers={"X-CluelyPro-Client": "page-a"}).status_code == 200
        time.sleep(0.3)  # the last events of the hushed answer
        got["live"] = watcher.stop()
        got["events"] = call("GET", base + "/api/events").json()
        got["status"] = call("GET", base + "/api/status").json()
        with connect(ws_url(base, "/ws/events")) as replay:
            got["replayed"] = [json.loads(str(receive(replay))) for _ in got["events"]]
        yield got


def test_browser_audio_question_in_pcm_out_and_a_flush_on_interruption(exchange: dict[str, Any]) -> None:
    events = exchange["events"]
    heard = [e["text"] for e in events if e["event"] == "asr"]
    assert heard[:2] == [LINES[1], LINES[2]]
    assert [e["q"] for e in events if e["event"] == "interrupted"] == [2]
    assert {e["q"] for e in events if e["event"] == "playback_start"} == {1, 2}
    for frame in exchange["pcm"] + exchange["after_flush"]:
        assert 0 < len(frame) <= MAX_FRAME_BYTES and len(frame) % 2 == 0
        level = np.frombuffer(frame, "<i2").astype(np.float32) / 32768
        assert np.allclose(level, 0.3, atol=1e-3)  # the scripted synthesiser's audio, as sent
    print(f"\nPCM frames before the flush: {len(exchange['pcm'])}, after: {len(exchange['after_flush'])}")


def test_events_get_equals_the_jsonl_file_and_the_websocket_replays_then_streams(exchange: dict[str, Any]) -> None:
    events = exchange["events"]
    written = [json.loads(line) for line in exchange["events_path"].read_text(encoding="utf-8").splitlines()]
    assert events == written
    assert exchange["replayed"] == events
    assert exchange["live"] == events  # connected before the first event: all of them, live
    assert {"speech_start", "speech_end", "segment", "asr", "question", "thesis", "playback_start"} <= {
        e["event"] for e in events
    }


def test_status_shape_plan_chains_keys_and_latency(exchange: dict[str, Any]) -> None:
    speaking, final = exchange["status_speaking"], exchange["status"]
    assert set(final) == {
        "mode",
        "listening",
        "muted",
        "audio_client",
        "read_only",
        "profile",
        "devices",
        "chains",
        "keys",
        "settings",
        "plan",
        "latency",
    }
    assert (final["mode"], final["listening"], final["muted"], final["profile"]) == ("browser", False, False, None)
    assert speaking["audio_client"] is True and speaking["devices"]["input"] == "browser page"
    assert final["keys"]["OPENAI_API_KEY"] == "set" and final["keys"]["CEREBRAS_API_KEY"] == "not set"
    assert {row["engine"]: row["state"] for row in final["chains"]["llm"]} == {"scripted-llm": "ready"}
    plan = speaking["plan"]
    assert plan["q"] == 1 and plan["text"] == LINES[1]
    assert [t["index"] for t in plan["theses"]] in ([1], [1, 2])  # thesis 2 may still be being written
    assert plan["theses"][0]["state"] in ("speaking", "said") and plan["theses"][0]["engine"] == "scripted-llm"
    assert {t["state"] for t in final["plan"]["theses"]} <= {"pending", "speaking", "said"}
    assert final["plan"]["q"] == 2
    assert final["latency"]["count"] == 2 and final["latency"]["p50"] is not None


def test_skip_cuts_the_thesis_playing_and_repeat_says_the_last_one_again() -> None:
    with (
        serve_in_thread(make_prompter(thesis_repeats=1)) as base,
        connect(ws_url(base, "/ws/audio"), max_queue=None) as audio,
    ):
        hello(audio)
        say(audio, 1)
        while not isinstance(receive(audio, 10), bytes):
            pass
        assert call("POST", base + "/api/control/skip", headers=PAGE_A).status_code == 200  # thesis 1, while it plays
        wait_until(lambda: events_of(base, "playback_start")[-1]["index"] == 2, "thesis 2 playing")
        ends = [e for e in events_of(base, "playback_end") if e["index"] == 1]
        assert len(ends) == 1, "thesis 1 was cut off, not played to its end and again"
        started = next(e for e in events_of(base, "playback_start") if e["index"] == 1)
        assert ends[0]["t"] >= started["t"]  # where it was cut, on the input clock
        assert call("POST", base + "/api/control/repeat", headers=PAGE_A).status_code == 200
        plays = lambda: [e["index"] for e in events_of(base, "playback_start")]  # noqa: E731
        wait_until(lambda: plays().count(2) == 2, "thesis 2 said again")
        wait_until(lambda: len(events_of(base, "playback_end")) == 3, "everything said")
        wait_until(
            lambda: all(t["state"] == "said" for t in call("GET", base + "/api/status").json()["plan"]["theses"]),
            "said",
        )
        assert call("POST", base + "/api/control/repeat", headers=PAGE_A).status_code == 200  # after the end too
        wait_until(lambda: plays().count(2) == 3, "thesis 2 said a third time")
        refused = call("POST", base + "/api/control/skip", headers=PAGE_A)
        assert refused.status_code == 409 and refused.json()["detail"] == "no thesis is left"
        assert plays() == [1, 2, 2, 2]


def test_chains_report_an_engine_resting_after_a_failure_as_cooling_down() -> None:
    from cluelypro.web.status import chain_states

    prompter = make_prompter()
    llm = prompter.engines.llms[0]
    prompter.stage_chains.llm.breaker(llm).failed()
    rows = chain_states(prompter.settings, prompter.engines, prompter.stage_chains)
    assert rows["llm"] == [{"engine": "scripted-llm", "state": "cooling down", "reason": rows["llm"][0]["reason"]}]
    assert rows["asr"][0]["state"] == "ready" and rows["llm"][0]["reason"]


# --- controls, settings, profiles -----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLUELYPRO_DATA_DIR", str(data))
        with serve_in_thread(make_prompter()) as base:
            yield base


@pytest.fixture
def data_dir(server: str) -> Path:
    """The server's data folder (profiles), set for the module."""
    return Path(os.environ["CLUELYPRO_DATA_DIR"])


def test_controls_answer_200_with_status_and_409_when_not_applicable(server: str) -> None:
    stopped = call("POST", server + "/api/control/stop")
    assert stopped.status_code == 200 and stopped.json()["ok"] is True and stopped.json()["listening"] is False
    assert call("POST", server + "/api/control/stop").status_code == 200  # idempotent
    assert call("POST", server + "/api/control/start").json()["listening"] is True
    assert call("POST", server + "/api/control/mute").json()["muted"] is True
    assert call("POST", server + "/api/control/unmute").json()["muted"] is False
    for action in ("repeat", "skip"):
        refused = call("POST", server + f"/api/control/{action}")
        assert refused.status_code == 409 and "no answer" in refused.json()["detail"]
    assert call("POST", server + "/api/control/dance").status_code == 404


def test_page_files_are_served_and_cannot_shadow_the_api(server: str) -> None:
    assert call("GET", server + "/no-such-module.js").status_code == 404
    assert call("GET", server + "/static/no-such-module.js").status_code == 404
    assert call("GET", server + "/api/status").status_code == 200
    index = call("GET", server + "/")
    assert index.status_code in (200, 404)  # 404 until the page is installed
    if index.status_code == 200:
        assert "text/html" in index.headers["content-type"]


def test_mode_switch_is_refused_where_it_cannot_be_done(server: str) -> None:
    assert call("POST", server + "/api/mode", json={"audio": "local"}).status_code == 409  # no devices here
    assert call("POST", server + "/api/mode", json={"audio": "radio"}).status_code == 422
    assert call("POST", server + "/api/mode", json={"audio": "browser"}).status_code == 200  # already


def test_settings_patch_validated_by_the_settings_model(server: str) -> None:
    before = call("GET", server + "/api/settings").json()
    assert set(before) == {
        "advance_policy",
        "commentary_mode",
        "question_filter_mode",
        "tts_voice",
        "tts_speed",
        "voices",
    }
    changed = call("PATCH", server + "/api/settings", json={"advance_policy": "until-said", "tts_speed": 1.5})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["advance_policy"], changed.json()["tts_speed"]) == ("until-said", 1.5)
    assert call("GET", server + "/api/status").json()["settings"]["advance_policy"] == "until-said"
    for bad in (
        {"advance_policy": "sometimes"},
        {"tts_speed": 10},
        {"question_filter_mode": "llm-ish"},
        {"tts_voice": "nobody"},
        {"llm_model": "other"},  # not editable here
        [1, 2],
    ):
        refused = call("PATCH", server + "/api/settings", json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["detail"]
    assert call("PATCH", server + "/api/settings", content=b"{not json").status_code == 422
    huge = json.dumps({"advance_policy": "repeat", "pad": "x" * 17_000})
    assert call("PATCH", server + "/api/settings", content=huge).status_code == 413
    assert call("GET", server + "/api/settings").json()["tts_speed"] == 1.5


def test_settings_apply_to_the_running_pipeline_from_the_next_question() -> None:
    with serve_in_thread(make_prompter()) as base, connect(ws_url(base, "/ws/audio"), max_queue=None) as page:
        hello(page)
        say(page, 3)  # a statement: the heuristic filter lets it go
        wait_until(lambda: events_of(base, "question"), "the statement judged")
        assert [(e["accepted"], e["reason"]) for e in events_of(base, "question")] == [(False, "statement")]
        changed = call("PATCH", base + "/api/settings", json={"question_filter_mode": "all"}, headers=PAGE_A)
        assert changed.status_code == 200
        say(page, 3)
        wait_until(lambda: events_of(base, "thesis"), "the same statement answered")
        assert [e["accepted"] for e in events_of(base, "question")] == [False, True]
        assert events_of(base, "thesis")[0]["text"] == "Прогулка у реки успокаивает."


@pytest.mark.slow
def test_voice_and_speed_go_to_the_real_rhvoice_from_the_next_thesis() -> None:
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    prompter = make_prompter()
    voice = RhVoiceSynthesizer("anna")
    voice.load()
    prompter.engines.synthesizers[:] = [voice]
    with serve_in_thread(prompter) as base:
        installed = call("GET", base + "/api/settings").json()["voices"]
        assert {"anna", "aleksandr"} <= set(installed)
        changed = call("PATCH", base + "/api/settings", json={"tts_voice": "aleksandr", "tts_speed": 1.4})
        assert changed.status_code == 200
        assert (voice.voice, voice.speed, voice.name) == ("aleksandr", 1.4, "rhvoice:aleksandr")
        refused = call("PATCH", base + "/api/settings", json={"tts_voice": "nobody"})
        assert refused.status_code == 422 and "aleksandr" in refused.json()["detail"]
    voice.close()


def _profile(name: str) -> VoiceProfile:
    embedder = ScriptedEmbedder()
    return VoiceProfile(name, embedder.name, embedder.version, 2, np.array([1.0, 0.0], np.float32), "2026-12-03")


def test_profiles_list_use_delete(server: str, data_dir: Path) -> None:
    save_profile(_profile("alice"))
    listed = call("GET", server + "/api/profiles").json()
    assert {"name": "alice", "active": False, "threshold": 0.5, "created": "2026-12-03"} in listed
    used = call("POST", server + "/api/profiles/alice/use")
    assert used.status_code == 200 and used.json()["profile"] == {"name": "alice", "threshold": 0.5}
    assert [p["active"] for p in call("GET", server + "/api/profiles").json() if p["name"] == "alice"] == [True]
    assert call("POST", server + "/api/profiles/nobody/use").status_code == 404
    assert call("POST", server + "/api/profiles/bad*name/use").status_code == 422
    assert call("DELETE", server + "/api/profiles/alice").status_code == 200
    assert call("GET", server + "/api/status").json()["profile"] is None
    assert call("DELETE", server + "/api/profiles/alice").status_code == 404


def _wav(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_enrol_from_an_uploaded_wav_and_its_limits(server: str, data_dir: Path) -> None:
    text = call("GET", server + "/api/enrol/text").json()
    assert text["seconds"] == 25 and "булок" in text["text"]
    stereo_44k = np.stack([speech(3, 15.0, 44_100)] * 2, axis=1)  # any rate, stereo
    enrolled = call("POST", server + "/api/profiles/me/enrol", content=_wav(stereo_44k, 44_100))
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    assert body["name"] == "me" and 0.45 <= body["threshold"] <= 0.55
    assert {"min", "p5", "median", "pieces"} <= set(body["spread"]) and "warning" in body
    assert (data_dir / "profiles" / "me.json").is_file()
    assert call("GET", server + "/api/status").json()["profile"]["name"] == "me"
    short = call("POST", server + "/api/profiles/me2/enrol", content=_wav(speech(3, 3.0)))
    assert short.status_code == 422 and "speech" in short.json()["detail"]
    assert call("POST", server + "/api/profiles/me/enrol", content=b"RIFF not a wav").status_code == 422
    too_big = call("POST", server + "/api/profiles/me/enrol", content=b"\0" * (8 * 1024 * 1024 + 2))
    assert too_big.status_code == 413
    assert call("POST", server + "/api/profiles/bad*name/enrol", content=_wav(speech(3, 1.0))).status_code == 422
    call("DELETE", server + "/api/profiles/me")


# --- the audio socket's limits --------------------------------------------------------------------


def test_audio_socket_limits_close_only_that_socket(server: str) -> None:
    url = ws_url(server, "/ws/audio")
    with connect(url) as socket_:
        hello(socket_)
        socket_.send(b"\0" * (MAX_FRAME_BYTES + 2))
        assert close_code(socket_) == (1009, "frame too large")
    with connect(url) as socket_:
        hello(socket_)
        socket_.send(b"\0" * 321)
        assert close_code(socket_)[0] == 1007
    with connect(url) as socket_:
        hello(socket_)
        socket_.send("{not json")
        assert close_code(socket_)[0] == 1007
    with connect(url) as socket_:
        socket_.send("hello?")
        assert close_code(socket_)[0] == 1007
    with connect(url) as first:
        hello(first, "page-a")
        with connect(url) as second:
            assert close_code(second) == (4409, "another audio client is connected")
        status = call("GET", server + "/api/status", headers={"X-CluelyPro-Client": "page-b"}).json()
        assert status["audio_client"] is True and status["read_only"] is True
        refused = call("POST", server + "/api/control/mute", headers={"X-CluelyPro-Client": "page-b"})
        assert refused.status_code == 409 and refused.json()["detail"] == "read-only: another page holds the audio"
        assert (
            call("PATCH", server + "/api/settings", json={}, headers={"X-CluelyPro-Client": "page-b"}).status_code
            == 409
        )
        assert call("POST", server + "/api/control/mute", headers={"X-CluelyPro-Client": "page-a"}).status_code == 200
        call("POST", server + "/api/control/unmute", headers={"X-CluelyPro-Client": "page-a"})
    wait_until(lambda: not call("GET", server + "/api/status").json()["audio_client"], "the page let go")
    with connect(url) as again:  # the prompter went on
        hello(again, "page-c")


def test_audio_socket_without_hello_is_closed_and_lets_go(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_audio, "HELLO_WITHIN_S", 0.3)
    with connect(ws_url(server, "/ws/audio"), max_queue=None) as silent:
        assert close_code(silent)[0] == 1008
    with connect(ws_url(server, "/ws/audio"), max_queue=None) as page:
        hello(page)


def test_an_events_client_too_slow_is_closed_1013_and_the_others_go_on() -> None:
    prompter = make_prompter()
    prompter.fanout.queue_size = 3
    with serve_in_thread(prompter) as base, connect(ws_url(base, "/ws/events")) as slow:
        loop = prompter.fanout._loop
        assert loop is not None
        burst = lambda: [prompter.timeline.emit(Device("input", "lost", "mic"), 0.0) for _ in range(20)]  # noqa: E731
        loop.call_soon_threadsafe(burst)
        assert close_code(slow)[0] == 1013
        with connect(ws_url(base, "/ws/events")) as fresh:  # the backlog, then live
            assert [json.loads(str(receive(fresh)))["event"] for _ in range(20)] == ["device"] * 20
        assert len(call("GET", base + "/api/events").json()) == 20


def test_mode_switch_between_local_and_browser_keeps_the_pipeline() -> None:
    """The switch itself (a stand-in local route: this machine has no sound devices; the devices
    are `run`'s, tested there)."""
    prompter = make_prompter()
    clock = prompter.clock

    def local() -> Route:
        return Route("local", _silence, TrackEarpiece(clock, 0, keep=False), devices={"input": "mic", "output": "ear"})

    prompter._local = local
    pipeline = prompter.pipeline
    with serve_in_thread(prompter) as base:
        switched = call("POST", base + "/api/mode", json={"audio": "local"})
        assert switched.status_code == 200 and switched.json()["mode"] == "local"
        assert switched.json()["devices"] == {"input": "mic", "output": "ear"}
        with connect(ws_url(base, "/ws/audio"), max_queue=None) as refused:
            assert close_code(refused)[0] == 4400
        assert call("POST", base + "/api/mode", json={"audio": "browser"}).json()["mode"] == "browser"
        with connect(ws_url(base, "/ws/audio"), max_queue=None) as page:
            hello(page)
            say(page, 1)
            wait_until(lambda: events_of(base, "thesis"), "an answer after switching back")
    assert prompter.pipeline is pipeline


def test_audio_socket_outside_browser_mode_is_closed_4400() -> None:
    clock = Clock()
    route = Route("input", lambda: _silence(), TrackEarpiece(clock, 0, keep=False))
    with serve_in_thread(make_prompter(route)) as base, connect(ws_url(base, "/ws/audio"), max_queue=None) as socket_:
        assert close_code(socket_) == (4400, "not in browser mode")
        assert call("GET", base + "/api/status").json()["mode"] == "input"


async def _silence() -> Any:
    while True:
        await asyncio.sleep(0.1)
        yield np.zeros(1600, np.float32)


# --- security --------------------------------------------------------------------------------------


def test_host_header_must_be_loopback_and_origin_must_match(server: str) -> None:
    assert call("GET", server + "/api/status", headers={"Host": "evil.example:8765"}).status_code == 403
    assert call("GET", server + "/api/status", headers={"Host": "localhost:1"}).status_code == 200
    origin = server  # http://127.0.0.1:PORT, the origin served
    with connect(ws_url(server, "/ws/events"), origin=origin) as fine:  # type: ignore[arg-type]
        fine.ping().wait(5)
    with connect(ws_url(server, "/ws/events"), origin="http://evil.example") as bad:  # type: ignore[arg-type]
        assert close_code(bad)[0] == 4403
    with connect(ws_url(server, "/ws/audio"), origin="https://127.0.0.1.evil.example") as bad:  # type: ignore[arg-type]
        assert close_code(bad)[0] == 4403
    response = call("GET", server + "/api/status", headers={"Origin": "http://evil.example"})
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_off_loopback_every_request_needs_the_token() -> None:
    token = "tok-" + "x" * 30
    policy = Policy(loopback=False, token=token)
    with serve_in_thread(make_prompter(), policy) as base:
        assert call("GET", base + "/api/status").status_code == 401
        assert call("GET", base + "/api/status?token=wrong").status_code == 401
        assert call("GET", base + "/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert call("GET", base + "/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        first = call("GET", base + f"/api/status?token={token}")
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert call("GET", base + "/api/events", cookies={COOKIE: token}).status_code == 200
        assert call("GET", base + "/api/events", cookies={COOKIE: "wrong"}).status_code == 401
        with connect(ws_url(base, "/ws/events")) as refused:
            assert close_code(refused)[0] == 4401
        with connect(ws_url(base, "/ws/events?token=wrong")) as refused:
            assert close_code(refused)[0] == 4401
        with connect(ws_url(base, "/ws/events"), additional_headers={"Cookie": f"{COOKIE}={token}"}) as allowed:
            allowed.ping().wait(5)
        with connect(ws_url(base, f"/ws/audio?token={token}")) as allowed:
            hello(allowed)
    SEEN[:] = [text.replace(token, "") for text in SEEN]  # the test's own token is not a key


def test_https_with_the_self_signed_certificate(tmp_path: Path) -> None:
    token = "tok-" + "y" * 30
    policy = Policy(loopback=False, token=token, tls=True, certificate=ensure_certificate("127.0.0.1", tmp_path))
    with serve_in_thread(make_prompter(), policy) as base:
        assert base.startswith("https://")
        assert call("GET", base + "/api/status", verify=False).status_code == 401
        allowed = call("GET", base + f"/api/status?token={token}", verify=False)
        assert allowed.status_code == 200 and "; Secure" in allowed.headers["set-cookie"]
    SEEN[:] = [text.replace(token, "") for text in SEEN]


def test_self_signed_certificate_made_once_with_a_private_key(tmp_path: Path) -> None:
    cert, key = ensure_certificate("192.168.1.20", tmp_path)
    if sys.platform != "win32":  # Windows has no mode bits: the file gets its folder's access rules
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    made = cert.read_bytes(), key.read_bytes()
    assert ensure_certificate("192.168.1.20", tmp_path) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == made  # reused, not made again
    from cryptography import x509

    names = x509.load_pem_x509_certificate(made[0]).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "192.168.1.20" in {str(name) for name in names.value.get_values_for_type(x509.IPAddress)}
    assert Policy.for_host("127.0.0.1") == Policy(loopback=True)


def test_no_key_in_any_response_or_message() -> None:
    assert len(SEEN) > 50
    everything = "\n".join(SEEN)
    for value in FAKE_KEYS.values():
        assert value not in everything
    assert "sk-test-" not in everything


# --- the real thing (slow) ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_real_serve_input_process_answers_a_recorded_question(tmp_path: Path) -> None:
    """`cluelypro serve --input` with the embedded engines: the recorded question is answered
    (a thesis, a playback), seen through /api/events; Ctrl+C ends it cleanly."""
    port = _free_port()
    env = {**os.environ, "CLUELYPRO_DATA_DIR": str(tmp_path / "data"), **FAKE_KEYS}
    command = [sys.executable, "-m", "cluelypro.cli", "serve", "--input", str(RU_AUDIO / "golos_00.wav")]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--output", str(tmp_path / "ear.wav")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.communicate()}")
            try:
                names = {e["event"] for e in httpx.get(base + "/api/events", timeout=2).json()}
            except httpx.TransportError:
                return False
            return {"thesis", "playback_start"} <= names

        wait_until(answered, "a thesis and its playback", timeout=300)
        status = httpx.get(base + "/api/status").json()
        assert status["mode"] == "input" and status["plan"]["theses"]
        seen(httpx.get(base + "/api/events").text + json.dumps(status))
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in out + err
    assert re.search(r"open http://127\.0\.0\.1:\d+/", out) and "stopped" in out
    assert (tmp_path / "ear.wav").is_file()
    for value in FAKE_KEYS.values():
        assert value not in out + err


@pytest.mark.slow
def test_enrol_through_the_api_with_the_real_campplus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cluelypro.audio.io import read_audio
    from cluelypro.engines import make_embedder
    from cluelypro.vad.engines import make_detector

    monkeypatch.setenv("CLUELYPRO_DATA_DIR", str(tmp_path))
    prompter = make_prompter()
    embedder = make_embedder("campplus")
    embedder.load()
    prompter.engines.embedder = embedder
    prompter._detector = lambda: make_detector("silero")
    clips = sorted(RU_AUDIO.glob("golos_*.wav"))
    reading = np.concatenate([read_audio(clip) for clip in clips])  # ≥ 12 s voiced (not one voice,
    with serve_in_thread(prompter) as base:  # so the spread is wide: a warning is fine)
        enrolled = HTTP.post(base + "/api/profiles/reader/enrol", content=_wav(reading), timeout=120)
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["name"] == "reader"
        assert call("GET", base + "/api/status").json()["profile"]["name"] == "reader"
