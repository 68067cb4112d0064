"""The whole product with cloud engines: `cluelypro run` and `cluelypro doctor` as a user runs
them, with the keys and endpoints in the environment pointing at real local servers that speak
the providers' protocols (tests/servers): llama-cpp-python's OpenAI-compatible server with the
embedded model (behind a fault proxy), and the OpenAI audio server backed by Whisper and RHVoice.

Each fault is armed for every request, so that the first engine of a chain fails for good and
the next one must answer the same question; the timeline must show the hand-over.
Audio: ../shared/audio/ru/ohf_02.wav («Какая погода в Москве?», see ../shared/audio/README.md).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import RU_AUDIO

pytestmark = pytest.mark.slow

QUESTION = RU_AUDIO / "ohf_02.wav"
KEY = "sk-test-" + uuid.uuid4().hex  # looks like a real key: redaction must catch it anyway
ALWAYS = 50  # a fault armed this many times fails every request of a run
BUDGET_S = 1.5
SLOW_S = 10.0
# Where every server is healthy, the budgets only have to be met on the slowest CI machine: the
# tests assert which engines answered, not how fast (a busy CI host once missed 1.5 s).
UNHURRIED = {"llm_ttft_budget_s": "8", "asr_timeout_s": "10", "tts_first_audio_budget_s": "8"}


class QuietDisconnects(logging.Filter):
    """uvicorn logs a traceback for every injected reset and every client that gave up."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ not in ("ConnectionDropped", "ClientDisconnect")


@pytest.fixture(scope="module")
def servers():
    from cluelypro.asr.whisper import WhisperRecognizer
    from servers import openai_audio
    from servers.base import Faults, serve
    from servers.embedded import EmbeddedEars, EmbeddedVoice
    from servers.fault_proxy import fault_proxy
    from servers.llama_server import llama_server

    quiet = QuietDisconnects()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    recognizer = WhisperRecognizer()
    recognizer.load()
    llm_faults, audio_faults = Faults(), Faults()
    audio = openai_audio.create_app(KEY, EmbeddedEars(recognizer), EmbeddedVoice(), audio_faults)
    with llama_server() as llama, serve(fault_proxy(llama, llm_faults, api_key=KEY)) as proxy, serve(audio) as speech:
        warm_up(llama)
        yield SimpleNamespace(llm=f"{proxy}/v1", audio=f"{speech}/v1", llm_faults=llm_faults, audio_faults=audio_faults)
    logging.getLogger("uvicorn.error").removeFilter(quiet)


def warm_up(llama: str) -> None:
    """Put the system prompt into the server's prefix cache, as a provider's warm servers have it
    (evaluating it cold takes this 1-thread server ~10 s)."""
    import httpx

    from cluelypro.llm.prompts import thesis_messages

    body = {"model": "qwen2.5-coder-1.5b", "messages": thesis_messages(""), "max_tokens": 1}
    httpx.post(f"{llama}/chat/completions", json=body, timeout=120).raise_for_status()


@pytest.fixture
def faults(servers):
    servers.llm_faults.clear()
    servers.audio_faults.clear()
    return servers


def cloud_env(servers, key: str = KEY, **chains: str) -> dict[str, str]:
    """The environment a user with keys sets: the OpenAI engines and an OpenAI-compatible LLM at
    the local servers, no other provider's key."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env.update(
        OPENAI_API_KEY=key,
        OPENAI_BASE_URL=servers.audio,
        COMPATIBLE_BASE_URL=servers.llm,
        COMPATIBLE_API_KEY=key,
        COMPATIBLE_MODEL="qwen2.5-coder-1.5b",
        LLM_TTFT_BUDGET_S=str(BUDGET_S),
        ASR_TIMEOUT_S="3",
        TTS_FIRST_AUDIO_BUDGET_S="2",
        THESIS_REPEATS="1",
        DEEPENING_MAX_DEPTH="0",
        ASR_ENGINE="openai,local",
        USE_LLM_ENGINE="compatible,local",
        USE_TTS_ENGINE="openai,rhvoice",
    )
    env.update({name.upper(): value for name, value in chains.items()})
    return env


def run(tmp_path: Path, env: dict[str, str], question: Path = QUESTION) -> SimpleNamespace:
    tmp_path.mkdir(parents=True, exist_ok=True)
    events = tmp_path / "events.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cluelypro.cli",
            "run",
            "--input",
            str(question),
            "--fast",
            "--output",
            str(tmp_path / "earpiece.wav"),
            "--events",
            str(events),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    timeline = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    return SimpleNamespace(
        stdout=done.stdout, stderr=done.stderr, events=timeline, raw=events.read_text(encoding="utf-8")
    )


def named(result, event: str, **fields) -> list[dict]:
    return [e for e in result.events if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]


def engines_used(result) -> dict[str, str]:
    asr = named(result, "asr")[-1]["engine"]
    llm = named(result, "llm_first_token")[-1]["provider"]
    tts = named(result, "tts_first_audio", index=1)[0]["engine"]
    return {"asr": asr, "llm": llm, "tts": tts}


def test_cloud_engines_answer_a_real_question(faults, tmp_path: Path) -> None:
    result = run(tmp_path, cloud_env(faults, use_llm_engine="cerebras,compatible,local", **UNHURRIED))
    assert engines_used(result) == {
        "asr": "openai:gpt-4o-mini-transcribe",
        "llm": "compatible:qwen2.5-coder-1.5b",
        "tts": "openai:tts-1:alloy",
    }
    assert "погода" in named(result, "asr")[-1]["text"].lower()
    assert named(result, "thesis") and named(result, "playback_start", index=1)
    assert not named(result, "provider_skipped")
    assert "LLM engine cerebras skipped: CEREBRAS_API_KEY not set" in result.stderr  # one line at start


@pytest.mark.parametrize("fault", ["503", "slow", "reset", "malformed"])
def test_a_failing_llm_hands_the_same_question_to_the_next_one(faults, tmp_path: Path, fault: str) -> None:
    faults.llm_faults.arm(fault, seconds=SLOW_S, times=ALWAYS)
    result = run(tmp_path, cloud_env(faults))
    skipped = named(result, "provider_skipped", stage="llm")
    assert skipped and all(s["provider"] == "compatible:qwen2.5-coder-1.5b" for s in skipped)
    assert all(s["after_output"] == (fault in ("reset", "malformed")) for s in skipped)
    answered = named(result, "llm_first_token", provider="local:qwen2.5-coder-1.5b")
    question = named(result, "question", accepted=True)[-1]
    assert answered and answered[-1]["q"] == question["q"], "the next LLM answered the same question"
    assert named(result, "thesis", q=question["q"]) and named(result, "playback_start", q=question["q"])
    if fault == "slow":  # the hand-over waited for the budget, not for the slow server
        # Timed at the skip itself: the next engine's first token adds its own time, which a loaded
        # machine stretches (CI once read 10.03 s from the segment to the local model's first token).
        waited = skipped[-1]["t"] - named(result, "segment", utt=question["utt"])[0]["t"]
        assert BUDGET_S * 0.8 < waited < SLOW_S, waited


@pytest.mark.parametrize(("stage", "fault"), [("asr", "429"), ("asr", "slow"), ("tts", "reset"), ("tts", "503")])
def test_failing_speech_engines_hand_over_to_the_embedded_ones(faults, tmp_path: Path, stage: str, fault: str) -> None:
    faults.audio_faults.arm(fault, seconds=SLOW_S, times=ALWAYS)
    result = run(tmp_path, cloud_env(faults))
    skipped = named(result, "provider_skipped", stage=stage)
    assert skipped and skipped[0]["provider"].startswith("openai:")
    assert "погода" in named(result, "asr")[-1]["text"].lower(), "the question was not lost"
    start, end = named(result, "playback_start", index=1)[0], named(result, "playback_end", index=1)[0]
    if fault == "reset":  # cut after its first chunks: RHVoice says the whole thesis after them
        assert skipped[0]["after_output"] and end["t"] - start["t"] > 1.0
    else:
        assert engines_used(result)[stage] == {"asr": "whisper-base", "tts": "rhvoice:anna"}[stage]


def test_a_rejected_key_never_appears_anywhere(faults, tmp_path: Path) -> None:
    """The servers answer 401 with the key echoed back in the message; the user's key must not
    reach the terminal, the log or the event timeline."""
    wrong = "sk-test-" + uuid.uuid4().hex
    result = run(tmp_path, cloud_env(faults, key=wrong))
    reasons = [s["reason"] for s in named(result, "provider_skipped") if s["reason"] != "cooling down"]
    assert {s["stage"] for s in named(result, "provider_skipped")} == {"asr", "llm", "tts"}
    assert all("***" in reason for reason in reasons), reasons  # the echoed key was there, masked
    for text in (result.stdout, result.stderr, result.raw):
        assert wrong not in text and wrong[8:] not in text
    assert engines_used(result) == {"asr": "whisper-base", "llm": "local:qwen2.5-coder-1.5b", "tts": "rhvoice:anna"}


def test_doctor_lists_usable_engines_and_why_others_are_not(faults, tmp_path: Path) -> None:
    env = cloud_env(faults, use_llm_engine="cerebras,compatible,local", **UNHURRIED)
    env.update(COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "cluelypro.cli", "doctor", "--probe"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        (cells[2].strip(), cells[3].strip()): cells[4]
        for line in done.stdout.splitlines()
        if len(cells := line.split("│")) >= 6
    }
    assert "CEREBRAS_API_KEY not set" in rows[("LLM", "cerebras")]
    for area, engine in (("ASR", "openai"), ("LLM", "compatible"), ("TTS", "openai")):
        assert "answered in" in rows[(area, engine)], rows
    assert KEY not in done.stdout + done.stderr
    assert "the offline prompter can run" in done.stdout
    assert "smart-turn-v3.2: loaded" in rows[("TURN", "embedded (smart-turn)")], "the learned end of turn"


def first_audio_delays(result) -> list[float]:
    """Seconds from each thesis after the first being complete to its first synthesised audio."""
    done = {e["index"]: e["t"] for e in named(result, "thesis")}
    return [
        e["t"] - done[e["index"]] for e in named(result, "tts_first_audio") if e["index"] > 1 and e["index"] in done
    ]


def broad_question(folder: Path) -> Path:
    """A question with a several-thesis answer, in RHVoice aleksandr's voice, with room after it."""
    import numpy as np

    from cluelypro.audio.io import to_mono_16k, write_audio
    from cluelypro.config import SAMPLE_RATE
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    voice = RhVoiceSynthesizer("aleksandr")
    voice.load()
    speech = to_mono_16k(
        np.concatenate(list(voice.synthesize("Расскажите о причинах Первой мировой войны."))), voice.sample_rate
    )
    voice.close()
    path = folder / "broad_question.wav"
    write_audio(
        path, np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), 0.7 * speech, np.zeros(SAMPLE_RATE, np.float32)])
    )
    return path


def test_a_hanging_tts_provider_is_rested_after_its_first_miss(faults, tmp_path: Path) -> None:
    """Issue 9 (F5): with OpenAI TTS hanging, old main logged a `provider_skipped` for it per
    thesis and every thesis paid the whole first-audio budget. Now it misses once, is rested,
    and later theses get their audio as fast as with the embedded voice alone."""
    faults.audio_faults.arm("hang", times=ALWAYS)
    question = broad_question(tmp_path)
    env = {"asr_engine": "local", "use_llm_engine": "local", "provider_cooldown_s": "600"}  # one rest covers the run
    hanging = run(tmp_path / "hanging", cloud_env(faults, **env), question)
    alone = run(tmp_path / "alone", cloud_env(faults, **{**env, "use_tts_engine": "rhvoice"}), question)
    skipped = [s["reason"] for s in named(hanging, "provider_skipped", stage="tts")]
    assert skipped.count("no output within 2 s") == 1, skipped
    assert skipped.count("cooling down") <= 1 and len(skipped) <= 2, skipped
    assert len(named(hanging, "tts_first_audio")) >= 3, "several theses were spoken"
    with_hang, embedded = first_audio_delays(hanging), first_audio_delays(alone)
    print(
        f"first audio of theses 2+: hanging OpenAI TTS first, median {statistics.median(with_hang) * 1000:.0f} ms "
        f"over {len(with_hang)}; RHVoice alone {statistics.median(embedded) * 1000:.0f} ms over {len(embedded)}"
    )
    assert {e["engine"] for e in named(hanging, "tts_first_audio")} == {"rhvoice:anna"}
