"""Numbers as words, for any number an LLM can write, in agreement with the words around them.

num2words says integers up to 10^33 and decimals whose digits it can count; a longer number is
read digit by digit, so it is never dropped and never raises.
"""

from __future__ import annotations

from functools import lru_cache

from num2words import CONVERTER_CLASSES, num2words

from cluelypro.morphology import morph

# A longer integer (or one with leading zeros, like a code «007») is read digit by digit: nobody
# follows "сто двадцать три квинтиллиона …" in an earpiece, and num2words stops at 10^33.
LONGEST_WORDED = 15
# More digits after the comma than this are read one by one: "три запятая один четыре один …".
LONGEST_DECIMALS = 6

# pymorphy3 case → num2words case
CASES = {
    "nomn": "n",
    "gent": "g",
    "gen2": "g",
    "datv": "d",
    "accs": "a",
    "acc2": "a",
    "ablt": "i",
    "loct": "p",
    "loc2": "p",
    "voct": "n",
}
GENDERS = {"masc": "m", "femn": "f", "neut": "n"}
AGREEING = {"NOUN", "ADJF", "PRTF"}


def speaks(language: str) -> bool:
    """Whether num2words has words for numbers in `language`."""
    return language in CONVERTER_CLASSES


def _worded(digits: str) -> bool:
    return len(digits) <= LONGEST_WORDED and (digits == "0" or not digits.startswith("0"))


def one_by_one(digits: str, language: str = "ru") -> str:
    return " ".join(num2words(int(digit), lang=language) for digit in digits)


def cardinal(digits: str, case: str = "n", gender: str = "m", language: str = "ru") -> str:
    """An integer written in digits («42», «007») as words; `case` and `gender` for Russian."""
    if not _worded(digits):
        return one_by_one(digits, language)
    if language != "ru":
        return num2words(int(digits), lang=language)
    return num2words(int(digits), lang="ru", case=case, gender=gender)


def ordinal(digits: str, case: str = "n", gender: str = "m", plural: bool = False, animate: bool = False) -> str:
    """«1914» as «тысяча девятьсот четырнадцатый», in any case, gender and number."""
    if not _worded(digits):
        return one_by_one(digits)
    return num2words(int(digits), lang="ru", to="ordinal", case=case, gender=gender, plural=plural, animate=animate)


def decimal(whole: str, fraction: str, language: str = "ru") -> str:
    """«3,5» as «три целых пять десятых» (a long fraction digit by digit)."""
    whole = whole.lstrip("0") or "0"
    if _worded(whole) and len(fraction) <= LONGEST_DECIMALS:
        return num2words(f"{whole}.{fraction}", lang=language)
    point = "запятая" if language == "ru" else "point"
    return f"{cardinal(whole, language=language)} {point} {one_by_one(fraction, language)}"


@lru_cache(maxsize=4096)
def grammar_of(word: str) -> tuple[str, str, bool, bool] | None:
    """(case, gender, plural, animate) of a noun or full adjective, for a numeral that agrees with it."""
    parse = morph().parse(word)[0]
    if parse.tag.POS not in AGREEING or parse.tag.case is None:
        return None
    plural = parse.tag.number == "plur"
    gender = GENDERS.get(parse.tag.gender or _lemma_gender(parse) or "", "m")
    return CASES[parse.tag.case], gender, plural, "anim" in parse.tag


def _lemma_gender(parse) -> str | None:
    return morph().parse(parse.normal_form)[0].tag.gender


def ordinal_like(digits: str, word: str) -> str | None:
    """The ordinal of `digits` in the form of `word` («веке» → «двадцатом»), if it is a noun or adjective."""
    grammar = grammar_of(word)
    if grammar is None:
        return None
    case, gender, plural, animate = grammar
    return ordinal(digits, case, gender, plural, animate)


ORDINAL_FORMS = [(case, gender, False) for gender in "mfn" for case in "ngdaip"] + [
    (case, "m", True) for case in "ngdip"
]


def ordinal_ending_in(digits: str, ending: str, next_word: str = "") -> str:
    """The ordinal that «2-й», «3-го», «90-е» abbreviate: the form agreeing with the next word if
    its ending fits, else the first form that ends in `ending`."""
    agreeing = ordinal_like(digits, next_word) if next_word else None
    if agreeing and agreeing.endswith(ending):
        return agreeing
    for case, gender, plural in ORDINAL_FORMS:
        form = ordinal(digits, case, gender, plural)
        if form.endswith(ending):
            return form
    return ordinal(digits)


@lru_cache(maxsize=1024)
def agree(words: str, number: int | None, case: str = "nomn") -> str:
    """`words` (nominative singular: «квадратный метр») as they go with `number` in `case`
    («пяти квадратных метров»); `number` None is a fraction, which takes the genitive singular."""
    return " ".join(_agree_word(word, number, case) for word in words.split())


def _agree_word(word: str, number: int | None, case: str) -> str:
    parse = next((p for p in morph().parse(word) if p.normal_form == word and p.tag.POS in AGREEING), None)
    if parse is None:
        return word
    if number is None:
        form = parse.inflect({"gent", "sing"})
    else:
        form = parse.inflect({case, "sing"})
        form = form and form.make_agree_with_number(number)
    return form.word if form else word
