"""Call mode live (`cluelypro run --call`): the other side of a call from the system output, the
user from the microphone, against a private PulseAudio (tests/pulse.py) with three null sinks:

    paplay examiner ─► call ─► call.monitor ─► the call (system source, `soundcard`)
    paplay user     ─► room ─► room.monitor ─► the microphone (PortAudio, ALSA `pulse` PCM)
                             earpiece ◄─ the prompter's theses (PortAudio) ─► earpiece.monitor ─► parecord

Every device is named as Pulse lists it (`--system-audio call.monitor --input-device room.monitor
--output-device earpiece`), and the server's defaults are the call's sink and monitor, so a device
name that did not reach its stream would route audio where the assertions catch it. No voice
profile exists (a fresh CLUELYPRO_DATA_DIR): the source alone decides who speaks.

The examiner: an eval recording of an exam question (eval/audio, «Расскажите, что такое
фотосинтез.», RHVoice aleksandr at rate 100). The user: a real LibriSpeech reader (speaker 2609,
English — the gate is language-independent, and in the first test no gate runs at all), speaking
while the prompter answers, as a user repeating a thesis does. The second test has a voice
profile (LibriSpeech reader 1688, enrolled from two of their recordings; the user then says a
third), and the call also leaks into the room at half volume, as from a laptop's speakers.

Run: .venv/bin/pytest tests/test_call.py -m live -s   (~1 min, most of it loading the models)
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from cluelypro.audio.io import read_audio  # noqa: E402
from cluelypro.config import SAMPLE_RATE  # noqa: E402
from conftest import ROOT, SHARED_AUDIO  # noqa: E402
from live_prompter import CLUELYPRO, Prompter, Recorder, first, input_now, rms, wait_for_routes  # noqa: E402
from pulse import PulseServer, pulseaudio_installed  # noqa: E402

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not pulseaudio_installed(),
        reason="pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)",
    ),
]

EXAMINER = ROOT / "eval" / "audio" / "bio-01-aleksandr-100.flac"
USER = SHARED_AUDIO / "speakers" / "libri_2609" / "2609-156975-0000.flac"
ENROLLED = SHARED_AUDIO / "speakers" / "libri_1688"
ENROLMENT = ("1688-142285-0000.flac", "1688-142285-0001.flac")  # 28 s of the reader
ENROLLED_USER = ENROLLED / "1688-142285-0005.flac"  # another recording of the same reader
LEAK_VOLUME = 32768 // 2  # paplay's scale: the call heard through the speakers at half volume
DEVICES = ("--system-audio", "call.monitor", "--input-device", "room.monitor")

READY_TIMEOUT_S = 180  # engine loading: ~15 s here, far more on a busy machine
ANSWER_TIMEOUT_S = 120
EXIT_TIMEOUT_S = 60
SILENCE_RMS = 1e-3  # a null sink's monitor is exact zeros when nothing plays
SPEECH_RMS = 0.01
LOUD = 0.05  # a sample this loud is speech, not silence (the examiner peaks at 0.46, the theses higher)
V2V_TOLERANCE_S = 0.75  # reported vs heard voice-to-voice, as in tests/test_live.py
REFUSAL_TIMEOUT_S = 60  # the refusal comes before any model loads: a few seconds of imports


@pytest.fixture
def pulse() -> Iterator[PulseServer]:
    with PulseServer(["call", "room", "earpiece"]) as server:
        server.pactl("set-default-sink", "call")
        server.pactl("set-default-source", "call.monitor")
        yield server


def _prompter(pulse: PulseServer, tmp_path: Path) -> Prompter:
    workdir = tmp_path / "prompter"  # no cluelypro.toml / .env from the checkout: defaults only
    workdir.mkdir()
    env = pulse.client_env(CLUELYPRO_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1", COLUMNS="160")
    return Prompter(env, workdir)


def _play(pulse: PulseServer, sink: str, path: Path) -> tuple[float, float]:
    """Play `path` into `sink`; the unix times it started and ended."""
    started = time.time()
    subprocess.run(["paplay", f"--device={sink}", str(path)], env=pulse.client_env(), check=True, timeout=60)
    return started, time.time()


CALL_ROUTES = {"source-outputs": ["room.monitor", "call.monitor"], "sink-inputs": ["earpiece"]}


def _start_listening_to_the_call(pulse: PulseServer, prompter: Prompter) -> None:
    """`run --call` on room.monitor (the microphone) and call.monitor, speaking into "earpiece";
    back once both recordings and the earpiece's stream are routed, and a second has passed."""
    prompter.start("--call", *DEVICES, "--output-device", "earpiece")
    prompter.wait_for_line("listening", READY_TIMEOUT_S)
    wait_for_routes(pulse, prompter, CALL_ROUTES)
    time.sleep(1.0)


def test_the_call_is_answered_and_the_user_is_not(pulse: PulseServer, tmp_path: Path) -> None:
    prompter = _prompter(pulse, tmp_path)
    earpiece = Recorder(pulse.client_env(), "earpiece.monitor", tmp_path / "earpiece.wav")
    call = Recorder(pulse.client_env(), "call.monitor", tmp_path / "call.wav")
    try:
        earpiece.wait_for_audio()
        call.wait_for_audio()
        _start_listening_to_the_call(pulse, prompter)

        asked = _play(pulse, "call", EXAMINER)
        question = prompter.wait_for_event("question", ANSWER_TIMEOUT_S, accepted=True)
        spoke = _play(pulse, "room", USER)  # the user talks while (or before) the answer plays
        answer_end = prompter.wait_for_event("playback_end", ANSWER_TIMEOUT_S, q=question["q"], index=1)
        time.sleep(max(0.0, answer_end["t"] - input_now(prompter.events())) + 1.0)  # the user's speech is judged
        code = prompter.interrupt(EXIT_TIMEOUT_S)
        earpiece.stop()
        call.stop()
    finally:
        prompter.kill()
        earpiece.kill()
        call.kill()
    print(f"\n--- prompter stdout ---\n{prompter.output}")
    assert code == 0, prompter.diagnostics()
    assert "call mode" in prompter.output and "voice-to-voice" in prompter.output, prompter.diagnostics()
    events = prompter.events()
    speakers = {event["utt"]: event for event in events if event["event"] == "speaker"}

    # the examiner's question came from the system source, and was answered
    assert speakers[question["utt"]]["source"] == "system" and speakers[question["utt"]]["role"] == "other"
    asr = first(events, "asr", utt=question["utt"])
    assert asr is not None and "фотосинт" in asr["text"].lower(), asr
    assert first(events, "thesis", q=question["q"], index=1) is not None, events
    playback = first(events, "playback_start", q=question["q"], index=1)
    assert playback is not None and playback["t"] > first(events, "speech_end", utt=question["utt"])["t"]

    # the user was heard on the microphone, as the user, and never answered
    mic = [event for event in speakers.values() if event["source"] == "mic"]
    assert mic and all(event["role"] == "own" and event["score"] is None for event in mic), mic
    mic_utts = {event["utt"] for event in mic}
    assert all(event["wall"] >= spoke[0] for event in mic), (mic, spoke)
    assert not [event for event in events if event["event"] == "question" and event["utt"] in mic_utts], events
    assert not [event for event in events if event["event"] == "asr" and event["utt"] in mic_utts], events

    # the earpiece never reached the call: one system utterance (the question), said while it
    # played, and the call's sink silent after it
    system = [event for event in speakers.values() if event["source"] == "system"]
    assert [event["utt"] for event in system] == [question["utt"]], system
    after_question = call.audio[call.sample_at(asked[1] + 0.5) :]
    assert len(after_question) and rms(after_question) < SILENCE_RMS, rms(after_question)
    heard = earpiece.audio[earpiece.sample_at(asked[1]) :]
    assert rms(heard) > SPEECH_RMS, f"no answer in the earpiece: RMS {rms(heard):.4f}"

    # the latency reported is the one a listener hears: the question's last sound in the call's
    # sink → the first sound of the answer in the earpiece's
    v2v = playback["t"] - first(events, "speech_end", utt=question["utt"])["t"]
    question_end_wall = call.wall_of(np.flatnonzero(np.abs(call.audio) > LOUD)[-1] + 1)
    answer = np.flatnonzero(np.abs(earpiece.audio) > LOUD)
    heard_v2v = earpiece.wall_of(answer[answer >= earpiece.sample_at(question_end_wall)][0]) - question_end_wall
    assert abs(v2v - heard_v2v) < V2V_TOLERANCE_S, (v2v, heard_v2v)
    duration = sf.info(str(EXAMINER)).duration
    print(
        f"\ncall mode: heard «{asr['text']}» from the call ({duration:.1f} s); voice-to-voice {v2v:.3f} s"
        f" from the events, {heard_v2v:.3f} s in the recordings; the user's {len(mic)} utterance(s) on the"
        " microphone: own, unanswered"
    )


def _run_call(args: list[str], env: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    """`cluelypro run --call ARGS` to its end (a refusal ends it before any model loads)."""
    return subprocess.run(
        [str(CLUELYPRO), "run", "--call", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=REFUSAL_TIMEOUT_S,
    )


def test_an_earpiece_playing_into_the_call_is_refused(pulse: PulseServer, tmp_path: Path) -> None:
    env = _prompter(pulse, tmp_path).env
    for devices, expected in (
        (("--output-device", "call"), "--output-device earpiece"),  # the call's own sink
        (("--system-audio", "nowhere"), "monitors here: call.monitor, room.monitor, earpiece.monitor"),
    ):
        args = [*DEVICES, *devices] if devices[0] == "--output-device" else ["--input-device", "room.monitor", *devices]
        started = time.monotonic()
        run = _run_call(args, env, tmp_path)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, run.stderr
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], run.stderr
        assert "loading" not in run.stdout + run.stderr  # refused before any model loads
        print(f"\n{' '.join(args)} → exit 2 in {time.monotonic() - started:.1f} s: {lines[0]}")
    # the default output is the call's sink here: taking both defaults is refused too
    defaults = _run_call(["--input-device", "room.monitor"], env, tmp_path)
    assert defaults.returncode == 2 and '"call"' in defaults.stderr and len(defaults.stderr.splitlines()) == 1


def test_the_call_leaking_into_the_microphone_is_not_answered(pulse: PulseServer, tmp_path: Path) -> None:
    prompter = _prompter(pulse, tmp_path)
    voice = tmp_path / "me.wav"
    sf.write(voice, np.concatenate([read_audio(ENROLLED / name) for name in ENROLMENT]), SAMPLE_RATE)
    enrolled = subprocess.run(
        [str(CLUELYPRO), "enroll", "--input", str(voice), "--name", "me"],
        env=prompter.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    earpiece = Recorder(pulse.client_env(), "earpiece.monitor", tmp_path / "earpiece.wav")
    try:
        earpiece.wait_for_audio()
        _start_listening_to_the_call(pulse, prompter)

        leak = subprocess.Popen(  # the same words, from the laptop's speakers into its microphone
            ["paplay", "--device=room", f"--volume={LEAK_VOLUME}", str(EXAMINER)], env=pulse.client_env()
        )
        _play(pulse, "call", EXAMINER)
        assert leak.wait(timeout=60) == 0
        question = prompter.wait_for_event("question", ANSWER_TIMEOUT_S, accepted=True)
        spoke = _play(pulse, "room", ENROLLED_USER)
        answer_end = prompter.wait_for_event("playback_end", ANSWER_TIMEOUT_S, q=question["q"], index=1)
        time.sleep(max(0.0, answer_end["t"] - input_now(prompter.events())) + 1.0)
        code = prompter.interrupt(EXIT_TIMEOUT_S)
        earpiece.stop()
    finally:
        prompter.kill()
        earpiece.kill()
    print(f"\n--- prompter stdout ---\n{prompter.output}")
    assert code == 0, prompter.diagnostics()
    events = prompter.events()
    speakers = {event["utt"]: event for event in events if event["event"] == "speaker"}
    assert speakers[question["utt"]]["source"] == "system"
    assert first(events, "playback_start", q=question["q"], index=1) is not None, events

    mic = [event for event in speakers.values() if event["source"] == "mic"]
    leaked = [event for event in mic if event["wall"] < spoke[0]]
    user = [event for event in mic if event["wall"] >= spoke[0]]
    # the call heard on the microphone: not the user's voice, so dropped — not taken as the user's
    assert leaked and all(event["role"] == "other" and event["score"] is not None for event in leaked), leaked
    # the user: scored as the user
    assert user and all(event["role"] == "own" for event in user), user
    mic_utts = {event["utt"] for event in mic}
    assert not [event for event in events if event["event"] in ("asr", "question") and event["utt"] in mic_utts]
    assert [event["utt"] for event in events if event["event"] == "question"] == [question["utt"]], events
    print(
        f"\nleak scored {[event['score'] for event in leaked]} (not the user's voice, dropped);"
        f" the user scored {[event['score'] for event in user]} (own)"
    )


def test_a_lost_call_source_is_reported_reopened_and_heard_again(tmp_path: Path) -> None:
    """The call's sink unplugged under a running prompter (a stream on it is killed, not moved:
    tests/pulse.py), then plugged back in: one "lost" and one "back" for which "system", and the
    question asked after the return is answered."""
    with PulseServer(["call", "room", "earpiece", "spare"], rescue_streams=False) as pulse:
        pulse.pactl("set-default-sink", "spare")
        pulse.pactl("set-default-source", "spare.monitor")
        prompter = _prompter(pulse, tmp_path)
        try:
            _start_listening_to_the_call(pulse, prompter)
            unplugged = time.time()
            pulse.unload_sink("call")
            lost = prompter.wait_for_event("device", 20, which="system", state="lost")
            time.sleep(3.0)
            pulse.load_sink("call")
            back = prompter.wait_for_event("device", 30, which="system", state="back")
            wait_for_routes(pulse, prompter, CALL_ROUTES)
            asked = _play(pulse, "call", EXAMINER)
            question = prompter.wait_for_event("question", ANSWER_TIMEOUT_S, after_wall=asked[0], accepted=True)
            prompter.wait_for_event("playback_start", ANSWER_TIMEOUT_S, q=question["q"], index=1)
            assert prompter.interrupt(EXIT_TIMEOUT_S) == 0, prompter.diagnostics()
        finally:
            prompter.kill()
    print(f"\n--- prompter stdout ---\n{prompter.output}")
    events = prompter.events()
    story = [
        (event["state"], event["name"]) for event in events if event["event"] == "device" and event["which"] == "system"
    ]
    assert story == [("lost", "call.monitor"), ("back", "call.monitor")], story
    assert lost["wall"] - unplugged < 2.0, f"reported {lost['wall'] - unplugged:.2f} s after the unplug"
    assert any('system audio "call.monitor" lost' in line for line in prompter.lines), prompter.output
    assert any('system audio "call.monitor" is back' in line for line in prompter.lines), prompter.output
    speaker = first(events, "speaker", utt=question["utt"])
    assert speaker["source"] == "system" and question["wall"] > back["wall"], (speaker, back)
