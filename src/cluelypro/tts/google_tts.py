"""Speech synthesis by Google Cloud Text-to-Speech (ru-RU WaveNet/Neural2/Standard voices).

The client runs over the REST transport: the same JSON API as gRPC, with no gRPC channel to keep
alive, and an `endpoint` such as http://127.0.0.1:8080 works as it is (the transport keeps a
scheme it is given). Credentials are a service account's JSON key (GOOGLE_APPLICATION_CREDENTIALS).
With it the SDK authorises each request by a JWT that google-auth signs locally with the key
("self-signed JWT", AIP-4111) rather than by fetching an OAuth access token from the key's
token_uri: no extra round trip before the first request.

`synthesize_speech` answers with the whole clip (a WAV of LINEAR16 samples); it is yielded in
~85 ms chunks. No retries: the fallback chain hands over on any failure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from cluelypro.cloud import missing_sdk
from cluelypro.packaged import ModelUnavailableError, ProgressCallback

SAMPLE_RATE = 24_000
CHUNK_SECONDS = 0.085
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
SPEED_RANGE = (0.25, 4.0)
"""Google's speaking_rate range; TTS_SPEED is clamped into it rather than refused with a 400."""


def language_of(voice: str) -> str:
    """ "ru-RU-Wavenet-D" -> "ru-RU"."""
    parts = voice.split("-")
    if len(parts) < 3:
        raise ModelUnavailableError(f"Google TTS voice {voice!r} is not of the form ru-RU-Wavenet-D")
    return "-".join(parts[:2])


def wav_samples(wav: bytes, sample_rate: int) -> np.ndarray:
    """Float32 mono samples of a WAV file's bytes (header stripped), at `sample_rate`."""
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1, dtype=np.float32)
    return mono if rate == sample_rate else soxr.resample(mono, rate, sample_rate).astype(np.float32)


class GoogleCloudSynthesizer:
    """A `SpeechSynthesizer` over Google Cloud TTS. Thread-safe (the SDK's session is)."""

    remote = True
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        credentials_path: Path | None,
        voice: str = "ru-RU-Wavenet-D",
        speed: float = 1.0,
        endpoint: str | None = None,
        timeout_s: float = 1.5,
    ) -> None:
        self.credentials_path = credentials_path
        self.voice = voice
        self.speed = min(max(speed, SPEED_RANGE[0]), SPEED_RANGE[1])
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.name = f"google:{voice}"
        self._client: Any = None  # texttospeech.TextToSpeechClient once loaded

    def __repr__(self) -> str:
        return f"GoogleCloudSynthesizer(voice={self.voice!r}, endpoint={self.endpoint!r})"

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._client is not None:
            return
        try:
            from google.api_core.client_options import ClientOptions
            from google.cloud import texttospeech
            from google.oauth2 import service_account
        except ImportError as error:
            raise missing_sdk("Google Cloud Text-to-Speech", error) from None
        language = language_of(self.voice)
        credentials = self._credentials(service_account)
        options = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
        self._client = texttospeech.TextToSpeechClient(
            credentials=credentials, transport="rest", client_options=options
        )
        self._types = texttospeech
        self._voice = texttospeech.VoiceSelectionParams(language_code=language, name=self.voice)
        self._audio_config = texttospeech.AudioConfig(
            audio_encoding=texttospeech.AudioEncoding.LINEAR16,
            sample_rate_hertz=SAMPLE_RATE,
            speaking_rate=self.speed,
        )

    def warm_up(self) -> None:
        """Nothing to warm without a billed request: the client is ready once loaded."""
        self.load()

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        self.load()
        request = self._types.SynthesizeSpeechRequest(
            input=self._types.SynthesisInput(text=text), voice=self._voice, audio_config=self._audio_config
        )
        response = self._client.synthesize_speech(request=request, retry=None, timeout=self.timeout_s)
        audio = wav_samples(response.audio_content, SAMPLE_RATE)
        step = round(CHUNK_SECONDS * SAMPLE_RATE)
        for start in range(0, len(audio), step):
            yield audio[start : start + step]

    def _credentials(self, service_account):
        """The service account's credentials, scoped so that google-auth signs its own JWTs."""
        path = self.credentials_path or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            raise ModelUnavailableError("Google TTS: GOOGLE_APPLICATION_CREDENTIALS not set")
        try:
            return service_account.Credentials.from_service_account_file(str(path), scopes=[SCOPE])
        except FileNotFoundError:
            raise ModelUnavailableError(f"Google TTS: no credentials file {path}") from None
        except (OSError, ValueError) as error:  # unreadable, not JSON, not a service account, bad key
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            raise ModelUnavailableError(f"Google TTS: cannot use the service-account file {path} ({reason})") from None
