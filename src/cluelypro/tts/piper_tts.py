"""Piper voices (VITS, ONNX) through piper-tts's PiperVoice, on the CPU.

A voice is a `.onnx` model with its `.onnx.json` config beside it (`cluelypro models pull
piper-ru-irina`). piper-tts phonemises with its bundled espeak-ng and synthesises one chunk per
sentence, so the first audio comes after the first sentence. It is an optional dependency (the
`stronger` extra), imported on `load`; engines.py leaves this engine out, with the reason, when
it is not installed or the voice is not pulled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cluelypro.packaged import ModelUnavailableError, ProgressCallback


class PiperSynthesizer:
    def __init__(self, model: Path, speed: float = 1.0) -> None:
        self.model = model
        self.speed = speed
        self.name = f"piper:{model.stem}"
        self.sample_rate = 22_050  # the voice's own, read on load
        self._voice: Any = None

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._voice is not None:
            return
        from piper import PiperVoice

        config = Path(f"{self.model}.json")
        if not self.model.is_file() or not config.is_file():
            raise ModelUnavailableError(f"Piper voice {self.model} or its config {config.name} is missing")
        try:
            self._voice = PiperVoice.load(self.model, config_path=config)
        except Exception as error:  # a damaged model or config: one actionable line
            raise ModelUnavailableError(
                f"cannot load the Piper voice {self.model} ({type(error).__name__}: {error})"
            ) from None
        self.sample_rate = int(self._voice.config.sample_rate)
        if progress:
            progress(1, 1)

    def warm_up(self) -> None:
        for _ in self.synthesize("Прогрев синтеза речи."):
            pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.load()
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / self.speed)
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
