"""Smart Turn v3.2 (Daily, BSD-2): is the speaker's turn complete, judged from the sound alone.

A Whisper-tiny-sized encoder with a classifier head (8.7 MB ONNX, int8), trained on 23 languages
including Russian. The weights ship inside the PyPI wheel `pipecat-ai` (pinned with its hash in
requirements/models.txt, installed without dependencies); we read the ONNX file by path, check its
SHA-256 and run it with onnxruntime. pipecat itself is never imported.

Input, as pipecat's LocalSmartTurnAnalyzerV3 prepares it: the last 8 s of the utterance (shorter
audio is zero-padded at the start), the 8 s window normalised to zero mean and unit variance, then
Whisper's 80-bin log-mel (25 ms periodic-Hann frames every 10 ms, log10 floored 8 decades below
the maximum, (x + 4) / 4), 800 frames. The model outputs the probability itself (a sigmoid).

The log-mel is computed in float64, as pipecat's (and transformers') is, with faster-whisper's mel
filterbank: the features are then bit-identical to pipecat's (0 difference over 480 windows of the
shared and eval clips). faster-whisper's own float32 FeatureExtractor is not good enough: its
features differ by only ~1e-5, but the int8 model (activations quantised on the fly) turns that
into probabilities up to 0.17 apart; even halving the input level moves some by 0.07.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cluelypro.config import SAMPLE_RATE
from cluelypro.packaged import ModelUnavailableError, ProgressCallback, onnx_cpu_options, package_dir

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
SOURCE_PACKAGE = "pipecat"
SOURCE_DISTRIBUTION = "pipecat-ai==1.14.0"
MODEL_IN_PACKAGE = Path("audio/turn/smart_turn/data") / MODEL_FILE
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
INSTALL_HINT = f"run the setup script (make setup) or `pip install --no-deps {SOURCE_DISTRIBUTION}`"

WINDOW_SECONDS = 8
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
NORMALISE_EPSILON = np.float32(1e-7)
"""Added to the variance before the square root, as transformers' WhisperFeatureExtractor does."""
FFT_SIZE = 400  # 25 ms
HOP = 160  # 10 ms
MEL_BINS = 80
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # decades of log10 kept below the maximum
HANN = np.hanning(FFT_SIZE + 1)[:-1]
"""Periodic Hann window (as torch.hann_window)."""


def default_model_path() -> Path:
    """The ONNX file inside the installed pipecat package, found without importing it."""
    try:
        return package_dir(SOURCE_PACKAGE) / MODEL_IN_PACKAGE
    except ModelUnavailableError:
        raise ModelUnavailableError(
            f"the Smart Turn model needs the {SOURCE_DISTRIBUTION} wheel (its weights only); {INSTALL_HINT}"
        ) from None


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of `audio` as float32, zero-padded at the start when shorter."""
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)[-WINDOW_SAMPLES:]
    return np.pad(samples, (WINDOW_SAMPLES - samples.size, 0))


def normalised(window: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (float32, as the reference computes it)."""
    scaled: np.ndarray = (window - window.mean()) / np.sqrt(window.var() + NORMALISE_EPSILON)
    return scaled


def power_spectrogram(window: np.ndarray) -> np.ndarray:
    """[frames, FFT_SIZE // 2 + 1] float64 power of centred (reflect-padded) frames, the last dropped."""
    padded = np.pad(window.astype(np.float64), FFT_SIZE // 2, mode="reflect")
    frames = sliding_window_view(padded, FFT_SIZE)[::HOP][:-1]
    spectrum: np.ndarray = np.abs(np.fft.rfft(frames * HANN, axis=-1)) ** 2
    return spectrum


def whisper_log_mel(window: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    """[80, frames] float32 Whisper log-mel of a normalised window, `mel_filters` [80, 201] float64."""
    log_mel: np.ndarray = np.log10(np.maximum(mel_filters @ power_spectrogram(window).T, LOG_FLOOR))
    log_mel = np.maximum(log_mel, log_mel.max() - DYNAMIC_RANGE)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


def verified_model_bytes(path: Path) -> bytes:
    """The model file's content, refused unless its SHA-256 is MODEL_SHA256."""
    if not path.is_file():
        raise ModelUnavailableError(f"the Smart Turn model {path} is missing; {INSTALL_HINT}")
    content = path.read_bytes()
    actual = hashlib.sha256(content).hexdigest()
    if actual != MODEL_SHA256:
        raise ModelUnavailableError(
            f"{MODEL_FILE}: SHA-256 of {path} is {actual}, expected {MODEL_SHA256}; the file is damaged "
            f"or from another pipecat-ai version — reinstall it with "
            f"`pip install --force-reinstall --no-deps {SOURCE_DISTRIBUTION}`"
        )
    return content


class SmartTurn:
    """Smart Turn v3.2 through onnxruntime: one call scores the last 8 s of an utterance."""

    name = "smart-turn-v3.2"

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        self._model_path = Path(model_path) if model_path else None
        self.threads = max(1, int(threads))
        self._session: Any = None  # an onnxruntime.InferenceSession once loaded
        self._mel_filters = np.zeros((0, 0))
        self._input = ""
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        return self._model_path or default_model_path()

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._lock:
            if self._session is None:
                self._load()
        if progress:
            progress(1, 1)

    def _load(self) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        path = self.model_path
        session = self._session_of(verified_model_bytes(path), path)
        self._input = session.get_inputs()[0].name
        self._mel_filters = FeatureExtractor.get_mel_filters(SAMPLE_RATE, FFT_SIZE, n_mels=MEL_BINS)
        self._session = session

    def _session_of(self, content: bytes, path: Path) -> Any:
        import onnxruntime as ort

        options = onnx_cpu_options(self.threads)
        try:
            return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelUnavailableError(f"cannot load the Smart Turn model {path} ({error}); {INSTALL_HINT}") from None

    def warm_up(self) -> None:
        self.complete_probability(np.zeros(SAMPLE_RATE, dtype=np.float32))

    def features(self, audio: np.ndarray) -> np.ndarray:
        """[80, 800] log-mel of the last 8 s of `audio`, as the model was trained on."""
        self.load()
        return whisper_log_mel(normalised(last_window(audio)), self._mel_filters)

    def complete_probability(self, audio: np.ndarray) -> float:
        if np.asarray(audio).size == 0:
            raise ValueError("cannot score empty audio")
        features = self.features(audio)[np.newaxis]
        with self._lock:
            outputs = self._session.run(None, {self._input: features})
        return float(outputs[0].reshape(-1)[0])
