"""Speech recognition by OpenAI's transcription API (gpt-4o-mini-transcribe, whisper-1, or any
server that speaks its protocol at `base_url`).

The clip goes up as an in-memory 16-bit WAV (no temporary file, so nothing to clean up or lock on
Windows) with the language hint; the text comes back through the same phantom filter as the
embedded Whisper's, since both models invent the same subtitle credits on noise. Failures — a
timeout, 429, 5xx, a dropped connection, a body that is not JSON — are raised as the SDK raises
them: the fallback chain hands the same clip to the next engine.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from cluelypro.asr.phantoms import clean_transcript, is_near_silent
from cluelypro.cloud import OpenAIEngine
from cluelypro.config import SAMPLE_RATE


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Float samples in [-1, 1] as a 16-bit PCM WAV file, in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class OpenAIRecognizer(OpenAIEngine):
    """A `SpeechRecognizer` over OpenAI's /audio/transcriptions."""

    def __init__(
        self,
        api_key: str,
        model: str = "gpt-4o-mini-transcribe",
        language: str = "ru",
        base_url: str | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        super().__init__(api_key, model, base_url, timeout_s)
        self.language = language
        self.name = f"openai:{model}"

    def transcribe(self, audio: np.ndarray) -> str:
        if is_near_silent(audio):
            return ""
        self.load()
        # response_format "json" is the one format both gpt-4o-*-transcribe and whisper-1 accept.
        transcription = self._client.audio.transcriptions.create(
            file=("speech.wav", wav_bytes(audio), "audio/wav"),
            model=self.model,
            language=self.language,
            response_format="json",
        )
        return clean_transcript(transcription.text)
