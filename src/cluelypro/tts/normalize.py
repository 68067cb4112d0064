"""Text normalisation before Russian TTS: numbers to words, Latin words to a Russian reading.

The thesis prompt already asks the LLM to write numbers as words; this catches what it misses,
so the voice never spells digits or skips Latin words.
"""

from __future__ import annotations

import re

from num2words import num2words

_YEAR_CASES = {"году": "p", "года": "g", "год": "n", "годом": "i"}
_DATIVE_PREPOSITIONS = {"к", "по"}

_LATIN_LETTER_NAMES = {
    "a": "эй", "b": "би", "c": "си", "d": "ди", "e": "и", "f": "эф", "g": "джи", "h": "эйч",
    "i": "ай", "j": "джей", "k": "кей", "l": "эл", "m": "эм", "n": "эн", "o": "оу", "p": "пи",
    "q": "кью", "r": "ар", "s": "эс", "t": "ти", "u": "ю", "v": "ви", "w": "дабл ю", "x": "икс",
    "y": "уай", "z": "зед",
}
_KNOWN_WORDS = {
    "python": "пайтон", "java": "джава", "javascript": "джаваскрипт", "c++": "си плюс плюс",
    "sql": "эс кью эл", "linux": "линукс", "windows": "виндоус", "google": "гугл",
    "iphone": "айфон", "wi-fi": "вай фай", "wifi": "вай фай", "int": "инт", "float": "флоат",
    "str": "стр", "bool": "бул", "list": "лист", "dict": "дикт", "tuple": "тапл", "set": "сет",
    "none": "нан", "true": "тру", "false": "фолс", "string": "стринг", "api": "эй пи ай",
    "email": "имейл", "online": "онлайн", "ok": "окей",
}
# Digraphs first, then single letters: a rough but pronounceable reading of an unknown word.
_TRANSLITERATION = [
    ("sh", "ш"), ("ch", "ч"), ("th", "т"), ("ph", "ф"), ("oo", "у"), ("ee", "и"), ("kh", "х"),
    ("zh", "ж"), ("ck", "к"), ("qu", "кв"), ("ya", "я"), ("yu", "ю"), ("a", "а"), ("b", "б"),
    ("c", "к"), ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"), ("i", "и"),
    ("j", "дж"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"),
    ("q", "к"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("v", "в"), ("w", "в"),
    ("x", "кс"), ("y", "и"), ("z", "з"),
]

_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)(\s*%)?(?:\s+(году|года|годом|год)\b)?")
_PLAIN_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?")
_UNSPEAKABLE = re.compile(r"[^\w\s.,:;!?()«»\"'—–\-%+]|[^\W\dA-Za-zА-Яа-яЁё_]")  # e.g. CJK the LLM slips in
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z+\-]*[A-Za-z+]|[A-Za-z]")


def _plural(number: int, one: str, few: str, many: str) -> str:
    if number % 10 == 1 and number % 100 != 11:
        return one
    if 2 <= number % 10 <= 4 and not 12 <= number % 100 <= 14:
        return few
    return many


def _parse_number(digits: str) -> int | float:
    return float(digits.replace(",", ".")) if "." in digits or "," in digits else int(digits)


def _number_to_words(match: re.Match[str]) -> str:
    digits, percent, year_word = match.group(1), match.group(2), match.group(3)
    number = _parse_number(digits)
    if isinstance(number, float):
        return num2words(number, lang="ru") + (" процента" if percent else "")
    if year_word:
        preceding = match.string[: match.start()].split()[-1:] or [""]
        case = "d" if year_word == "году" and preceding[0].lower() in _DATIVE_PREPOSITIONS else _YEAR_CASES[year_word]
        return f"{num2words(number, lang='ru', to='ordinal', case=case)} {year_word}"
    words = num2words(number, lang="ru")
    if percent:
        words += " " + _plural(number, "процент", "процента", "процентов")
    return words


def read_latin(word: str) -> str:
    """How a Russian voice should say a Latin-script word."""
    lower = word.lower()
    if lower in _KNOWN_WORDS:
        return _KNOWN_WORDS[lower]
    if word.isupper() and len(word) <= 5:  # an acronym: spell it
        return " ".join(_LATIN_LETTER_NAMES.get(letter, letter) for letter in lower)
    reading = lower.replace("-", " ").replace("+", " плюс")
    for latin, cyrillic in _TRANSLITERATION:
        reading = reading.replace(latin, cyrillic)
    return reading


def normalize_for_tts(text: str, language: str = "ru") -> str:
    """Numbers as words; for Russian also years in agreement, percents and Latin words read out."""
    text = _UNSPEAKABLE.sub("", text)
    if language == "ru":
        text = _NUMBER.sub(_number_to_words, text)
        text = _LATIN_WORD.sub(lambda match: read_latin(match.group(0)), text)
    else:
        text = _PLAIN_NUMBER.sub(lambda match: num2words(_parse_number(match.group(0)), lang=language), text)
    return re.sub(r"\s+", " ", text).strip()
