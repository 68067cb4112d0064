"""Text normalisation before TTS: what the voice would otherwise spell or skip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluelypro.tts.normalize import normalize_for_tts, read_latin
from text_strategies import any_text


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
        # what an LLM writes (issue 9, finding 1)
        # - floats with a comma or a point, and in exponent notation
        ("0,00005", "ноль целых пять стотысячных"),
        ("g = 9.81", "джи равно девять целых восемьдесят одна сотая"),
        ("Пи равно 3,14159265", "Пи равно три запятая один четыре один пять девять два шесть пять"),
        ("1e10", "десять в десятой степени"),
        ("2.5E-3", "две целых пять десятых на десять в минус третьей степени"),
        ("6,02·10^23", "шесть целых две сотых на десять в двадцать третьей степени"),
        # - negative and huge integers: what num2words cannot say is read digit by digit
        ("-15 и −3", "минус пятнадцать и минус три"),
        ("1" + "0" * 34, "один " + "ноль " * 33 + "ноль"),
        ("код 007", "код ноль ноль семь"),
        # - fractions, ranges, times, ratios, dates
        ("3/4 стакана", "три четвёртых стакана"),
        ("1/3", "одна третья"),
        (
            "Первая мировая (1914–1918)",
            "Первая мировая (с тысяча девятьсот четырнадцатого по тысяча девятьсот восемнадцатый год)",
        ),
        ("в 1941—1945 годах", "в тысяча девятьсот сорок первом — тысяча девятьсот сорок пятом годах"),
        ("5-7 человек", "от пяти до семи человек"),
        ("в 5–7 раз", "в пять — семь раз"),
        ("в 10:30", "в десять тридцать"),
        ("в 9:05", "в девять ноль пять"),
        ("в соотношении 1:2", "в соотношении один к двум"),
        ("12.04.1961", "двенадцатого апреля тысяча девятьсот шестьдесят первого года"),
        ("01.09.2024", "первого сентября две тысячи двадцать четвёртого года"),
        ("в 1914 г.", "в тысяча девятьсот четырнадцатом году"),
        # - percents
        ("5,5%", "пять целых пять десятых процента"),
        ("более 50%", "более пятидесяти процентов"),
        ("на 5–10%", "на пять — десять процентов"),
        # - Roman numerals: agreeing with the next word or the name before, a lone letter stays one
        ("XX век", "двадцатый век"),
        ("в XIX веке", "в девятнадцатом веке"),
        ("Пётр I", "Пётр Первый"),
        ("при Петре I", "при Петре Первом"),
        ("Екатерина II", "Екатерина Вторая"),
        ("XIX–XX вв.", "девятнадцатый — двадцатый века"),
        ("ось X", "ось икс"),
        # - units, with the number in agreement
        ("5 км", "пять километров"),
        ("10 кг", "десять килограммов"),
        ("3 м/с", "три метра в секунду"),
        ("1 тонна", "одна тонна"),
        ("до 5 км", "до пяти километров"),
        ("−5 °C", "минус пять градусов Цельсия"),
        ("2,5 км", "две целых пять десятых километра"),
        ("площадь 5 м²", "площадь пять квадратных метров"),
        # - ordinals
        ("2-й курс", "второй курс"),
        ("на 3-м месте", "на третьем месте"),
        ("в 1990-х годах", "в тысяча девятьсот девяностых годах"),
        ("90-е годы", "девяностые годы"),
        # - currency and grouped thousands
        ("$5", "пять долларов"),
        ("$5 млн", "пять миллионов долларов"),
        ("100 €", "сто евро"),
        ("5 000 рублей", "пять тысяч рублей"),
        ("1,000,000", "один миллион"),
        # - mixed Latin words and symbols
        ("GPT-4 и COVID-19", "джи пи ти четыре и си оу ви ай ди девятнадцать"),
        ("CO2 и 5G", "си оу два и пять джи"),
        ("iPhone 15 Pro", "айфон пятнадцать про"),
        ("Python 3.11.2", "пайтон три точка одиннадцать точка два"),
        ("2+2=4", "два плюс два равно четыре"),
        ("π ≈ 3,14", "пи примерно три целых четырнадцать сотых"),
        ("№ 5", "номер пять"),
        ("½", "одна вторая"),
        ("café", "кафе"),
        ("за 2 года", "за два года"),
        ("5 с половиной", "пять с половиной"),
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
    assert (
        normalize_for_tts("In 1914 there were 3 wars", "en")
        == "In one thousand, nine hundred and fourteen there were three wars"
    )


# --- any number an LLM can write (issue 9, finding 1) ------------------------------------------

RUSSIAN_LETTERS = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ")


def speakable_in_russian(text: str) -> bool:
    """Only Russian letters: no digit of any script, no Latin or other letters."""
    return all(char in RUSSIAN_LETTERS for char in text if char.isalnum())


@settings(deadline=None, max_examples=300)
@given(any_text)
def test_russian_normalisation_is_total_and_speakable(text: str) -> None:
    spoken = normalize_for_tts(text)
    assert speakable_in_russian(spoken), spoken
    assert normalize_for_tts(spoken) == spoken  # nothing left to read differently


@settings(deadline=None)
@given(st.integers())
def test_no_integer_is_dropped(number: int) -> None:
    words = normalize_for_tts(str(number)).split()
    assert words and speakable_in_russian(" ".join(words))
    if len(str(abs(number))) > 15:  # read digit by digit
        assert len(words) == len(str(abs(number))) + (number < 0)


@settings(deadline=None, max_examples=200)
@given(any_text)
def test_english_normalisation_is_total_and_spells_every_number(text: str) -> None:
    assert not re.search(r"\d", normalize_for_tts(text, "en"))
