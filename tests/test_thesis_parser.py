import random

import pytest

from cluelypro.llm.thesis_parser import ThesisStreamParser, speakable_head

# Streams as the models actually wrote them (Qwen2.5-Coder 1.5B / 0.5B), plus the messy cases.
NUMBERED = (
    "1. Горные породы делятся на магматические, осадочные и метаморфические.\n"
    "2. Магматические образуются при застывании магмы, например гранит.\n"
    "3. Осадочные накапливаются из обломков и остатков организмов."
)
NUMBERED_THESES = [
    "Горные породы делятся на магматические, осадочные и метаморфические.",
    "Магматические образуются при застывании магмы, например гранит.",
    "Осадочные накапливаются из обломков и остатков организмов.",
]
SUB_ITEMS = (
    "1. Первая мировая война была вызвана многими факторами, включая:\n"
    "   - Борьба великих держав за колонии\n"
    "   - Гонка вооружений в Европе\n"
    "2. Поводом стало убийство эрцгерцога в Сараеве."
)
MESSY = (
    "Вот тезисы:\r\n\r\n"
    "**1.** **Кератин** — основной белок волос.\r\n"
    "2) «Он прочный и не растворяется в воде»\r\n"
    "- `Python` хранит строки как последовательности символов\r\n"
    "3. Роман «Война и мир» написал Лев Толстой\r\n"
    "Надеюсь, это поможет!"
)
MESSY_THESES = [
    "Кератин — основной белок волос.",
    "Он прочный и не растворяется в воде",
    "Python хранит строки как последовательности символов",
    "Роман «Война и мир» написал Лев Толстой",
]
ONE_LINE = (
    "1. Инфляция — это рост общего уровня цен. 2. Деньги при этом обесцениваются со временем. "
    "3. Её измеряют индексом потребительских цен."
)
ONE_LINE_THESES = [
    "Инфляция — это рост общего уровня цен.",
    "Деньги при этом обесцениваются со временем.",
    "Её измеряют индексом потребительских цен.",
]
# Qwen2.5-Coder 1.5B on a CI machine's CPU, asked for the causes of the First World War.
SIX_BULLETS = (
    "- Народные войны в России и Болгарии\n"
    "- Война с Францией по вопросам империи\n"
    "- Война с Италией по вопросам империи\n"
    "- Война с Англией по вопросам империи\n"
    "- Война с Германии по вопросам империи\n"
    "- Эти войны вызвали глобальный хаос, который привело к потере жизни."
)
CASES = [
    (NUMBERED, NUMBERED_THESES),
    (SIX_BULLETS, [line[2:] for line in SIX_BULLETS.splitlines()[:5]]),  # at most five a round
    (
        SUB_ITEMS,
        [
            "Борьба великих держав за колонии",
            "Гонка вооружений в Европе",
            "Поводом стало убийство эрцгерцога в Сараеве.",
        ],
    ),
    (MESSY, MESSY_THESES),
    (ONE_LINE, ONE_LINE_THESES),
    ("Кератин — основной белок волос, ногтей и кожи.", ["Кератин — основной белок волос, ногтей и кожи."]),
    ("0", []),
    ("0.", []),
    ("0\n\nЭто приветствие, а не вопрос по предмету.", []),
    ("", []),
    ("\n\n", []),
    ("1. Да.\n2. Строки (str).", []),  # too short to be theses
    (
        "1. Война началась в Африке.\n2. Война началась в Африке.\n3. Война началась в Африке.",
        ["Война началась в Африке."],
    ),  # a looping small model: each thesis once
]


def run(chunks: list[str]) -> tuple[list[str], list[list[str]]]:
    parser = ThesisStreamParser()
    per_chunk = [parser.feed(chunk) for chunk in chunks]
    per_chunk.append(parser.finish())
    return [thesis for batch in per_chunk for thesis in batch], per_chunk


def rechunk(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(max(len(text) - 1, 0), rng.randint(0, 40))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_whole_and_char_by_char(text: str, expected: list[str]) -> None:
    assert run([text])[0] == expected
    assert run(list(text))[0] == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_random_rechunking_gives_the_same_theses(text: str, expected: list[str]) -> None:
    rng = random.Random(1234)
    for _ in range(300):
        assert run(rechunk(text, rng))[0] == expected


def test_thesis_is_emitted_as_soon_as_it_is_complete() -> None:
    parser = ThesisStreamParser()
    assert parser.feed("1") == []
    assert parser.feed(". Кер") == []
    assert parser.feed("атин — основной белок волос.") == []
    assert parser.feed("\n") == ["Кератин — основной белок волос."]
    assert parser.feed("2. Он прочный и нерастворимый") == []
    assert parser.finish() == ["Он прочный и нерастворимый"]
    # the same thesis on one line completes when the next number starts
    parser = ThesisStreamParser()
    assert parser.feed("1. Инфляция — это рост цен. 2") == []
    assert parser.feed(".") == []
    assert parser.feed(" Деньги") == ["Инфляция — это рост цен."]
    assert parser.finish() == []  # "Деньги": one word


def test_numbers_inside_a_thesis_do_not_split_it() -> None:
    text = "1. Война шла с 1914 по 1918 год, погибло 10 млн. человек.\n2. В ней участвовали 38 государств."
    assert run(list(text))[0] == [
        "Война шла с 1914 по 1918 год, погибло 10 млн. человек.",
        "В ней участвовали 38 государств.",
    ]


def test_the_parser_is_full_after_five_theses() -> None:
    parser = ThesisStreamParser()
    assert len(parser.feed(SIX_BULLETS[: SIX_BULLETS.rindex("\n") + 1])) == 5
    assert parser.full
    assert parser.feed("7. Ещё один лишний тезис о войне.\n") + parser.finish() == []
    assert not ThesisStreamParser(already_said=NUMBERED_THESES).full  # five a round, not in all


def test_small_talk_gives_nothing() -> None:
    for answer in ["0", "0\n", " 0 ", "0.", "Нет вопроса:"]:
        assert run(list(answer))[0] == []


def test_theses_already_said_are_not_repeated() -> None:
    parser = ThesisStreamParser(already_said=["Инфляция — рост общего уровня цен."])
    stream = "1. Инфляция — рост общего уровня цен.\n2. Её измеряют индексом потребительских цен."
    assert parser.feed(stream) + parser.finish() == ["Её измеряют индексом потребительских цен."]


def test_numbered_partial_shows_the_thesis_being_written() -> None:
    parser = ThesisStreamParser()
    assert parser.feed("1. Фотосинтез — процесс, ") == []
    assert parser.numbered_partial() == "Фотосинтез — процесс, "
    assert parser.feed("при котором растения запасают энергию.\n2") == [
        "Фотосинтез — процесс, при котором растения запасают энергию."
    ]
    assert parser.numbered_partial() == ""


def test_no_partial_for_small_talk_or_preamble() -> None:
    silent = ThesisStreamParser()
    silent.feed("0")
    assert silent.numbered_partial() == ""
    preamble = ThesisStreamParser()
    preamble.feed("Вот тезисы ответа")
    assert preamble.numbered_partial() == ""


@pytest.mark.parametrize(
    ("partial", "head"),
    [
        ("Фотосинтез — процесс", ""),  # "процесс" may go on ("процессы")
        ("Фотосинтез — процесс, при", "Фотосинтез — процесс,"),  # the dash is not a word
        ("Юрий Гагарин — первый", "Юрий Гагарин"),
        ("Инфляция это", ""),
        ("Инфляция это устойчивый рост общего уровня цен на", "Инфляция это устойчивый"),  # not on «это»
        ("Лев Толстой написал", "Лев Толстой"),
        ("Погода в Москве", ""),  # not «Погода в»
        ("Погода в Москве сейчас", "Погода в Москве"),
        ("Да, это", ""),
        ("Целые числа (int).\n", "Целые числа"),
    ],
)
def test_speakable_head(partial: str, head: str) -> None:
    assert speakable_head(partial) == head


@pytest.mark.parametrize(
    ("written", "head", "thesis"),
    [
        (
            "Первая мировая война была вызвана многими факторами, включая:",
            "Первая мировая",
            "Первая мировая война была вызвана многими факторами",
        ),  # a heading over sub-items, as a thesis
        ("Типы данных в Python:", "Типы данных", "Типы данных в Python"),
        ("Совсем другое начало", "Первая мировая", "Первая мировая"),  # what was spoken stands alone
    ],
)
def test_a_thesis_spoken_early_and_then_dropped_keeps_what_was_written(written: str, head: str, thesis: str) -> None:
    from cluelypro.pipeline.answer import _heading_thesis

    assert _heading_thesis(written, head) == thesis


def test_theses_a_voice_would_misread_are_repaired_or_dropped() -> None:
    """The post-filter (issue 12): the 1.5B model's real slips — a lone Latin word, a Latin aside,
    a chemical formula, a formula — and a thesis that only repeats part of an earlier one."""
    answer = (
        "1. Фотосинтез — процесс, при котором живые organisms преобразуют энергию света.\n"
        "2. Хлорофилл (chlorophyll) поглощает солнечный свет.\n"
        "3. Растения поглощают CO₂ и выделяют O2.\n"
        "4. По теореме c^2 = a^2 + b^2 для любого треугольника.\n"
        "5. Хлорофилл поглощает свет.\n"
        "6. Python используют для анализа данных в биологии.\n"
        "7. Протокол HTTP передаёт страницы от сервера к браузеру.\n"
    )
    assert run([answer])[0] == [
        "Фотосинтез — процесс, при котором живые преобразуют энергию света.",  # the lone word left out
        "Хлорофилл поглощает солнечный свет.",
        "Растения поглощают углекислый газ и выделяют кислород.",
        "Python используют для анализа данных в биологии.",  # a Latin word with a set reading
        "Протокол HTTP передаёт страницы от сервера к браузеру.",  # an acronym, read letter by letter
    ]


def test_a_thesis_started_early_is_repaired_and_stops_before_a_formula() -> None:
    parser = ThesisStreamParser()
    parser.feed("1. Живые organisms преобразуют")
    assert parser.numbered_partial() == "Живые преобразуют"
    parser = ThesisStreamParser()
    parser.feed("1. По теореме c^2 = a")
    assert parser.numbered_partial() == "По теореме "
    parser = ThesisStreamParser()
    parser.feed("1. Растения поглощают CO2 и ")
    assert parser.numbered_partial() == "Растения поглощают углекислый газ и "


def test_a_repair_that_leaves_too_little_drops_the_thesis() -> None:
    parser = ThesisStreamParser()
    answer = "1. Типы: bytes, bytearray.\n2. Основные типы: int, bytes, frozenset и str.\n"
    assert run([answer])[0] == ["Основные типы: int, и str."]  # known words stay; no comma left hanging
    assert parser.feed("1. Типы: bytes, memoryview.\n") == []


def test_deepening_drops_a_thesis_that_only_rephrases_one_said() -> None:
    parser = ThesisStreamParser(["Хлорофилл поглощает солнечный свет и запасает энергию."])
    assert parser.feed("1. Солнечный свет поглощает хлорофилл.\n2. Кислород выделяется в атмосферу.\n") == [
        "Кислород выделяется в атмосферу."
    ]
