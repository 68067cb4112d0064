"""Audio files in and out: any format libsndfile reads, resampled to the pipeline's 16 kHz mono."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from cluelypro.config import SAMPLE_RATE


class AudioInputError(RuntimeError):
    """The input audio cannot be used; the message is one line a user can act on."""


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mix down to mono and resample to the pipeline rate, as contiguous float32."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_audio(path: Path | str) -> np.ndarray:
    """Read wav/flac/ogg/mp3/… as float32 mono 16 kHz, or raise AudioInputError."""
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"input file not found: {path}")
    if path.is_dir():
        raise AudioInputError(f"input is a folder, not an audio file: {path}")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioInputError(
            f"cannot read {path} as audio ({error}); use wav, flac, ogg or mp3"
        ) from None
    if samples.size == 0:
        raise AudioInputError(f"{path} holds no audio samples")
    return to_mono_16k(samples, rate)


def write_audio(path: Path | str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float32 samples as 16-bit PCM WAV, creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16")
