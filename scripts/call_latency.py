"""Voice-to-voice latency of `run --call` against single-microphone `run`, on the same recordings,
through a private PulseAudio with null sinks "call", "room" and "earpiece" (tests/pulse.py).

    call mode: each question plays into "call"  (its monitor is the system source; mic = room.monitor)
    mic mode:  each question plays into "room"  (its monitor is the microphone)

Each round starts one prompter per mode (alternating, so both see the same machine load), asks
every question in turn — the next once the previous answer is over (no event for QUIET_S), with
each thesis said once and no deepening, so that no answer still holds the LLM when the next
question comes — and reads voice-to-voice from the timeline (first playback_start − speech_end),
and the part of it that the capture path decides: end of speech detected (segment − speech_end)
and the transcript ready (asr − speech_end); the LLM and TTS stages after it are the same code
in both modes, and on a loaded machine they dominate.

    .venv/bin/python scripts/call_latency.py --rounds 2 eval/audio/bio-01-aleksandr-100.flac …
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from live_prompter import Prompter, first, wait_for_routes  # noqa: E402
from pulse import PulseServer  # noqa: E402

MODES = {
    "call": (
        "call",
        ["--call", "--system-audio", "call.monitor", "--input-device", "room.monitor", "--output-device", "earpiece"],
        {"source-outputs": ["room.monitor", "call.monitor"], "sink-inputs": ["earpiece"]},
    ),
    "mic": (
        "room",
        ["--input-device", "pulse", "--output-device", "pulse"],
        {"source-outputs": ["room.monitor"], "sink-inputs": ["earpiece"]},
    ),
}
QUIET_S = 10.0  # no event for this long: the answer is over (a thesis takes ~3–8 s to say)
ANSWER_ONCE = {"THESIS_REPEATS": "1", "DEEPENING_MAX_DEPTH": "0"}


def one_run(mode: str, clips: list[Path], workdir: Path) -> list[tuple[float, float, float]]:
    sink, args, routes = MODES[mode]
    with PulseServer(["call", "room", "earpiece"]) as pulse:
        pulse.pactl("set-default-sink", "earpiece")
        pulse.pactl("set-default-source", "room.monitor")
        env = pulse.client_env(
            PULSE_SOURCE="room.monitor",
            PULSE_SINK="earpiece",
            PYTHONUNBUFFERED="1",
            COLUMNS="160",
            CLUELYPRO_DATA_DIR=str(workdir / "data"),
            **ANSWER_ONCE,
        )
        prompter = Prompter(env, workdir)
        prompter.start(*args)
        try:
            prompter.wait_for_line("listening", 300)
            wait_for_routes(pulse, prompter, routes)
            time.sleep(2.0)
            for clip in clips:
                asked = time.time()
                subprocess.run(["paplay", f"--device={sink}", str(clip)], env=pulse.client_env(), check=True)
                question = prompter.wait_for_event("question", 120, after_wall=asked, accepted=True)
                prompter.wait_for_event("playback_start", 120, q=question["q"], index=1)
                _wait_until_quiet(prompter)
            prompter.interrupt(60)
        finally:
            prompter.kill()
    events = prompter.events()
    latencies = []
    for question in (event for event in events if event["event"] == "question" and event["accepted"]):
        utt = question["utt"]
        end = first(events, "speech_end", utt=utt)
        start = first(events, "playback_start", q=question["q"], index=1)
        source = first(events, "speaker", utt=utt).get("source")
        assert source == ("system" if mode == "call" else None), source
        if end is not None and start is not None:
            detected, heard = first(events, "segment", utt=utt), first(events, "asr", utt=utt)
            stages = (start["t"] - end["t"], detected["t"] - end["t"], heard["t"] - end["t"])
            latencies.append(tuple(round(stage, 3) for stage in stages))
    return latencies


def _wait_until_quiet(prompter: Prompter, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = prompter.events()
        if events and time.time() - max(event["wall"] for event in events) > QUIET_S:
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    for round_ in range(options.rounds):
        for mode in MODES if round_ % 2 == 0 else reversed(list(MODES)):
            with tempfile.TemporaryDirectory(prefix=f"call-latency-{mode}-") as folder:
                latencies = one_run(mode, options.clips, Path(folder))
            results[mode] += latencies
            print(f"round {round_ + 1} {mode} (voice-to-voice, detected, asr): {latencies}", flush=True)
    for mode, latencies in results.items():
        v2v, detected, heard = (sorted(column) for column in zip(*latencies, strict=True))
        print(
            f"{mode}: voice-to-voice median {statistics.median(v2v):.3f} s over {len(v2v)} questions "
            f"(min {v2v[0]:.3f}, max {v2v[-1]:.3f}); end of speech detected {statistics.median(detected):.3f} s, "
            f"transcript {statistics.median(heard):.3f} s after it (medians)"
        )


if __name__ == "__main__":
    main()
