"""`cluelypro bench`: a smoke test of the whole benchmark (no timing thresholds), and its stop rule.

The smoke test replays the first two default-corpus recordings (exam questions synthesised with
RHVoice "aleksandr") in real time through the real engines, with the sequential baseline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluelypro.bench.runner import LLM_IDLE_S, OutcomeWatch
from cluelypro.metrics.events import (
    Error,
    PlaybackEnd,
    PlaybackStart,
    Question,
    Segment,
    SpeechEnd,
    SpeechStart,
    Thesis,
    TimelineEvent,
)
from cluelypro.metrics.timeline import Clock, Record


@pytest.mark.slow
def test_bench_smoke(tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cluelypro.cli",
            "bench",
            "--limit",
            "2",
            "--repeat",
            "1",
            "--baseline",
            "sequential",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "voice-to-voice" in done.stdout
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    for stage in ("segment", "asr", "llm_first_token", "thesis", "tts_first_audio", "playback_start"):
        assert set(summary["stages"][stage]) == {"p50", "p95"}
    assert summary["rss_peak_mb"] > 0 and summary["startup_s"] > 0
    assert [entry["name"] for entry in summary["per_recording"]] == ["exam_1", "exam_2"]
    assert summary["answered_runs"] == 2 and summary["baseline"]["answered_runs"] == 2, summary["no_answer"]
    for entry in summary["per_recording"]:
        for run in entry["runs"]:
            assert_in_order(run["stages"], PIPELINED_ORDERS)
        for run in entry["baseline"]["runs"]:
            assert_in_order(run["stages"], [["segment", "asr", "llm", "tts"]])
    # Streaming and overlapping must beat the same engines run one after another, in the same run.
    pipelined, sequential = summary["voice_to_voice"]["p50"], summary["baseline"]["voice_to_voice"]["p50"]
    assert summary["baseline_ratio"] == round(sequential / pipelined, 3)
    assert summary["baseline_ratio"] > 1, f"pipelined p50 {pipelined} s, sequential p50 {sequential} s"
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Milestones of one run that must come in this order; the LLM may start before the question is
# confirmed (speculative LLM) and speech before thesis 1 is complete (early speech), so no more.
PIPELINED_ORDERS = [
    ["segment", "asr", "playback_start"],
    ["llm_first_token", "thesis"],
    ["llm_first_token", "tts_first_audio", "playback_start"],
]


def assert_in_order(offsets: dict[str, float], orders: list[list[str]]) -> None:
    assert offsets["segment"] > 0, offsets  # end of speech is detected after the speech ends
    for order in orders:
        times = [offsets[name] for name in order]
        assert times == sorted(times), offsets


class IdleLLM:
    """Stands for the tracked LLM: idle for `idle` seconds (None: writing), growing with the
    clock from `idle_grows_from` on."""

    def __init__(self, idle: float | None) -> None:
        self.idle = idle
        self.idle_grows_from: float | None = None
        self.asked_since: list[float] = []

    def idle_since(self, wall: float) -> float | None:
        self.asked_since.append(wall)
        if self.idle is None or self.idle_grows_from is None:
            return self.idle
        return self.idle + time.monotonic() - self.idle_grows_from


def record(event: TimelineEvent, utt: int, q: int | None = None, wall: float = 0.0) -> Record:
    return Record(0.0, wall, utt, q, event)


HEARD = [
    record(SpeechStart(), 1, wall=100.0),
    record(SpeechEnd(2.0), 1, wall=102.0),
    record(Segment(), 1, wall=102.4),
]


def verdict(records: list[Record], llm: IdleLLM) -> str | None:
    """The verdict of a watch that has seen `records`, one by one as the timeline tells them."""
    watch = OutcomeWatch(llm)
    for each in records:
        watch(each)
    return watch.verdict()


def test_a_run_stops_once_the_outcome_is_known() -> None:
    busy, done = IdleLLM(None), IdleLLM(5.0)
    assert verdict([record(SpeechStart(), 1)], done) is None, "speech still open"
    assert verdict(HEARD, done) is None, "still transcribing"
    rejected = [*HEARD, record(Question(False, "no question mark"), 1, None)]
    assert verdict(rejected, busy) == "no question"
    asked = [*HEARD, record(Question(True, "question mark"), 1, 1, wall=102.5)]
    assert verdict(asked, busy) is None
    assert verdict(asked, done) == "no theses"
    # the LLM may have started at a pause before the question was confirmed (speculative LLM)
    assert done.asked_since == [100.0], "LLM streams count from the question's speech start"
    speaking = [*asked, record(PlaybackStart(1), 1, 1)]
    assert verdict(speaking, busy) is None, "spoken from its first words: wait for thesis 1 to complete"
    complete = [*speaking, record(Thesis(1, "Фотосинтез — это синтез на свету.", 0), 1, 1)]
    assert verdict(complete, done) is None, "thesis 1 is still being heard"
    assert verdict([*complete, record(PlaybackEnd(1, 0.0), 1, 1)], busy) == "answered"
    failed = [*asked, record(Error("llm", "ConnectionError"), 1, 1)]
    assert verdict(failed, busy) == "llm error"
    assert verdict([*asked, record(Error("llm", "ConnectionError"), 2, 2)], busy) is None, "another question's error"


def test_the_watch_wakes_on_events_and_on_the_llm_going_idle_not_on_a_poll() -> None:
    """The watch looks again only when something happened: an event, or the moment the idle LLM
    can be concluded to have written no thesis (each look asks the LLM how long it has idled)."""
    clock = Clock(fast=False)

    async def wait(llm: IdleLLM, records: list[Record], later: Record | None = None) -> str:
        watch = OutcomeWatch(llm)
        for each in records:
            watch(each)
        if later is not None:
            asyncio.get_running_loop().call_later(0.5, watch, later)
        llm.idle_grows_from = time.monotonic()
        return await watch.wait(clock, clock.input_now(), 0.0, timeout_s=5.0)

    asked = [*HEARD, record(Question(True, "question mark"), 1, 1)]
    writing = IdleLLM(None)
    heard_once = record(PlaybackEnd(1, 0.0), 1, 1)
    assert asyncio.run(wait(writing, [*asked, record(PlaybackStart(1), 1, 1)], heard_once)) == "answered"
    assert len(writing.asked_since) == 1, "one look before thesis 1 was heard, one after (that needs no LLM)"

    just_ended = IdleLLM(0.0)
    assert asyncio.run(wait(just_ended, asked)) == "no theses"
    assert LLM_IDLE_S >= 0.5 and len(just_ended.asked_since) <= 5, just_ended.asked_since
