"""The page of `cluelypro serve` in a real Chromium (Debian's /usr/bin/chromium, driven by
Playwright), against real `cluelypro serve` processes with the real engines on 127.0.0.1.

Browser mode: Chromium's fake microphone plays a recorded Russian question (written here into a
16-bit WAV with silence around it); the page sends it over /ws/audio, the server answers, and
the page plays the answer through its AudioWorklet and measures its own output (through a
MediaStreamAudioDestinationNode). A second page gets read-only; settings and a shortcut go
round trip. Dashboard mode over `serve --input`: theses and the latency waterfall, and the
page on a phone's screen without horizontal scrolling. One server per class (the engines load
once); every test saves a screenshot into its tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from cluelypro.audio.io import read_audio
from cluelypro.config import SAMPLE_RATE
from conftest import RU_AUDIO

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = RU_AUDIO / "golos_00.wav"  # «шестьдесят тысяч тенге сколько будет стоить» (test_e2e's)
LOAD_TIMEOUT_S = 300
ANSWER_TIMEOUT_S = 240
PAGE_FLAGS = "aec=0&ns=0&agc=0"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is missing (scripts/setup.sh --test installs it)"
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing (scripts/setup.sh --test)")


def chromium_args(capture: Path | None) -> list[str]:
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if capture is not None:
        args.append(f"--use-file-for-fake-audio-capture={capture}%noloop")
    return args


def question_wav(path: Path, before_s: float = 3.0, after_s: float = 45.0, clip: Path = QUESTION) -> Path:
    """A question with silence around it, as Chromium's fake capture wants it (16-bit PCM)."""
    speech = read_audio(clip)
    silence = lambda seconds: np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)  # noqa: E731
    sf.write(path, np.concatenate([silence(before_s), speech, silence(after_s)]), SAMPLE_RATE, subtype="PCM_16")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Serve:
    """A real `cluelypro serve` process on 127.0.0.1:<free port>, its output in a file."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "serve.log"
        env = {**os.environ, "CLUELYPRO_DATA_DIR": str(folder / "data")}
        command = [sys.executable, "-X", "faulthandler", "-m", "cluelypro.cli", "serve", "--port", str(self.port)]
        command += options
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=folder
            )
        self.started = time.monotonic()
        try:
            wait_until(self.up, "the server to load its engines", LOAD_TIMEOUT_S, every=0.5)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise
        self.load_s = time.monotonic() - self.started

    def up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(self.base + "/api/status", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def get(self, path: str) -> Any:
        response = httpx.get(self.base + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.get("/api/events") if name is None or e["event"] == name]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack
            self.process.wait()
        output = self.log.read_text()
        assert self.process.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        return output


def serving(folder: Path, *options: str) -> Iterator[Serve]:
    """A class's server: started, yielded, stopped (Ctrl+C, as a user would)."""
    server = Serve(folder, *options)
    try:
        print(f"\nserve {' '.join(options)} loaded in {server.load_s:.1f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        yield pw


def launch(playwright: Any, capture: Path | None) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(capture))


EXPECTED_REFUSAL = "the server responded with a status of 422"  # the settings test's invalid speed


def page_errors(page: Any) -> list[str]:
    """Uncaught errors and console errors of the page (but the 422 a test asks for)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: Any) -> None:
        if message.type == "error" and EXPECTED_REFUSAL not in message.text:
            errors.append(message.text)

    page.on("console", console)
    return errors


def shot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def page_stats(page: Any) -> dict[str, Any]:
    return page.evaluate("window.cluelypro.stats()")


# --- browser mode ---------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    yield from serving(tmp_path_factory.mktemp("browser-serve"), "--audio", "browser")


@pytest.fixture(scope="class")
def holder(browser_server: Serve, playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The page that holds the audio (autostart), its microphone playing the question."""
    capture = question_wav(tmp_path_factory.mktemp("capture") / "question.wav")
    browser = launch(playwright, capture)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = page_errors(page)
    page.goto(f"{browser_server.base}/?autostart=1&{PAGE_FLAGS}")
    page.wait_for_function("window.cluelypro && window.cluelypro.stats().audioReady", timeout=30_000)
    page.evaluate("window.cluelypro.mark('start')")
    yield SimpleNamespace(page=page, errors=errors)
    browser.close()


class TestBrowserMode:
    """`serve --audio browser`: this page is the microphone and the earpiece."""

    def test_question_is_heard_answered_and_played_by_the_page(
        self, browser_server: Serve, holder: Any, tmp_path: Path
    ) -> None:
        page = holder.page
        asr = wait_until(lambda: browser_server.events("asr"), "the question's transcript", ANSWER_TIMEOUT_S)
        assert "тысяч" in asr[0]["text"].lower(), asr
        before = page.evaluate("window.cluelypro.outputRms('start')")  # up to the end of the question
        page.evaluate("window.cluelypro.mark('answer')")
        page.locator("#plan li.thesis .text").first.wait_for(timeout=ANSWER_TIMEOUT_S * 1000)
        wait_until(lambda: browser_server.events("playback_end"), "a thesis played to its end", ANSWER_TIMEOUT_S)
        after = page.evaluate("window.cluelypro.outputRms('answer')")
        stats = page_stats(page)
        theses = page.locator("#plan li.thesis .text").all_text_contents()
        utterance = page.locator("#utterances li.utt .text").first.text_content()
        shot(page, tmp_path / "browser-dashboard.png")
        print(f"page output RMS before {before:.5f}, after {after:.5f}; page stats {json.dumps(stats)}")
        assert theses and all(text.strip() for text in theses), theses
        assert utterance == asr[0]["text"]
        assert stats["framesSent"] > 100 and stats["framesReceived"] > 0 and stats["starts"] >= 1
        assert after > 0.01, "the page's own output must hold the answer (> -40 dBFS)"
        assert after >= 10 * before, "the page played something before the answer"
        assert page.locator("#mode").get_attribute("data-mode") == "browser"
        assert holder.errors == []

    def test_a_second_page_is_read_only(
        self, browser_server: Serve, holder: Any, playwright: Any, tmp_path: Path
    ) -> None:
        browser = launch(playwright, None)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(f"{browser_server.base}/?autostart=1&{PAGE_FLAGS}")
            page.locator("#readonly").wait_for(state="visible", timeout=30_000)
            assert page.locator("#btn-mute").is_disabled() and page.locator("#settings button").is_disabled()
            client = page.evaluate("window.cluelypro.clientId")
            refused = httpx.post(browser_server.base + "/api/control/mute", headers={"X-CluelyPro-Client": client})
            assert refused.status_code == 409 and refused.json()["detail"].startswith("read-only")
            page.keyboard.press("m")  # the shortcut does nothing either
            time.sleep(0.5)
            assert browser_server.get("/api/status")["muted"] is False
            shot(page, tmp_path / "read-only.png")
            assert holder.page.locator("#readonly").is_hidden(), "the page holding the audio is not read-only"
        finally:
            browser.close()

    def test_settings_round_trip_and_shortcuts(self, browser_server: Serve, holder: Any, tmp_path: Path) -> None:
        page = holder.page
        page.locator("#settings [name=tts_speed]").fill("1.3")
        page.locator("#settings [name=advance_policy]").select_option("until-said")
        page.locator("#settings button[type=submit]").click()
        wait_until(lambda: browser_server.get("/api/settings")["tts_speed"] == 1.3, "tts_speed 1.3 on the server", 10)
        assert browser_server.get("/api/settings")["advance_policy"] == "until-said"
        assert "good" in (page.locator("#settings-message").get_attribute("class") or "")
        page.locator("#settings [name=tts_speed]").fill("9")
        page.locator("#settings button[type=submit]").click()
        page.locator("#settings-message.bad").wait_for(timeout=10_000)
        assert page.locator("#settings-message").text_content(), "the server's 422 message is shown"
        assert browser_server.get("/api/settings")["tts_speed"] == 1.3

        page.locator("body").click(position={"x": 5, "y": 5})  # focus off the form
        page.keyboard.press("m")
        wait_until(lambda: browser_server.get("/api/status")["muted"] is True, "muted by M", 10)
        page.locator("#btn-mute[data-action=unmute]").wait_for(timeout=10_000)
        page.keyboard.press("m")
        wait_until(lambda: browser_server.get("/api/status")["muted"] is False, "unmuted by M", 10)
        page.keyboard.press(" ")
        wait_until(lambda: browser_server.get("/api/status")["listening"] is False, "stopped by Space", 10)
        page.locator("#btn-start[data-action=start]").wait_for(timeout=10_000)
        page.keyboard.press(" ")
        wait_until(lambda: browser_server.get("/api/status")["listening"] is True, "listening again by Space", 10)
        shot(page, tmp_path / "settings.png")
        assert holder.errors == []


# --- dashboard mode over a recording --------------------------------------------------------------


@pytest.fixture(scope="class")
def input_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    folder = tmp_path_factory.mktemp("input-serve")
    recording = question_wav(folder / "recording.wav", before_s=1.0, after_s=40.0)
    yield from serving(folder, "--input", str(recording))


@pytest.fixture(scope="class")
def browser(playwright: Any) -> Iterator[Any]:
    browser = launch(playwright, None)
    yield browser
    browser.close()


class TestDashboard:
    """`serve --input`: the page only shows (no page audio)."""

    def test_theses_and_the_waterfall_appear(self, input_server: Serve, browser: Any, tmp_path: Path) -> None:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ru-RU")
        errors = page_errors(page)
        page.goto(input_server.base + "/")
        page.locator("#plan li.thesis .text").first.wait_for(timeout=ANSWER_TIMEOUT_S * 1000)
        page.locator("#waterfall .wf-row .wf-bar[data-stage=playback_start]").first.wait_for(
            timeout=ANSWER_TIMEOUT_S * 1000
        )
        wait_until(lambda: input_server.events("playback_end"), "a thesis played to its end", ANSWER_TIMEOUT_S)
        page.wait_for_timeout(2500)  # a status poll
        status = input_server.get("/api/status")
        events = input_server.events()
        speech_end = next(e["t"] for e in events if e["event"] == "speech_end")
        first_play = next(e["t"] for e in events if e["event"] == "playback_start")
        shown = page.locator("#waterfall .wf-row .wf-total").first.text_content()
        assert shown == f"{first_play - speech_end:.2f} s", (shown, first_play - speech_end)
        assert page.locator("#mode").get_attribute("data-mode") == "input"
        theses = [e["text"] for e in events if e["event"] == "thesis"]
        assert theses[0] in page.locator("#plan").text_content()
        assert page.locator("#chains .engine").count() >= 3
        assert "GEMINI_API_KEY" in page.locator("#keys").text_content()
        assert status["latency"]["count"] >= 1
        assert page.locator("html").get_attribute("lang") == "ru"
        shot(page, tmp_path / "dashboard.png")
        assert errors == []
        page.close()

    def test_phone_screen_has_no_horizontal_scroll(self, input_server: Serve, browser: Any, tmp_path: Path) -> None:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="ru-RU",
        )
        page = context.new_page()
        page.goto(input_server.base + "/")
        page.locator("#plan li.thesis .text").first.wait_for(timeout=ANSWER_TIMEOUT_S * 1000)
        page.wait_for_timeout(2500)
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth]"
        )
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)"
        )
        page.screenshot(path=str(tmp_path / "phone.png"))  # the first screen, as a phone shows it
        print(f"screenshot: {tmp_path / 'phone.png'}")
        assert widths[0] <= widths[1], f"horizontal scroll on a 390 px screen: {widths}, wide: {wide}"
        assert wide == []
        context.close()

    def test_enrolment_through_the_page(self, input_server: Serve, playwright: Any, tmp_path: Path) -> None:
        """25 s of the fake microphone (the golos recordings one after another) recorded in the
        page with its countdown, sent as WAV; the page shows the threshold and the spread, and
        the new profile (made the active one), which is then deleted from the page."""
        speech = np.concatenate([read_audio(RU_AUDIO / f"golos_{i:02d}.wav") for i in range(10)])
        reading = tmp_path / "reading.wav"
        sf.write(reading, np.tile(speech, 1 + round(30 * SAMPLE_RATE) // len(speech)), SAMPLE_RATE, subtype="PCM_16")
        browser = launch(playwright, reading)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="en-US")
            errors = page_errors(page)
            page.goto(input_server.base + "/")
            page.locator("#enrol-text").filter(has_text="Read aloud:").wait_for(timeout=10_000)  # the paragraph
            page.locator("#enrol [name=name]").fill("tester")
            page.locator("#enrol-start").click()
            page.locator("#enrol-countdown").filter(has_text=" s").wait_for(timeout=10_000)
            page.locator("#enrol-result").filter(has_text="threshold").wait_for(timeout=120_000)
            result = page.locator("#enrol-result").text_content() or ""
            page.locator("#profiles li[data-name=tester]").wait_for(timeout=10_000)
            profiles = input_server.get("/api/profiles")
            print(f"enrolment shown: {result}; profiles: {profiles}")
            assert [(p["name"], p["active"]) for p in profiles] == [("tester", True)] and "spread" in result
            assert page.locator("#profiles li[data-name=tester] button.use").is_disabled()  # already active
            shot(page, tmp_path / "enrolled.png")
            page.on("dialog", lambda dialog: dialog.accept())  # "Delete profile tester?"
            page.locator("#profiles li[data-name=tester] button.delete").click()
            wait_until(lambda: input_server.get("/api/profiles") == [], "the profile deleted", 10)
            page.locator("#profiles li[data-name=tester]").wait_for(state="detached", timeout=10_000)
            assert errors == []
        finally:
            browser.close()
