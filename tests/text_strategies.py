"""Hypothesis strategies for text an LLM (or an ASR) can produce: Russian prose mixed with every
way of writing a number, a unit, a date, a Roman numeral, markup and Latin words."""

from __future__ import annotations

import string

from hypothesis import strategies as st

RUSSIAN_WORDS = [
    "в",
    "году",
    "года",
    "век",
    "веке",
    "до",
    "от",
    "около",
    "при",
    "к",
    "Пётр",
    "Петре",
    "Екатерина",
    "рост",
    "на",
    "процентов",
    "человек",
    "книги",
    "месте",
    "годах",
    "с",
    "половиной",
    "тонна",
    "Инфляция",
    "составила",
    "это",
    "и",
    "глава",
    "г.",
    "вв.",
    "в.",
]
UNITS = [
    "%",
    "км",
    "кг",
    "м",
    "м/с",
    "км/ч",
    "°C",
    "°",
    "г",
    "т",
    "с",
    "мин",
    "ч",
    "$",
    "€",
    "₽",
    "млн",
    "тыс.",
    "ГБ",
    "MB",
    "м²",
    "км2",
    "руб.",
]
SIGNS = ["", "-", "−", "+"]
DASHES = ["-", "–", "—", " – ", "‑"]
ROMANS = ["I", "II", "IV", "IX", "XIV", "XIX", "XX", "XXI", "XXXIX", "XL", "CD", "MMXXIV", "X"]
ORDINAL_ENDINGS = ["й", "я", "е", "го", "му", "м", "х", "ми", "ый", "ого", "ых", "ая"]
MARKUP = ["[/INST]", "[bold]", "[/]", "**", "`", "<b>", "\\", "[", "]", ":smile:", "#", "\n"]

digits = st.integers(min_value=0, max_value=10**40).map(str)
small = st.integers(min_value=0, max_value=3000).map(str)


@st.composite
def decimals(draw) -> str:
    return f"{draw(digits)}{draw(st.sampled_from(',.'))}{draw(st.text('0123456789', min_size=1, max_size=12))}"


numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**60), max_value=10**60).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # 1e+16, 5e-05, -0.0
    st.floats(allow_nan=False, allow_infinity=False).map(lambda value: repr(value).replace(".", ",")),
    decimals(),
    st.builds(
        lambda m, e, sign, letter: f"{m}{letter}{sign}{e}",
        st.sampled_from(["1", "2.5", "6,02", "0"]),
        st.integers(0, 10**20),
        st.sampled_from(["", "-", "+"]),
        st.sampled_from("eE"),
    ),
)
fragments = st.one_of(
    numbers,
    st.builds(lambda sign, number: sign + number, st.sampled_from(SIGNS), numbers),
    st.builds(lambda a, b: f"{a}/{b}", small, small),
    st.builds(lambda a, dash, b: f"{a}{dash}{b}", small, st.sampled_from(DASHES), small),
    st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 30), st.integers(0, 99)),
    st.builds(
        lambda number, space, unit: f"{number}{space}{unit}",
        numbers,
        st.sampled_from(["", " ", "\u00a0"]),
        st.sampled_from(UNITS),
    ),
    st.builds(lambda sign, number: f"{sign}{number}", st.sampled_from(["$", "€", "£"]), numbers),
    st.builds(lambda a, b: f"{a} {b:03d}", st.integers(1, 999), st.integers(0, 999)),
    st.builds(lambda n, ending: f"{n}-{ending}", small, st.sampled_from(ORDINAL_ENDINGS)),
    st.builds(lambda numeral, word: f"{numeral} {word}", st.sampled_from(ROMANS), st.sampled_from(RUSSIAN_WORDS)),
    st.builds(lambda word, numeral: f"{word} {numeral}", st.sampled_from(RUSSIAN_WORDS), st.sampled_from(ROMANS)),
    st.builds(lambda d, m, y: f"{d}.{m}.{y}", st.integers(0, 40), st.integers(0, 14), st.integers(0, 3000)),
    st.text(string.ascii_letters + "+-", min_size=1, max_size=12),
    st.sampled_from(RUSSIAN_WORDS + MARKUP + ["C++", "Wi-Fi", "GPT-4", "x²", "10^23", "½", "№", "π", "Ⅻ", "café"]),
)
llm_text = st.lists(fragments, max_size=12).flatmap(
    lambda parts: st.lists(
        st.sampled_from([" ", ", ", ". ", " (", ") ", " — ", "", "\n"]), min_size=len(parts), max_size=len(parts)
    ).map(lambda separators: "".join(part + separator for part, separator in zip(parts, separators, strict=True)))
)
any_text = st.one_of(st.text(), llm_text)
