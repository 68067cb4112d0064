"""Input files streamed in blocks, multichannel input, and the earpiece track, on real speech.

The speech is a real human recording (Golos, golos_00: «шестьдесят тысяч тенге сколько будет
стоить»), placed at 48 kHz in one channel of a multichannel file among silence and steady noises
(white, pink and brown noise louder than the speech, mains hum, a steady tone in the speech band).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.audio.echo import EchoGate
from cluelypro.audio.io import read_audio
from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE
from cluelypro.metrics.timeline import Clock
from conftest import RU_AUDIO

RATE = 48_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """golos_00 at 16 kHz, read by soundfile itself (not by the code under test)."""
    samples, rate = sf.read(RU_AUDIO / "golos_00.wav", dtype="float32")
    assert rate == SAMPLE_RATE and samples.ndim == 1
    return samples


def db(power: float) -> float:
    return 10 * np.log10(max(power, 1e-20))


def snr_db(heard: np.ndarray, reference: np.ndarray) -> float:
    """How closely `heard` follows `reference`, at the best gain: reference energy / error energy."""
    n = min(len(heard), len(reference))
    heard, reference = heard[:n], reference[:n]
    gain = float(heard @ reference) / float(reference @ reference)
    return db(float(reference @ reference)) - db(float(((heard / gain) - reference) @ ((heard / gain) - reference)))


def noises(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Seven channels without speech, several of them louder than the speech."""
    white = rng.normal(0, 0.05, n)
    spectrum, frequency = np.fft.rfft(rng.normal(0, 1, n)), np.arange(1, n // 2 + 2)
    pink, brown = np.fft.irfft(spectrum / np.sqrt(frequency), n), np.fft.irfft(spectrum / frequency, n)
    t = np.arange(n) / RATE
    hum = sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8))
    tone = 0.05 * np.sin(2 * np.pi * 1000 * t)
    return [
        np.zeros(n),
        white,
        0.05 * pink / pink.std(),
        0.05 * brown / brown.std(),
        hum,
        tone,
        rng.normal(0, 0.003, n),
    ]


def speech_at_48k(speech: np.ndarray, lead_s: float = 1.0, tail_s: float = 1.0) -> np.ndarray:
    padded = np.concatenate([np.zeros(round(lead_s * SAMPLE_RATE)), speech, np.zeros(round(tail_s * SAMPLE_RATE))])
    return soxr.resample(padded.astype(np.float32), SAMPLE_RATE, RATE)


@pytest.mark.parametrize("speech_channel", [0, 2, 7])
def test_an_8_channel_file_keeps_the_channel_with_the_speech(
    speech_channel: int, speech: np.ndarray, tmp_path: Path
) -> None:
    voice = speech_at_48k(speech)
    others = noises(len(voice), np.random.default_rng(speech_channel))
    channels = others[:speech_channel] + [voice] + others[speech_channel:]
    path = tmp_path / "eight.wav"
    sf.write(path, np.stack(channels, axis=1).astype(np.float32), RATE, subtype="FLOAT")

    heard = read_audio(path)
    reference = soxr.resample(voice, RATE, SAMPLE_RATE)
    mixed = soxr.resample(np.mean(channels, axis=0), RATE, SAMPLE_RATE)
    print(
        f"speech channel {speech_channel}: kept {snr_db(heard, reference):.1f} dB,"
        f" mixed {snr_db(mixed, reference):.1f} dB"
    )
    assert snr_db(heard, reference) > 40, "the speech channel itself, not a mix"
    assert snr_db(mixed, reference) < 10, "control: the mix of all channels buries the speech"


def test_stereo_is_mixed_down(speech: np.ndarray, tmp_path: Path) -> None:
    """Documented choice: both sides are heard (a call recorded with one voice per side keeps
    both); the same speech on both sides is unchanged by the mix, a voice on one side loses 6 dB."""
    voice = speech_at_48k(speech)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([voice, np.zeros_like(voice)], axis=1), RATE, subtype="FLOAT")
    heard = read_audio(path)
    expected = soxr.resample(voice / 2, RATE, SAMPLE_RATE)
    assert len(heard) == len(expected) and np.abs(heard - expected).max() < 1e-5


def test_the_streamed_file_is_the_whole_file_resampled(speech: np.ndarray, tmp_path: Path) -> None:
    from cluelypro.audio.io import open_input, stream_audio

    voice = speech_at_48k(speech, tail_s=0.517)  # not a whole number of blocks
    path = tmp_path / "talk.flac"
    sf.write(path, np.stack([voice, 0.8 * voice], axis=1), RATE)
    whole = soxr.resample(sf.read(path, dtype="float32")[0].mean(axis=1), RATE, SAMPLE_RATE)
    blocks = list(stream_audio(open_input(path)))
    assert {len(block) for block in blocks[:-1]} == {BLOCK_SAMPLES} and 0 < len(blocks[-1]) <= BLOCK_SAMPLES
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(whole) and np.abs(streamed - whole).max() < 1e-4
    assert open_input(path).samples == len(whole)


# --- bounded memory -----------------------------------------------------------------------------


def write_long_recording(path: Path, minutes: int, speech: np.ndarray, channels: int) -> None:
    """Mostly silence at 48 kHz, the real question every 5 minutes in the last channel, mains hum
    in the first, written a block at a time."""
    question = speech_at_48k(speech, lead_s=0.0, tail_s=0.0)
    block = 60 * RATE
    hum = (0.05 * np.sin(2 * np.pi * 50 * np.arange(block) / RATE)).astype(np.float32)
    with sf.SoundFile(path, "w", RATE, channels, "PCM_16") as sound:
        for minute in range(minutes):
            frames = np.zeros((block, channels), np.float32)
            frames[:, 0] = hum
            if minute % 5 == 0:
                frames[RATE : RATE + len(question), -1] = question
            sound.write(frames)


def peak_rss(program: str, *args: object) -> int:
    """Peak resident memory (kB) of a fresh Python running `program` with `args` as sys.argv[1:]:
    everything counts, libsndfile's and soxr's buffers too."""
    code = f"{program}\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


READ_FILE = """
import sys
from cluelypro.audio.io import open_input, stream_audio
audio = open_input(sys.argv[1])
print(sum(len(block) for block in stream_audio(audio)), audio.channel)
"""


@pytest.mark.slow  # writes and reads an hour of audio: 15–40 s on 2 cores
@pytest.mark.parametrize("channels", [2, 3])
def test_reading_a_file_takes_the_same_memory_for_10_and_60_minutes(
    channels: int, speech: np.ndarray, tmp_path: Path
) -> None:
    peaks = {}
    for minutes in (10, 60):
        path = tmp_path / f"{minutes}min.flac"
        write_long_recording(path, minutes, speech, channels)
        peaks[minutes] = peak_rss(READ_FILE, path)
        path.unlink()
    print(f"{channels} channels: peak RSS {peaks[10] / 1024:.0f} MB (10 min), {peaks[60] / 1024:.0f} MB (60 min)")
    assert peaks[60] < 1.1 * peaks[10], "memory must not grow with the file's length"


# --- the earpiece track -------------------------------------------------------------------------


def play_all(earpiece: TrackEarpiece, plays: list[tuple[float, np.ndarray] | None]) -> list[tuple[float, float]]:
    """Play each (at, chunk); None stands for an interruption (`stop`)."""

    async def played() -> list[tuple[float, float]]:
        times = []
        for play in plays:
            if play is None:
                earpiece.stop()
            else:
                at, chunk = play
                times.append(await earpiece.play(chunk, at))
        return times

    return asyncio.run(played())


def test_the_track_mixes_overlaps_leaves_zeros_between_and_runs_past_the_input(
    speech: np.ndarray, tmp_path: Path
) -> None:
    a, b, c = speech[:4000], speech[4000:12000], speech[12000:20000]
    length = 2 * SAMPLE_RATE
    with TrackEarpiece(Clock(fast=True), length) as earpiece:
        times = play_all(earpiece, [(0.5, a), (0.55, b), None, (0.6, c), (1.95, speech)])
        assert times[0] == (0.5, 0.75) and times[1] == (0.75, 1.25), "a chunk waits for the one before it"
        assert times[2] == (0.6, 1.1), "after an interruption a chunk plays at once, over what was queued"
        expected = np.zeros(round(1.95 * SAMPLE_RATE) + len(speech), np.float32)
        for (start, _), chunk in zip(times, (a, b, c, speech), strict=True):
            expected[round(start * SAMPLE_RATE) : round(start * SAMPLE_RATE) + len(chunk)] += chunk
        assert len(earpiece.track) == len(expected) > length
        assert np.abs(earpiece.track - expected).max() < 1e-6

        earpiece.write(tmp_path / "earpiece.wav", 44_100)
        written, rate = sf.read(tmp_path / "earpiece.wav", dtype="float32")
        resampled = soxr.resample(expected, SAMPLE_RATE, 44_100)
        assert rate == 44_100 and len(written) == len(resampled)
        assert np.abs(written - resampled).max() < 2 / 32768, "the same track, at the input's rate, 16-bit"


def test_the_echo_gate_hears_the_earpiece_until_its_tail_ends_and_not_after_a_stop() -> None:
    echo = EchoGate(tail_s=0.3)
    with TrackEarpiece(Clock(fast=True), SAMPLE_RATE) as earpiece:
        earpiece.echo = echo
        play_all(earpiece, [(0.5, np.full(SAMPLE_RATE // 2, 0.1, np.float32))])
        assert echo.playing_until == pytest.approx(1.0)
        assert [echo.is_echo(t) for t in (0.7, 1.25, 1.35)] == [True, True, False]
        earpiece.stop()
        assert not echo.is_echo(0.7), "an interrupted answer is no longer heard"


def test_a_track_shorter_than_the_input_is_padded_to_it() -> None:
    with TrackEarpiece(Clock(fast=True), 3 * SAMPLE_RATE) as earpiece:
        play_all(earpiece, [(0.25, np.full(800, 0.5, np.float32))])
        track = earpiece.track
    assert len(track) == 3 * SAMPLE_RATE and track.sum() == pytest.approx(400.0)


PLAY_TRACK = """
import asyncio, sys
from pathlib import Path
import soundfile as sf
from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.audio.echo import EchoGate
from cluelypro.config import SAMPLE_RATE
from cluelypro.metrics.timeline import Clock

speech = sf.read(sys.argv[1], dtype="float32")[0]
minutes, keep, output = int(sys.argv[2]), sys.argv[3] == "keep", Path(sys.argv[4])

async def answers(earpiece):  # the real question's audio in 100 ms chunks: 4 s of answer every 10 s
    for answer in range(minutes * 6):
        for first in range(0, 4 * SAMPLE_RATE, 1600):
            await earpiece.play(speech[first : first + 1600], answer * 10.0)

with TrackEarpiece(Clock(fast=True), minutes * 60 * SAMPLE_RATE, keep=keep) as earpiece:
    asyncio.run(answers(earpiece))
    if keep:
        earpiece.write(output, 48_000)
"""


@pytest.mark.slow  # plays an hour-long track: 1–5 s each on 2 cores
@pytest.mark.parametrize("keep", [True, False])
def test_the_earpiece_takes_the_same_memory_for_10_and_60_minutes(
    keep: bool, speech: np.ndarray, tmp_path: Path
) -> None:
    question = tmp_path / "question.wav"
    sf.write(question, np.tile(speech, 2), SAMPLE_RATE)
    peaks = {}
    for minutes in (10, 60):
        output = tmp_path / f"earpiece_{minutes}.wav"
        peaks[minutes] = peak_rss(PLAY_TRACK, question, minutes, "keep" if keep else "drop", output)
        assert output.exists() == keep
        if keep:
            assert sf.info(output).frames == minutes * 60 * RATE
            output.unlink()
    print(f"keep={keep}: peak RSS {peaks[10] / 1024:.0f} MB (10 min), {peaks[60] / 1024:.0f} MB (60 min)")
    assert peaks[60] < 1.1 * peaks[10], "memory must not grow with the track's length"
