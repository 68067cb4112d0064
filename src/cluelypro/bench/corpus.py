"""The recordings a benchmark replays: every audio file of a folder, or the default corpus."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cluelypro.audio.io import AudioInputError, read_audio, to_mono_16k
from cluelypro.config import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
EXAMINER_VOICE = "aleksandr"
LEAD_SILENCE_S = 0.5


@dataclass
class Recording:
    name: str
    audio: np.ndarray = field(repr=False)  # 16 kHz mono float32
    source: str  # file path, or "rhvoice:<voice>" for a synthesised question

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def project_root() -> Path:
    import cluelypro

    return Path(cluelypro.__file__).resolve().parents[2]


def shared_ru_dir() -> Path:
    return project_root().parent / "shared" / "audio" / "ru"


def folder_corpus(folder: Path) -> list[Recording]:
    """Every wav/flac/ogg/mp3 in `folder` (not recursive), sorted by name."""
    if not folder.is_dir():
        raise AudioInputError(f"corpus folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise AudioInputError(f"no audio files (wav/flac/ogg/mp3) in {folder}")
    return [Recording(path.name, read_audio(path), str(path)) for path in paths]


def synthesized_questions(questions: list[str], voice: str = EXAMINER_VOICE) -> list[Recording]:
    """Each question spoken by an RHVoice examiner, after LEAD_SILENCE_S of silence."""
    from cluelypro.tts.rhvoice import RhVoiceSynthesizer

    examiner = RhVoiceSynthesizer(voice)
    examiner.load()
    try:
        recordings = []
        for number, question in enumerate(questions, 1):
            speech = to_mono_16k(np.concatenate(list(examiner.synthesize(question))), examiner.sample_rate)
            lead = np.zeros(round(LEAD_SILENCE_S * SAMPLE_RATE), dtype=np.float32)
            audio = np.concatenate([lead, 0.8 * speech / max(1e-6, float(np.abs(speech).max()))])
            recordings.append(Recording(f"exam_{number}", audio.astype(np.float32), f"rhvoice:{voice}: {question}"))
        return recordings
    finally:
        examiner.close()


def default_corpus() -> list[Recording]:
    """The six sample exam questions, plus the shared real Russian recordings when present."""
    from cluelypro.prompter.samples import EXAM_QUESTIONS

    recordings = synthesized_questions(EXAM_QUESTIONS)
    shared = shared_ru_dir()
    if shared.is_dir():
        recordings += [Recording(p.name, read_audio(p), str(p)) for p in sorted(shared.glob("*.wav"))]
    return recordings


def load_corpus(folder: Path | None, limit: int | None = None) -> list[Recording]:
    """`folder`'s recordings, or the default corpus; only the first `limit` when given."""
    if folder is None and limit is not None:
        from cluelypro.prompter.samples import EXAM_QUESTIONS

        if limit <= len(EXAM_QUESTIONS):  # do not read the shared folder for nothing
            return synthesized_questions(EXAM_QUESTIONS[:limit])
    recordings = folder_corpus(folder) if folder is not None else default_corpus()
    return recordings[:limit] if limit is not None else recordings
