"""Whisper's phantom output ("hallucinations") and near-silent input.

On silence, noise or a cut-off word, Whisper tends to emit phrases learnt from video subtitles
("Продолжение следует...", "Субтитры сделал DimaTorzok", "Thanks for watching!") or captions
for the hard of hearing ("ТРЕВОЖНАЯ МУЗЫКА", "[смех]"). They are dropped sentence by sentence,
so a genuine answer followed by a phantom keeps its first part.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

SILENCE_RMS_FLOOR = 0.001
"""-60 dBFS. The quietest real clip in ../shared/audio/ru (golos_03) has RMS 0.0072 (-43 dBFS),
its loudest 30 ms frame 0.024; the recordings' own background noise sits at 0.0007-0.005.
Below -60 dBFS there is only digital silence, dither or an idle microphone."""

_PHANTOM_SENTENCES = [
    r"продолжение следует",
    r"субтитры (сделал|делал|создавал|создавались|создал|подогнал|подготовил|подготовила"
    r"|редактировал|by)\b.*",
    r".*\bdimatorzok\b.*",
    r".*\bamara org\b.*",
    r"редактор субтитров\b.*",
    r"корректор [а-я] [а-я]+",
    r"спасибо за просмотр",
    r"(подписывайтесь|подпишитесь|подпишись) на (наш |мой |этот )?канал\b.*",
    r"ставьте лайки\b.*",
    r"(thanks|thank you) (so much |very much )?for watching",
    r"please subscribe\b.*",
    r"subtitles by\b.*",
]
_PHANTOM = re.compile("|".join(f"(?:{pattern})" for pattern in _PHANTOM_SENTENCES))
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W\d_]+")
_SHORT_CAPTIONS = {"смех", "шум", "стук", "гудок"}
_SOUND_EVENT = re.compile(r"(?:\s*[\[(*♪][^\[\]()*♪]*[\])*♪])+\s*[.!?…]*")


def clean_transcript(text: str) -> str:
    """`text` stripped of phantom sentences; "" when nothing genuine is left."""
    sentences = _SENTENCE_END.split(text.strip())
    kept = " ".join(sentence for sentence in sentences if not _is_phantom(sentence))
    return "" if _is_noise(kept) else kept


def is_near_silent(audio: np.ndarray, rms_floor: float = SILENCE_RMS_FLOOR) -> bool:
    """Whether the clip's RMS is below `rms_floor` (float samples in [-1, 1])."""
    if audio.size == 0:
        return True
    samples = audio.astype(np.float32, copy=False)
    return float(np.sqrt(np.mean(np.square(samples)))) < rms_floor


def _normalised(sentence: str) -> str:
    lowered = sentence.lower().replace("ё", "е")
    return _NON_WORD.sub(" ", lowered).strip()


def _is_phantom(sentence: str) -> bool:
    if _SOUND_EVENT.fullmatch(sentence):  # "[Музыка]", "(смех)", "♪ ... ♪": not speech
        return True
    return _is_caption(sentence) or _PHANTOM.fullmatch(_normalised(sentence)) is not None


def _is_caption(sentence: str) -> bool:
    """An all-capitals sound caption ("ТРЕВОЖНАЯ МУЗЫКА", "ВСКРИК"), not an acronym ("ТВ")."""
    words = _WORD.findall(sentence)
    if not words or sentence.upper() != sentence:
        return False
    return any(len(word) >= 6 for word in words) or _normalised(sentence) in _SHORT_CAPTIONS


def _is_noise(text: str) -> bool:
    """Only punctuation/symbols, or one character repeated ("ааааа", "!!!", "—")."""
    core = "".join(char for char in text if unicodedata.category(char)[0] not in "PSZC").lower()
    if not core:
        return True
    return len(core) >= 3 and len(set(core)) == 1 and not core.isdigit()
