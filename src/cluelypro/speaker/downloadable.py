"""Speaker embedders for users who can download their weights (not embedded: they come from the
Hugging Face hub or ModelScope on first use, and need torch). Select with SPEAKER_ENGINE.

- `ecapa`: SpeechBrain ECAPA-TDNN trained on VoxCeleb (`pip install speechbrain torch`);
- `eres2netv2`: 3D-Speaker ERes2NetV2 through ModelScope (`pip install modelscope torch`).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np

from cluelypro.packaged import ModelUnavailableError, ProgressCallback, cache_dir
from cluelypro.speaker.base import l2_normalised


def _version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class EcapaEmbedder:
    name = "speechbrain_ecapa_voxceleb"
    dim = 192
    source = "speechbrain/spkrec-ecapa-voxceleb"

    def __init__(self) -> None:
        self._model: Any = None  # loaded on first use

    @property
    def version(self) -> str:
        return f"{self.source}+speechbrain{_version_of('speechbrain')}"

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._model is not None:
            return
        try:
            from speechbrain.inference.speaker import EncoderClassifier
        except ImportError:
            raise ModelUnavailableError(
                "SPEAKER_ENGINE=ecapa needs SpeechBrain: `pip install speechbrain torch` "
                "(its weights download from the Hugging Face hub on first use)"
            ) from None
        self._model = EncoderClassifier.from_hparams(
            source=self.source, savedir=str(cache_dir() / "ecapa"), run_opts={"device": "cpu"}
        )

    def warm_up(self) -> None:
        self.embed(np.zeros(16_000, dtype=np.float32))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        import torch

        self.load()
        with torch.no_grad():
            embedding = self._model.encode_batch(torch.from_numpy(np.ascontiguousarray(audio))[None])
        return l2_normalised(embedding.cpu().numpy())


class Eres2NetV2Embedder:
    name = "eres2netv2_sv_zh-cn_16k-common"
    dim = 192
    source = "iic/speech_eres2netv2_sv_zh-cn_16k-common"

    def __init__(self) -> None:
        self._pipeline: Any = None  # loaded on first use

    @property
    def version(self) -> str:
        return f"{self.source}+modelscope{_version_of('modelscope')}"

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._pipeline is not None:
            return
        try:
            from modelscope.pipelines import pipeline
            from modelscope.utils.constant import Tasks
        except ImportError:
            raise ModelUnavailableError(
                "SPEAKER_ENGINE=eres2netv2 needs ModelScope: `pip install modelscope torch` "
                "(its weights download from ModelScope on first use)"
            ) from None
        self._pipeline = pipeline(task=Tasks.speaker_verification, model=self.source)

    def warm_up(self) -> None:
        self.embed(np.zeros(16_000, dtype=np.float32))

    def embed(self, audio: np.ndarray) -> np.ndarray:
        self.load()
        result = self._pipeline([np.ascontiguousarray(audio)], output_emb=True)
        return l2_normalised(result["embs"][0])
