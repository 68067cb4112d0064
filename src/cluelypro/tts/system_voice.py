"""What the two engines over the operating system's own voices (`sapi` on Windows, `say` on
macOS) share.

Neither system call streams audio back as it is synthesised: each answers with a whole clip. So
the text is spoken a sentence at a time, and the first audio — `tts_first_audio` on the
timeline — comes once the first sentence is synthesised, not the whole thesis (as Piper does).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

CHUNK_SECONDS = 0.085
"""The clip of a sentence is handed on in pieces this long, like the other whole-clip engines."""

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence's end mark; pieces that are only blanks are dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]


def chunks(audio: np.ndarray, sample_rate: int) -> Iterator[np.ndarray]:
    step = max(1, round(CHUNK_SECONDS * sample_rate))
    for start in range(0, len(audio), step):
        yield audio[start : start + step]


def pcm16_samples(pcm: bytes) -> np.ndarray:
    """Float32 samples of 16-bit little-endian mono PCM (a trailing odd byte is dropped)."""
    usable = len(pcm) - len(pcm) % 2
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float32) / 32768.0


def sound_file_samples(data: bytes, sample_rate: int) -> np.ndarray:
    """Float32 mono samples of a sound file's bytes (WAV, AIFF…) at `sample_rate`."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1, dtype=np.float32)
    return mono if rate == sample_rate else soxr.resample(mono, rate, sample_rate).astype(np.float32)
