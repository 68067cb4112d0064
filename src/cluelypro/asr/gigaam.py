"""GigaAM v3 (Sber's Russian Conformer ASR) through onnx-asr, on the CPU.

The model comes from `cluelypro models pull gigaam-v3-ctc` (or -rnnt): a folder with onnx-asr's
file names (config.json, v3_ctc.onnx, v3_vocab.txt for CTC). It is loaded offline with
`onnx_asr.load_model(<onnx-asr model name>, <folder>)`: an existing folder makes onnx-asr read
only local files, never the hub. onnx-asr is an optional dependency (the `stronger` extra):
it is imported on `load`, and engines.py leaves this engine out, with the reason, when it is not
installed or the model is not pulled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cluelypro.asr.phantoms import clean_transcript, is_near_silent
from cluelypro.config import SAMPLE_RATE
from cluelypro.packaged import ModelUnavailableError, ProgressCallback


class GigaamRecognizer:
    def __init__(self, folder: Path, onnx_asr_name: str = "gigaam-v3-ctc", threads: int = 1) -> None:
        self.folder = folder
        self.onnx_asr_name = onnx_asr_name
        self.threads = threads
        self.name = onnx_asr_name
        self._model: Any = None

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._model is not None:
            return
        import onnx_asr
        import onnxruntime as rt

        options = rt.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            self._model = onnx_asr.load_model(
                self.onnx_asr_name, self.folder, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # missing or damaged files: one actionable line
            raise ModelUnavailableError(
                f"cannot load {self.onnx_asr_name} from {self.folder} ({type(error).__name__}: {error}); "
                f"pull it again with `cluelypro models pull {self.onnx_asr_name}`"
            ) from None
        if progress:
            progress(1, 1)

    def warm_up(self) -> None:
        self.load()
        noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
        self._model.recognize(noise, sample_rate=SAMPLE_RATE)

    def transcribe(self, audio: np.ndarray) -> str:
        if is_near_silent(audio):
            return ""
        self.load()
        text = self._model.recognize(np.ascontiguousarray(audio, dtype=np.float32), sample_rate=SAMPLE_RATE)
        return clean_transcript(str(text))
