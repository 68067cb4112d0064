"""Audio files in and out: any format libsndfile reads, streamed in blocks at the pipeline's
16 kHz mono, so memory stays flat however long the file.

`open_input` checks a file up front (it exists, is audio, holds samples), before minutes of model
loading. Stereo is mixed down: a voice on one side loses at most 6 dB, and a call recorded with one
voice per side keeps both. A file with more channels keeps the one with the most speech
(`SpeechMeter`, in a first streamed pass): mixing 8 channels costs speech in one of them 18 dB.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE
from cluelypro.private_files import open_private

READ_FRAMES = 16_384  # frames read at a time, at the file's own rate
SPEECH_BAND_HZ = (300.0, 3400.0)
METER_FRAME_S = 0.032
MIXED_DOWN = None  # AudioInput.channel when every channel is mixed (mono and stereo files)


class AudioInputError(RuntimeError):
    """The input audio cannot be used; the message is one line a user can act on."""


def shown(path: Path | str) -> str:
    """The path as text that prints anywhere: a byte that is not UTF-8 reads as \\xff."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class AudioInput:
    """An input file that passed `open_input`'s checks."""

    path: Path
    rate: int
    channels: int
    frames: int  # at the file's rate
    channel: int | None  # 0-based channel kept, or MIXED_DOWN

    @property
    def samples(self) -> int:
        """Its length at 16 kHz."""
        return round(self.frames * SAMPLE_RATE / self.rate)


class SpeechMeter:
    """How much speech each channel holds. Per 32 ms frame it measures the energy in the speech
    band (300–3400 Hz). Speech comes and goes with syllables and pauses, so its frames rise far
    above the channel's floor (its 20th percentile frame); steady noise, however loud, stays within
    about a dB of its floor (a 32 ms frame spans ~100 spectral bins, so its level varies by ~0.4 dB).
    A channel scores the energy above its floor of the frames at least 6 dB above it. Histograms
    of frame levels (0.5 dB bins) keep memory constant however long the file."""

    LEVELS_DB = np.arange(-130.0, 30.5, 0.5)
    FLOOR_PERCENTILE = 0.2
    ABOVE_FLOOR_DB = 6.0

    def __init__(self, rate: int, channels: int) -> None:
        self.frame = max(1, round(rate * METER_FRAME_S))
        frequencies = np.fft.rfftfreq(self.frame, 1 / rate)
        self._band = (frequencies >= SPEECH_BAND_HZ[0]) & (frequencies <= SPEECH_BAND_HZ[1])
        self._window = np.hanning(self.frame)[None, :, None]
        self._counts = np.zeros((channels, len(self.LEVELS_DB) - 1), dtype=np.int64)

    def add(self, block: np.ndarray) -> None:
        """Measure a (frames × channels) block; a partial frame at its end is left out."""
        whole = len(block) // self.frame * self.frame
        frames = block[:whole].reshape(-1, self.frame, block.shape[1])
        spectrum = np.fft.rfft(frames * self._window, axis=1)[:, self._band, :]
        energy = (spectrum.real**2 + spectrum.imag**2).sum(axis=1) / self.frame
        levels = np.clip(10 * np.log10(energy + 1e-13), self.LEVELS_DB[0], self.LEVELS_DB[-1])
        for channel, channel_levels in enumerate(levels.T):
            self._counts[channel] += np.histogram(channel_levels, self.LEVELS_DB)[0]

    def speechiest(self) -> int:
        """The 0-based channel with the most speech energy above its floor."""
        energies = 10 ** ((self.LEVELS_DB[:-1] + 0.25) / 10)
        scores = []
        for counts in self._counts:
            floor = np.searchsorted(np.cumsum(counts), self.FLOOR_PERCENTILE * counts.sum())
            loud = self.LEVELS_DB[:-1] >= self.LEVELS_DB[floor] + self.ABOVE_FLOOR_DB
            scores.append(float((counts * (energies - energies[floor]))[loud].sum()))
        return int(np.argmax(scores))


def open_input(path: Path | str) -> AudioInput:
    """Check an input file before anything else is loaded, and choose the channel to hear;
    AudioInputError says in one line what is wrong."""
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"input file not found: {shown(path)}")
    if path.is_dir():
        raise AudioInputError(f"input is a folder, not an audio file: {shown(path)}")
    try:
        with _sound_file(path) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as error:
        raise AudioInputError(
            f"cannot read {shown(path)} as audio ({_reason(error)}); use wav, flac, ogg or mp3"
        ) from None
    if frames <= 0:
        raise AudioInputError(f"{shown(path)} holds no audio samples")
    channel = _speechiest_channel(path, rate, channels) if channels > 2 else MIXED_DOWN
    return AudioInput(path, rate, channels, frames, channel)


def stream_audio(audio: AudioInput, block: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The file as 16 kHz mono float32 blocks of `block` samples (the last one may be shorter),
    read, mixed down and resampled a block at a time."""
    return _reblocked(_samples(audio), block)


def read_audio(path: Path | str) -> np.ndarray:
    """A short file whole, as float32 mono 16 kHz, through the same checks and reader; or raise
    AudioInputError."""
    return np.concatenate([np.zeros(0, np.float32), *_samples(open_input(path))])


def in_blocks(samples: np.ndarray, block: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """In-memory 16 kHz samples in the blocks `stream_audio` yields."""
    return (samples[start : start + block] for start in range(0, len(samples), block))


def in_blocks_then_silence(samples: np.ndarray, total: int, block: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """`samples`, then silence, in full blocks until `total` samples (rounded up to a block)."""
    for start in range(0, total, block):
        part = samples[start : start + block]
        yield part if len(part) == block else np.pad(part, (0, block - len(part)))


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono samples in memory (a synthesiser's) as contiguous 16 kHz float32."""
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


@contextmanager
def audio_writer(path: Path, rate: int) -> Iterator[Callable[[np.ndarray], None]]:
    """A writer of mono float32 blocks into `path`, created owner-only (0600) with its folder, as
    16-bit PCM: FLAC for a .flac name, else WAV."""
    container = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    with open_private(path, "wb") as handle, sf.SoundFile(handle, "w", rate, 1, "PCM_16", format=container) as sound:
        yield lambda samples: sound.write(np.clip(samples, -1.0, 1.0))


def write_audio(path: Path | str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float32 samples as a private 16-bit PCM file (see `audio_writer`)."""
    with audio_writer(Path(path), rate) as write:
        write(samples)


@contextmanager
def _sound_file(path: Path) -> Iterator[sf.SoundFile]:
    # Opened by Python, not by name: libsndfile cannot open a name that is not UTF-8.
    with path.open("rb") as handle, sf.SoundFile(handle) as sound:
        yield sound


def _reason(error: Exception) -> str:
    return getattr(error, "error_string", None) or str(error) or type(error).__name__


def _file_blocks(path: Path, frames: int) -> Iterator[np.ndarray]:
    """(frames × channels) float32 blocks of the file; a read error is an AudioInputError."""
    try:
        with _sound_file(path) as sound:
            yield from sound.blocks(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioInputError(f"cannot read {shown(path)} ({_reason(error)})") from None


def _speechiest_channel(path: Path, rate: int, channels: int) -> int:
    meter = SpeechMeter(rate, channels)
    for block in _file_blocks(path, meter.frame * max(1, READ_FRAMES // meter.frame)):
        meter.add(block)
    return meter.speechiest()


def _samples(audio: AudioInput) -> Iterator[np.ndarray]:
    """The file at 16 kHz mono, in pieces of whatever length the resampler gives."""
    return resampled(
        (_mono(frames, audio.channel) for frames in _file_blocks(audio.path, READ_FRAMES)), audio.rate, SAMPLE_RATE
    )


def _mono(frames: np.ndarray, channel: int | None) -> np.ndarray:
    if channel is MIXED_DOWN:  # the mean of the channels, as a product: numpy's mean over rows is 10× slower
        return frames @ np.full(frames.shape[1], 1 / frames.shape[1], dtype=np.float32)
    return frames[:, channel]


def resampled(blocks: Iterable[np.ndarray], rate: int, new_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `rate` as blocks at `new_rate`, resampled as one stream."""
    if rate == new_rate:
        yield from blocks
        return
    resampler = soxr.ResampleStream(rate, new_rate, 1, dtype="float32", quality="HQ")
    for block in blocks:
        yield resampler.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _reblocked(pieces: Iterable[np.ndarray], block: int) -> Iterator[np.ndarray]:
    pending = np.zeros(0, np.float32)
    for piece in pieces:
        pending = np.concatenate([pending, piece])
        while len(pending) >= block:
            yield np.array(pending[:block], dtype=np.float32)
            pending = pending[block:]
    if len(pending):
        yield np.array(pending, dtype=np.float32)
