"""Text normalisation before TTS: numbers, units, symbols and Latin words as a voice says them.

The thesis prompt already asks the LLM to write numbers as words; this catches what it misses,
so the voice never spells digits or skips Latin words. It is total: any text gives a reading,
and for Russian the reading has only Russian letters and punctuation. A number is read in
agreement with its neighbours where they say how («в 1914 году», «до 5 км», «при Петре I»).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from cluelypro.tts import numbers
from cluelypro.tts.numbers import agree, cardinal, decimal, grammar_of, ordinal, ordinal_ending_in

_LATIN_LETTER_NAMES = {
    "a": "эй",
    "b": "би",
    "c": "си",
    "d": "ди",
    "e": "и",
    "f": "эф",
    "g": "джи",
    "h": "эйч",
    "i": "ай",
    "j": "джей",
    "k": "кей",
    "l": "эл",
    "m": "эм",
    "n": "эн",
    "o": "оу",
    "p": "пи",
    "q": "кью",
    "r": "ар",
    "s": "эс",
    "t": "ти",
    "u": "ю",
    "v": "ви",
    "w": "дабл ю",
    "x": "икс",
    "y": "уай",
    "z": "зед",
}
_KNOWN_WORDS = {
    "python": "пайтон",
    "java": "джава",
    "javascript": "джаваскрипт",
    "c++": "си плюс плюс",
    "sql": "эс кью эл",
    "linux": "линукс",
    "windows": "виндоус",
    "google": "гугл",
    "iphone": "айфон",
    "wi-fi": "вай фай",
    "wifi": "вай фай",
    "int": "инт",
    "float": "флоат",
    "str": "стр",
    "bool": "бул",
    "list": "лист",
    "dict": "дикт",
    "tuple": "тапл",
    "set": "сет",
    "none": "нан",
    "true": "тру",
    "false": "фолс",
    "string": "стринг",
    "api": "эй пи ай",
    "email": "имейл",
    "online": "онлайн",
    "ok": "окей",
}
KNOWN_LATIN_WORDS = frozenset(_KNOWN_WORDS)
"""Latin words with a set reading («Python» → «пайтон»): a voice says them right."""
# Digraphs first, then single letters: a rough but pronounceable reading of an unknown word.
_TRANSLITERATION = [
    ("sh", "ш"),
    ("ch", "ч"),
    ("th", "т"),
    ("ph", "ф"),
    ("oo", "у"),
    ("ee", "и"),
    ("kh", "х"),
    ("zh", "ж"),
    ("ck", "к"),
    ("qu", "кв"),
    ("ya", "я"),
    ("yu", "ю"),
    ("a", "а"),
    ("b", "б"),
    ("c", "к"),
    ("d", "д"),
    ("e", "е"),
    ("f", "ф"),
    ("g", "г"),
    ("h", "х"),
    ("i", "и"),
    ("j", "дж"),
    ("k", "к"),
    ("l", "л"),
    ("m", "м"),
    ("n", "н"),
    ("o", "о"),
    ("p", "п"),
    ("q", "к"),
    ("r", "р"),
    ("s", "с"),
    ("t", "т"),
    ("u", "у"),
    ("v", "в"),
    ("w", "в"),
    ("x", "кс"),
    ("y", "и"),
    ("z", "з"),
]
_GREEK = {
    "α": "альфа",
    "β": "бета",
    "γ": "гамма",
    "δ": "дельта",
    "Δ": "дельта",
    "ε": "эпсилон",
    "θ": "тета",
    "λ": "лямбда",
    "μ": "мю",
    "π": "пи",
    "σ": "сигма",
    "Σ": "сигма",
    "φ": "фи",
    "ω": "омега",
    "Ω": "омега",
}
_MONTHS = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
]
# unit as written → (words that agree with the number, words that follow unchanged)
_UNITS = {
    "%": ("процент", ""),
    "‰": ("промилле", ""),
    "°C": ("градус", "Цельсия"),
    "°С": ("градус", "Цельсия"),
    "°F": ("градус", "по Фаренгейту"),
    "°": ("градус", ""),
    "км": ("километр", ""),
    "м": ("метр", ""),
    "см": ("сантиметр", ""),
    "мм": ("миллиметр", ""),
    "мкм": ("микрометр", ""),
    "нм": ("нанометр", ""),
    "km": ("километр", ""),
    "cm": ("сантиметр", ""),
    "mm": ("миллиметр", ""),
    "км^2": ("квадратный километр", ""),
    "км2": ("квадратный километр", ""),
    "м^2": ("квадратный метр", ""),
    "м2": ("квадратный метр", ""),
    "см^2": ("квадратный сантиметр", ""),
    "м^3": ("кубический метр", ""),
    "м3": ("кубический метр", ""),
    "см^3": ("кубический сантиметр", ""),
    "кг": ("килограмм", ""),
    "г": ("грамм", ""),
    "мг": ("миллиграмм", ""),
    "т": ("тонна", ""),
    "kg": ("килограмм", ""),
    "л": ("литр", ""),
    "мл": ("миллилитр", ""),
    "ч": ("час", ""),
    "мин": ("минута", ""),
    "сек": ("секунда", ""),
    "мс": ("миллисекунда", ""),
    "ms": ("миллисекунда", ""),
    "км/ч": ("километр", "в час"),
    "km/h": ("километр", "в час"),
    "м/с": ("метр", "в секунду"),
    "Вт": ("ватт", ""),
    "кВт": ("киловатт", ""),
    "МВт": ("мегаватт", ""),
    "Гц": ("герц", ""),
    "кГц": ("килогерц", ""),
    "МГц": ("мегагерц", ""),
    "ГГц": ("гигагерц", ""),
    "Hz": ("герц", ""),
    "kHz": ("килогерц", ""),
    "MHz": ("мегагерц", ""),
    "GHz": ("гигагерц", ""),
    "КБ": ("килобайт", ""),
    "Кб": ("килобайт", ""),
    "МБ": ("мегабайт", ""),
    "Мб": ("мегабайт", ""),
    "ГБ": ("гигабайт", ""),
    "Гб": ("гигабайт", ""),
    "ТБ": ("терабайт", ""),
    "KB": ("килобайт", ""),
    "MB": ("мегабайт", ""),
    "GB": ("гигабайт", ""),
    "TB": ("терабайт", ""),
    "тыс.": ("тысяча", ""),
    "тыс": ("тысяча", ""),
    "млн": ("миллион", ""),
    "млрд": ("миллиард", ""),
    "трлн": ("триллион", ""),
    "руб.": ("рубль", ""),
    "руб": ("рубль", ""),
    "коп.": ("копейка", ""),
}
_CURRENCIES = {"$": "доллар", "€": "евро", "£": "фунт", "₽": "рубль", "¥": "иена", "₴": "гривна"}
_UNITS |= {sign: (name, "") for sign, name in _CURRENCIES.items()}
_YEAR_WORDS = {
    "год": "n",
    "года": "g",
    "году": "p",
    "годом": "i",
    "годы": "n",
    "годов": "g",
    "годам": "d",
    "годами": "i",
    "годах": "p",
}
# preposition → the case of a number after it
_CASE_AFTER = {
    "от": "g",
    "до": "g",
    "около": "g",
    "из": "g",
    "без": "g",
    "более": "g",
    "менее": "g",
    "свыше": "g",
    "порядка": "g",
    "после": "g",
    "для": "g",
    "кроме": "g",
    "с": "g",
    "к": "d",
    "при": "p",
    "о": "p",
    "об": "p",
}
_PREPOSITIONS = set(_CASE_AFTER) | {"в", "во", "на", "за", "по", "через", "под", "над", "между"}
_MORPH_CASE = {"n": "nomn", "g": "gent", "d": "datv", "a": "accs", "i": "ablt", "p": "loct"}
_SYMBOLS = {
    "=": "равно",
    "≈": "примерно",
    "~": "примерно",
    "≠": "не равно",
    "±": "плюс минус",
    "×": "на",
    "<": "меньше",
    ">": "больше",
    "≤": "меньше или равно",
    "≥": "больше или равно",
    "&": "и",
    "+": "плюс",
    "§": "параграф",
    "^": "в степени",
    "/": " ",
    "_": " ",
    "·": " ",
}

_NUM = r"\d+(?:[.,]\d+)?"
_ROMAN = r"(?=[IVX])X{0,3}(?:IX|IV|V?I{0,3})"  # I to XXXIX: centuries, monarchs, chapters


def _alternatives(words) -> str:
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


# "с" is seconds only at the end of a phrase: «5 с половиной» is not «пять секунд половиной»
_UNIT = rf"(?:{_alternatives(_UNITS)}|с(?=\s*(?:$|[.,;:!?)])))(?!\w)"
_SUPERSCRIPT_RUN = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_DASHES = str.maketrans({"‐": "-", "‑": "-", "−": "-", "‒": "–", "⁄": "/"})
_ACCENTED_LATIN = re.compile(r"[À-ÖØ-öø-ɏḀ-ỿ]")
_OTHER_DIGIT = re.compile(r"[^\D0-9]")
_YEAR_ABBREVIATION = re.compile(r"(?<![\w.,])(\d{3,4}(?:\s*[–—-]\s*\d{3,4})?)\s*(гг?)\.")
_CENTURY_ABBREVIATION = re.compile(rf"\b({_ROMAN}(?:\s*[–—-]\s*{_ROMAN})?)\s+(вв?)\.")
_E_NOTATION = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)[eE]([-+]?\d+)(?!\w)")
_DATE = re.compile(r"(?<![\d.,])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\d.])")
_DOTTED = re.compile(r"(?<![\d.,])\d+(?:\.\d+){2,}")
_SPACED_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?!\d)")
_COMMA_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3}){2,}(?![\d,])")
_CURRENCY_FIRST = re.compile(rf"([{''.join(_CURRENCIES)}])\s*({_NUM}(?:\s*(?:тыс\.?|млн|млрд|трлн)(?!\w))?)")
_LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])-?(?=\d)|(?<=[А-Яа-яЁё])-(?=\d)|(?<=\d)(?=[A-Za-zА-Яа-яЁё])")
_TIME = re.compile(r"(?<![\d:.,])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_RATIO = re.compile(r"(?<![\d:.,])(\d+):(\d+)(?![\d:])")
_FRACTION = re.compile(r"(?<![\d/.,])(\d+)/(\d+)(?![\d/])")
_ORDINAL = re.compile(
    r"(?<![\w.,])(\d+)-(ыми|ого|ему|ому|ый|ий|ой|ая|ое|ые|ых|ым|ом|ем|ей|ую|ья|ье|ьи|го|му|ми|й|я|е|ю|х|м)(?!\w)"
)
_QUANTITY = re.compile(
    rf"(?:(?<![^\s(«\"'])(?P<sign>[-+]))?(?<![\w.,^])(?<!\^[-+])(?P<a>{_NUM})"
    rf"(?:(?:-|\s*[–—]\s*)(?P<b>{_NUM}))?"
    rf"(?:\s*(?P<unit>{_UNIT})(?:\s*(?P<currency>{_alternatives(_CURRENCIES)}))?)?"
    rf"(?:\s+(?P<year>{_alternatives(_YEAR_WORDS)})(?!\w))?"
)
_TIMES = re.compile(r"(?<=\d)\s*[·*]\s*(?=\d)")  # 6,02·10^23, 2*3
_POWER = re.compile(r"\^\s*([-+]?)(\d+)")
_DIGITS = re.compile(r"\d+")
_ROMAN_NUMERAL = re.compile(rf"\b({_ROMAN})(?:\s*[–—-]\s*({_ROMAN}))?\b")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z+\-]*[A-Za-z+]|[A-Za-z]")
_SYMBOL = re.compile(f"[{re.escape(''.join(_SYMBOLS))}]")
_GREEK_LETTER = re.compile(f"[{''.join(_GREEK)}]")
_SEPARATOR = re.compile(r"[/_·^]")
# what no voice can read, e.g. CJK the LLM slips in; a Russian voice reads only Russian letters
_UNSPEAKABLE = re.compile(r"[^\w\s.,:;!?()«»\"'—–\-%+]|[^\W\dA-Za-zÀ-ÖØ-öø-ɏḀ-ỿА-Яа-яЁё]")
_UNSPEAKABLE_IN_RUSSIAN = re.compile(r"[^\w\s.,:;!?()«»\"'—–\-%]|[^\W\dА-Яа-яЁё]")


def _word_before(match: re.Match[str]) -> str:
    found = re.search(r"([А-Яа-яЁё]+)[\s(«\"']*$", match.string[max(0, match.start() - 40) : match.start()])
    return found.group(1).lower() if found else ""


def _word_after(match: re.Match[str]) -> str:
    found = re.match(r"\s+([А-Яа-яЁё]+)", match.string[match.end() : match.end() + 40])
    return found.group(1) if found else ""


def _last_digits(digits: str) -> int:
    """Enough of an integer for agreement (Russian looks at the last two digits)."""
    return int(digits[-2:])


def _value(number: str) -> float:
    return float(number.replace(",", "."))


# --- the readings -----------------------------------------------------------------------------


def _number(text: str, case: str = "n", gender: str = "m") -> str:
    number = re.fullmatch(r"(\d+)(?:[.,](\d+))?", text)
    assert number is not None, f"called on digits only, not {text!r}"
    whole, fraction = number.groups()
    return decimal(whole, fraction) if fraction else cardinal(whole, case, gender)


def _unit(written: str) -> tuple[str, str]:
    return _UNITS.get(written, ("секунда", ""))  # the one unit outside the table: «с»


def _unit_words(unit: str | None, currency: str | None, number: str, case: str) -> str:
    """The unit (and a currency after «млн») as it goes with `number`."""
    if not unit:
        return ""
    words, tail = _unit(unit)
    count = None if re.search(r"[.,]", number) else _last_digits(number)
    spoken = f" {agree(words, count, _MORPH_CASE[case])} {tail}"
    if currency:
        spoken += " " + agree(_CURRENCIES[currency], 5, "gent")
    return spoken.rstrip()


def _gender_of(unit: str | None, next_word: str) -> str:
    """The gender of what is counted («одна тонна», «две книги»)."""
    head = _unit(unit)[0].split()[-1] if unit else next_word
    grammar = grammar_of(head) if head else None
    return grammar[1] if grammar else "m"


def _year_word_case(year_word: str, before: str) -> str:
    return "d" if year_word == "году" and before in ("к", "по") else _YEAR_WORDS[year_word]


def _quantity(match: re.Match[str]) -> str:
    a, b, unit, currency, year_word = match.group("a", "b", "unit", "currency", "year")
    before = _word_before(match)
    case = _CASE_AFTER.get(before, "n")
    sign = {"-": "минус ", "+": "плюс "}.get(match.group("sign") or "", "")
    integers = not re.search(r"[.,]", a + (b or ""))
    if integers and not unit and ((year_word and len(a) >= 3) or (b and _years(a, b))):  # «2 года» is a duration
        return sign + _year_reading(a, b, year_word, before)
    if b is not None:
        spoken = _range_reading(a, b, unit, currency, before)
    else:
        spoken = _number(a, case, _gender_of(unit, _word_after(match))) + _unit_words(unit, currency, a, case)
    return sign + spoken + (f" {year_word}" if year_word else "")


def _years(a: str, b: str) -> bool:
    return len(a) == len(b) == 4 and 1000 <= int(a) < int(b) <= 2100


def _year_reading(a: str, b: str | None, year_word: str | None, before: str) -> str:
    """«в 1914 году», «1914–1918» → «с тысяча девятьсот четырнадцатого по … восемнадцатый год»."""
    if b is None:
        assert year_word is not None, "a single year is read only before its word («в 1914 году»)"
        return f"{ordinal(a, _year_word_case(year_word, before))} {year_word}"
    if year_word is None and before in ("в", "во"):
        year_word = "годах"
    if year_word is None:
        return f"с {ordinal(a, 'g')} по {ordinal(b)} год"
    case = _year_word_case(year_word, before)
    return f"{ordinal(a, case)} — {ordinal(b, case)} {year_word}"


def _range_reading(a: str, b: str, unit: str | None, currency: str | None, before: str) -> str:
    """«5–7 км» → «от пяти до семи километров»; after a preposition «в 5–7 раз» → «в пять — семь раз»."""
    case = _CASE_AFTER.get(before, "n")
    if before not in _PREPOSITIONS and _value(a) < _value(b):
        return f"от {_number(a, 'g')} до {_number(b, 'g')}{_unit_words(unit, currency, b, 'g')}"
    return f"{_number(a, case)} — {_number(b, case)}{_unit_words(unit, currency, b, case)}"


def _e_notation(match: re.Match[str]) -> str:
    mantissa, exponent = match.groups()
    power = f"10^{exponent.lstrip('+')}"
    return power if mantissa == "1" else f"{mantissa} × {power}"


def _power(match: re.Match[str]) -> str:
    sign, exponent = match.groups()
    if not sign and exponent in ("2", "3"):
        return " в квадрате" if exponent == "2" else " в кубе"
    minus = "минус " if sign == "-" else ""
    return f" в {minus}{ordinal(exponent, 'p', 'f')} степени"


def _date(match: re.Match[str]) -> str:
    day, month, year = match.groups()
    if not (1 <= int(day) <= 31 and 1 <= int(month) <= 12):
        return match.group(0)
    return f"{ordinal(str(int(day)), 'g', 'n')} {_MONTHS[int(month) - 1]} {ordinal(year, 'g')} года"


def _time(match: re.Match[str]) -> str:
    hours, minutes = match.groups()
    case = _CASE_AFTER.get(_word_before(match), "n")
    spoken_minutes = numbers.one_by_one(minutes) if minutes.startswith("0") else cardinal(minutes, case)
    return f"{cardinal(str(int(hours)), case)} {spoken_minutes}"


def _ratio(match: re.Match[str]) -> str:
    first, second = match.groups()
    return f"{cardinal(first)} к {cardinal(second, 'd')}"


def _fraction(match: re.Match[str]) -> str:
    """«3/4» → «три четвёртых», «1/3» → «одна третья»."""
    numerator, denominator = match.groups()
    count = _last_digits(numerator)
    if count % 10 == 1 and count % 100 != 11:
        return f"{cardinal(numerator, gender='f')} {ordinal(denominator, gender='f')}"
    return f"{cardinal(numerator, gender='f')} {ordinal(denominator, 'g', plural=True)}"


def _ordinal(match: re.Match[str]) -> str:
    digits, ending = match.groups()
    return ordinal_ending_in(digits, ending, _word_after(match))


def _roman_value(numeral: str) -> int:
    values = [{"I": 1, "V": 5, "X": 10}[letter] for letter in numeral]
    return sum(-value if value < after else value for value, after in zip(values, values[1:] + [0], strict=True))


def _roman(match: re.Match[str]) -> str:
    """«Пётр I» → «Пётр Первый», «в XX веке» → «в двадцатом веке»; a lone «X» stays a letter."""
    numerals = [str(_roman_value(numeral)) for numeral in match.groups() if numeral]
    name = re.search(r"([А-ЯЁ][а-яё]+) +$", match.string[max(0, match.start() - 40) : match.start()])
    name_grammar = grammar_of(name.group(1)) if name else None
    if name_grammar is not None and len(numerals) == 1:
        spoken = ordinal(numerals[0], *name_grammar)
        return spoken.capitalize() if name_grammar[3] else spoken
    next_grammar = grammar_of(next_word) if (next_word := _word_after(match)) else None
    if next_grammar is None:
        return match.group(0)
    case, gender, plural, animate = next_grammar
    plural = plural and len(numerals) == 1  # «XIX–XX века»: each century is one
    return " — ".join(ordinal(numeral, case, gender, plural, animate) for numeral in numerals)


_YEAR_FORMS = {
    ("p", False): "году",
    ("p", True): "годах",
    ("g", False): "года",
    ("g", True): "годов",
    ("d", False): "году",
    ("d", True): "годам",
    ("n", False): "год",
    ("n", True): "годы",
}
_CENTURY_FORMS = {
    ("p", False): "веке",
    ("p", True): "веках",
    ("g", False): "века",
    ("g", True): "веков",
    ("d", False): "веку",
    ("d", True): "векам",
    ("n", False): "век",
    ("n", True): "века",
}


def _abbreviated_case(match: re.Match[str]) -> str:
    """The case «г.» or «в.» stands in, from the preposition before («в 1914 г.» → году)."""
    before = _word_before(match)
    return {"в": "p", "во": "p", "к": "d", "по": "n"}.get(before) or ("g" if before in _CASE_AFTER else "n")


def _year_abbreviation(match: re.Match[str]) -> str:
    if len(match.group(1)) == 3 and _word_before(match) not in _PREPOSITIONS:
        return match.group(0)  # «500 г.» is grams
    return f"{match.group(1)} {_YEAR_FORMS[_abbreviated_case(match), match.group(2) == 'гг']}"


def _century_abbreviation(match: re.Match[str]) -> str:
    """«XIX–XX вв.» → «девятнадцатый — двадцатый века»."""
    case, numerals = _abbreviated_case(match), re.findall(_ROMAN, match.group(1))
    centuries = " — ".join(ordinal(str(_roman_value(numeral)), case) for numeral in numerals if numeral)
    return f"{centuries} {_CENTURY_FORMS[case, match.group(2) == 'вв']}"


def read_latin(word: str) -> str:
    """How a Russian voice should say a Latin-script word."""
    lower = word.lower()
    if lower in _KNOWN_WORDS:
        return _KNOWN_WORDS[lower]
    if (word.isupper() and len(word) <= 5) or len(word) == 1:  # an acronym or a letter: spell it
        return " ".join(_LATIN_LETTER_NAMES.get(letter, letter) for letter in lower)
    reading = lower.replace("-", " ").replace("+", " плюс")
    for latin, cyrillic in _TRANSLITERATION:
        reading = reading.replace(latin, cyrillic)
    return reading


# --- the rule chains --------------------------------------------------------------------------

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_RUSSIAN: list[Rule] = [
    (_ACCENTED_LATIN, lambda match: unicodedata.normalize("NFKD", match.group(0))[0]),  # café → cafe
    (_GREEK_LETTER, lambda match: f" {_GREEK[match.group(0)]} "),
    (_YEAR_ABBREVIATION, _year_abbreviation),
    (_CENTURY_ABBREVIATION, _century_abbreviation),
    (_E_NOTATION, _e_notation),
    (_DATE, _date),
    (_DOTTED, lambda match: " точка ".join(cardinal(part) for part in match.group(0).split("."))),
    (_SPACED_THOUSANDS, lambda match: match.group(0).replace(" ", "")),
    (_COMMA_THOUSANDS, lambda match: match.group(0).replace(",", "")),
    (_CURRENCY_FIRST, lambda match: f"{match.group(2)} {match.group(1)}"),
    (_LETTER_DIGIT, lambda match: " "),
    (_TIMES, lambda match: " × "),
    (_TIME, _time),
    (_RATIO, _ratio),
    (_FRACTION, _fraction),
    (_ORDINAL, _ordinal),
    (_QUANTITY, _quantity),
    (_POWER, _power),
    (_DIGITS, lambda match: cardinal(match.group(0))),
    (_ROMAN_NUMERAL, _roman),
    (_LATIN_WORD, lambda match: read_latin(match.group(0))),
    (_SYMBOL, lambda match: f" {_SYMBOLS[match.group(0)]} "),
    (_UNSPEAKABLE_IN_RUSSIAN, lambda match: ""),
]


def _other_language(language: str) -> list[Rule]:
    """Numbers in words for a language num2words speaks; a language it does not keeps its digits."""
    if not numbers.speaks(language):
        return []

    def signed(match: re.Match[str]) -> str:
        sign, whole, fraction = match.groups()
        words = decimal(whole, fraction, language) if fraction else cardinal(whole, language=language)
        return f"minus {words}" if sign else words

    return [
        (re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])"), lambda match: " "),
        (re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])"), lambda match: match.group(0).replace(",", "")),
        (re.compile(r"(?:(?<![^\s(])(-))?(?<![\w.,])(\d+)(?:\.(\d+))?"), signed),
        (_DIGITS, lambda match: cardinal(match.group(0), language=language)),
        (_SEPARATOR, lambda match: " "),
        (_UNSPEAKABLE, lambda match: ""),
    ]


def _prepared(text: str, language: str) -> str:
    """One spelling for what Unicode writes several ways: superscripts as ^, compatibility forms
    (fullwidth, ligatures, ½, Ⅻ, ℃) folded, any script's digits as 0-9."""
    text = unicodedata.normalize("NFC", text)
    if language == "ru":
        text = text.replace("№", " номер ")  # before NFKC makes it «No»
    text = _SUPERSCRIPT_RUN.sub(lambda match: "^" + match.group(0).translate(_SUPERSCRIPTS), text)
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return _OTHER_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group(0))), text)


def normalize_for_tts(text: str, language: str = "ru") -> str:
    """What the voice should say for `text`: numbers, units and symbols in words; for Russian
    also Latin words read out and anything no Russian voice can read dropped. Never raises."""
    text = _prepared(text, language)
    for pattern, reading in _RUSSIAN if language == "ru" else _other_language(language):
        text = pattern.sub(reading, text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r" (?=[.,:;!?)»])|(?<=[(«]) ", "", text)
    return text.strip()
