"""`cluelypro bench --peer pipecat`: a smoke test of the peer comparison (no timing thresholds), and
the pieces that need no engines.

The smoke test replays the first default-corpus recording (an exam question synthesised with RHVoice
"aleksandr") in real time through our pipeline, then through the Pipecat pipeline of the same
engines (its own Silero VAD, faster-whisper, our GGUF behind llama_cpp.server, RHVoice).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cluelypro.bench import peer_pipecat
from cluelypro.tts.normalize import normalize_for_tts

needs_python_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="pipecat-ai 1.14 needs Python 3.11+")


@pytest.mark.slow
@needs_python_311
def test_bench_peer_pipecat_smoke(tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cluelypro.cli",
            "bench",
            "--peer",
            "pipecat",
            "--limit",
            "1",
            # Pipecat speaks a sentence once it is complete: on a loaded machine the first one of a
            # long answer can take a while. This is not a latency threshold.
            "--timeout",
            "150",
            "--json",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pipecat" in done.stdout and "[pipecat 1/1]" in done.stderr, done.stdout + done.stderr
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    peer = summary["peer"]
    # Both systems answered the one recording.
    assert summary["answered_runs"] == 1, summary["no_answer"]
    assert peer["answered_runs"] == 1, peer["per_recording"]
    ours_v2v, peer_v2v = summary["voice_to_voice"]["p50"], peer["voice_to_voice"]["p50"]
    assert ours_v2v > 0 and peer_v2v > 0
    assert peer["ratio"] == round(ours_v2v / peer_v2v, 3)
    assert peer["startup_s"] > 0 and peer["pipecat_version"] == "1.14.0"
    (entry,) = peer["per_recording"]
    assert entry["name"] == "exam_1" and entry["ours_voice_to_voice"]["p50"] == ours_v2v
    (run,) = entry["runs"]
    assert run["stop"] == "answered" and run["voice_to_voice"] == peer_v2v
    assert re.search("[а-яё]", run["heard"], re.IGNORECASE), run
    # Its milestones come in order, from its VAD's stop to the first audible frame.
    stages = run["stages"]
    order = ["vad_stop", "transcript", "turn_end", "llm_first_token", "sentence_1", "first_audio"]
    assert [stages[name] for name in order] == sorted(stages[name] for name in order), stages
    # What Pipecat played is speech: a Russian sentence, loud enough, and speech to our VAD.
    assert run["theses"] and re.search("[а-яё]", run["theses"][0], re.IGNORECASE), run
    assert run["output_peak"] >= peer_pipecat.AUDIBLE_PEAK, run
    assert run["output_speech_s"] >= 0.5, run


def test_missing_pipecat_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer_pipecat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(peer_pipecat.PeerUnavailableError) as raised:
        peer_pipecat.require_pipecat()
    message = str(raised.value)
    assert "\n" not in message and "pip install -e '.[peer]'" in message


@pytest.mark.parametrize(
    ("sentence", "spoken"),
    [
        ("1.", ""),  # Pipecat's sentence aggregator cuts a list number off as a sentence of its own
        ("\n2.", ""),
        ("0", ""),  # "not a question"
        ("0.", ""),
        (
            "1. Компилятор переводит исходный код в машинные команды.",
            "Компилятор переводит исходный код в машинные команды.",
        ),
        ("- Гранит и базальт.", "Гранит и базальт."),
        ("Гагарин полетел в 1961 году.", normalize_for_tts("Гагарин полетел в 1961 году.", "ru")),
    ],
)
def test_the_peer_speaks_what_our_prompter_would(sentence: str, spoken: str) -> None:
    assert peer_pipecat._speakable(sentence, "ru", normalize_for_tts) == (
        normalize_for_tts(spoken, "ru") if spoken else ""
    )
