"""Text normalisation before TTS: what the voice would otherwise spell or skip."""

from __future__ import annotations

import re

import pytest

from cluelypro.tts.normalize import normalize_for_tts, read_latin


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Война началась в 1914 году.", "Война началась в тысяча девятьсот четырнадцатом году."),
        ("К 1945 году", "К тысяча девятьсот сорок пятому году"),
        ("с 1941 года", "с тысяча девятьсот сорок первого года"),
        ("Инфляция 5% в год", "Инфляция пять процентов в год"),
        ("рост на 2%", "рост на два процента"),
        ("21 студент", "двадцать один студент"),
        ("Скорость 3,5 метра", "Скорость три целых пять десятых метра"),
        ("Типы: int, float и str.", "Типы: инт, флоат и стр."),
        ("Язык Python", "Язык пайтон"),
        ("CPU", "си пи ю"),
    ],
)
def test_russian_normalisation(text: str, spoken: str) -> None:
    assert normalize_for_tts(text) == spoken


def test_nothing_left_for_the_voice_to_spell() -> None:
    text = "В 2024 году Google и OpenAI выпустили 3 модели, рост 15%."
    assert not re.search(r"[0-9A-Za-z%]", normalize_for_tts(text))


def test_characters_no_voice_can_read_are_dropped() -> None:
    assert normalize_for_tts("снижению их供应.") == "снижению их."


def test_unknown_latin_word_is_transliterated() -> None:
    assert re.fullmatch(r"[а-яё ]+", read_latin("Kubernetes"))


def test_other_languages_keep_latin_and_spell_numbers() -> None:
    assert normalize_for_tts("In 1914 there were 3 wars", "en") == "In one thousand, nine hundred and fourteen there were three wars"
