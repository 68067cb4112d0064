"""Scoring recognition: each recording through the ASR chain, against its reference."""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluelypro.eval.inputs import LabelledRecording
from cluelypro.eval.text import Errors, corpus_errors, errors, lemmas, phrase_in
from cluelypro.pipeline.fallback import AllEnginesFailed, EngineChain, Skipped


@dataclass(frozen=True)
class Transcription:
    text: str
    engine: str
    seconds: float


async def transcribe(chain: EngineChain, audio: np.ndarray) -> tuple[str, str]:
    """(text, engine) of the first engine of the ASR chain that answers, as the pipeline asks it."""
    skipped: list[Skipped] = []
    async with aclosing(chain.stream(lambda engine: iter((engine.transcribe(audio),)))) as items:
        async for item in items:
            if isinstance(item, Skipped):
                skipped.append(item)
            else:
                return item.item, item.engine
    raise AllEnginesFailed("asr", skipped)  # not reached: the chain raises it itself


@dataclass(frozen=True)
class FileScore:
    recording: LabelledRecording
    transcription: Transcription
    errors: Errors
    key_terms_found: tuple[str, ...]

    def entry(self) -> dict[str, Any]:
        recording = self.recording
        return {
            "file": recording.file,
            "reference": recording.reference,
            "hypothesis": self.transcription.text,
            "wer": round(self.errors.wer, 4),
            "cer": round(self.errors.cer, 4),
            "key_terms": list(recording.key_terms),
            "key_terms_found": list(self.key_terms_found),
            "word_errors": self.errors.word_errors,
            "reference_words": self.errors.reference_words,
            "engine": self.transcription.engine,
            "seconds": round(self.transcription.seconds, 3),
        }


def score(recording: LabelledRecording, transcription: Transcription, language: str = "ru") -> FileScore:
    heard = lemmas(transcription.text, language)
    found = tuple(term for term in recording.key_terms if phrase_in(term, heard, language))
    return FileScore(recording, transcription, errors(recording.reference, transcription.text, language), found)


def summarize(scores: list[FileScore], skipped: list[dict[str, str]]) -> dict[str, Any]:
    """Corpus-level rates (all errors over all reference words) and one entry per file."""
    total = corpus_errors(score.errors for score in scores)
    terms = sum(len(score.recording.key_terms) for score in scores)
    found = sum(len(score.key_terms_found) for score in scores)
    return {
        "wer": round(total.wer, 4),
        "cer": round(total.cer, 4),
        "key_term_accuracy": round(found / terms, 4) if terms else None,
        "files_scored": len(scores),
        "reference_words": total.reference_words,
        "key_terms": terms,
        "skipped": skipped,
        "files": [score.entry() for score in scores],
    }
