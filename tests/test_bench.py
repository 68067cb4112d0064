"""`cluelypro bench`: a smoke test of the whole benchmark (no timing thresholds), and its stop rule.

The smoke test replays the first two default-corpus recordings (exam questions synthesised with
RHVoice "aleksandr") in real time through the real engines, with the sequential baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cluelypro.bench.runner import outcome


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
    def __init__(self, idle: float | None) -> None:
        self.idle = idle
        self.asked_since: list[float] = []

    def idle_since(self, wall: float) -> float | None:
        self.asked_since.append(wall)
        return self.idle


def event(name: str, utt: int, q: int | None = None, wall: float = 0.0, **fields) -> dict:
    return {"t": 0.0, "wall": wall, "utt": utt, "q": q, "event": name, **fields}


HEARD = [event("speech_start", 1, wall=100.0), event("speech_end", 1, wall=102.0), event("segment", 1, wall=102.4)]


def test_a_run_stops_once_the_outcome_is_known() -> None:
    busy, done = IdleLLM(None), IdleLLM(5.0)
    assert outcome([event("speech_start", 1)], done) is None, "speech still open"
    assert outcome(HEARD, done) is None, "still transcribing"
    rejected = [*HEARD, event("question", 1, None, accepted=False)]
    assert outcome(rejected, busy) == "no question"
    asked = [*HEARD, event("question", 1, 1, wall=102.5, accepted=True)]
    assert outcome(asked, busy) is None
    assert outcome(asked, done) == "no theses"
    # the LLM may have started at a pause before the question was confirmed (speculative LLM)
    assert done.asked_since == [100.0], "LLM streams count from the question's speech start"
    speaking = [*asked, event("playback_start", 1, 1, index=1)]
    assert outcome(speaking, busy) is None, "spoken from its first words: wait for thesis 1 to complete"
    complete = [*speaking, event("thesis", 1, 1, index=1)]
    assert outcome(complete, done) is None, "thesis 1 is still being heard"
    assert outcome([*complete, event("playback_end", 1, 1, index=1, stall=0.0)], busy) == "answered"
