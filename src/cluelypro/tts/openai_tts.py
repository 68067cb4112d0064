"""Speech synthesis by OpenAI's /audio/speech (tts-1, gpt-4o-mini-tts, or any server that speaks
its protocol at `base_url`), streamed: raw PCM (s16le mono 24 kHz) is turned into float32 chunks
as the bytes arrive, so speech starts before the sentence is fully synthesised.

Failures — a timeout before the first byte or between two, 429, 5xx, a connection dropped
mid-stream — are raised as the SDK raises them, and the fallback chain hands over. Closing the
generator (the chain moved on, the listener interrupted) closes the HTTP stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cluelypro.cloud import OpenAIEngine

PCM_RATE = 24_000
"""OpenAI's `pcm` response format: 16-bit little-endian mono at 24 kHz."""
SPEED_RANGE = (0.25, 4.0)
"""What the API accepts; TTS_SPEED is clamped into it rather than refused with a 400."""


def pcm16_chunks(pieces: Iterator[bytes]) -> Iterator[np.ndarray]:
    """Float32 samples of s16le `pieces` as they come; an odd trailing byte waits for the next."""
    carry = b""
    for piece in pieces:
        data = carry + piece
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


class OpenAISynthesizer(OpenAIEngine):
    """A `SpeechSynthesizer` over OpenAI's /audio/speech (one HTTP stream per call)."""

    sample_rate = PCM_RATE

    def __init__(
        self,
        api_key: str,
        model: str = "tts-1",
        voice: str = "alloy",
        speed: float = 1.0,
        base_url: str | None = None,
        timeout_s: float = 1.5,
    ) -> None:
        super().__init__(api_key, model, base_url, timeout_s)
        self.voice = voice
        self.speed = min(max(speed, SPEED_RANGE[0]), SPEED_RANGE[1])
        self.name = f"openai:{model}:{voice}"

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.load()
        with self._client.audio.speech.with_streaming_response.create(
            model=self.model,
            voice=self.voice,
            input=text,
            response_format="pcm",
            speed=self.speed,
        ) as response:
            yield from pcm16_chunks(response.iter_bytes())
