"""The embedded engines as the test servers use them: Whisper behind a lock (an instance serves one
thread at a time), RHVoice at 24 kHz at any speed, and the WAV/PCM conversions of the wire."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np
import soundfile as sf
import soxr

from cluelypro.asr.whisper import WhisperRecognizer
from cluelypro.config import SAMPLE_RATE
from cluelypro.tts.rhvoice import RhVoiceSynthesizer

WIRE_RATE = 24_000  # both providers' PCM rate here


class EmbeddedEars:
    """Whisper for requests that may arrive on several threads at once."""

    def __init__(self, recognizer: WhisperRecognizer) -> None:
        self.recognizer = recognizer
        self._lock = threading.Lock()

    def transcribe_file(self, data: bytes) -> str:
        """Text of an audio file's bytes in any rate and channel count soundfile reads."""
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != SAMPLE_RATE:
            mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
        with self._lock:
            return self.recognizer.transcribe(mono)


class EmbeddedVoice:
    """RHVoice resampled to 24 kHz; one engine per speed (its rate is fixed when it speaks)."""

    def __init__(self, voice: str = "anna") -> None:
        self.voice = voice
        self._engines: dict[float, RhVoiceSynthesizer] = {}
        self._lock = threading.Lock()

    def stream(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        engine = self._engine(min(max(speed, 0.5), 2.0))  # RHVoice's absolute rate is -1 … +1
        if engine.sample_rate == WIRE_RATE:
            yield from engine.synthesize(text)
            return
        resampler = soxr.ResampleStream(engine.sample_rate, WIRE_RATE, 1, dtype="float32")
        for chunk in engine.synthesize(text):
            yield resampler.resample_chunk(chunk)
        yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    def wav(self, text: str, speed: float = 1.0, sample_rate: int = WIRE_RATE) -> bytes:
        audio = np.concatenate([np.zeros(0, dtype=np.float32), *self.stream(text, speed)])
        if sample_rate != WIRE_RATE:
            audio = soxr.resample(audio, WIRE_RATE, sample_rate).astype(np.float32)
        buffer = io.BytesIO()
        sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()

    def _engine(self, speed: float) -> RhVoiceSynthesizer:
        with self._lock:
            if speed not in self._engines:
                engine = RhVoiceSynthesizer(self.voice, speed)
                engine.load()
                self._engines[speed] = engine
            return self._engines[speed]


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


async def run_to_end(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The items of a blocking generator as a worker thread produces them. The thread runs it to
    its end whatever the client does: an RHVoice stream left half-read (a dropped connection, an
    injected reset) would hold the engine and stall the next request until garbage collection."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def produce() -> None:
        try:
            for chunk in chunks:
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
        except Exception as error:  # raised in the response, which then breaks off
            loop.call_soon_threadsafe(queue.put_nowait, error)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=produce, name="server-stream", daemon=True).start()
    while (chunk := await queue.get()) is not None:
        if isinstance(chunk, Exception):
            raise chunk
        yield chunk


async def pieces(body: bytes, count: int = 4) -> AsyncIterator[bytes]:
    """`body` sent in `count` chunks, so that a stream fault can cut or spoil it midway."""
    size = -(-len(body) // count)
    for start in range(0, len(body), size):
        yield body[start : start + size]
