"""Russian morphology (pymorphy3), shared by the thesis matcher, the question filter and the TTS
normaliser (which makes numbers agree with the words around them)."""

from __future__ import annotations

from functools import cache

import pymorphy3


@cache
def morph() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer(lang="ru")
