"""ThesisMatcher on a labelled set: what the user said (as the ASR wrote it) against a thesis.

Theses are written as the thesis prompt makes them (numbers and Latin in words); the spoken
side has ASR errors (lost endings, misheard or split words, digits, Latin), paraphrases and
hard negatives: another thesis of the same answer, which shares its topic word.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from cluelypro.prompter.matcher import ThesisMatcher, content_words, coverage, near_duplicate
from cluelypro.prompter.plan import ThesisPlan
from text_strategies import any_text

WW1_TRIGGER = "Поводом к войне стало убийство эрцгерцога Франца Фердинанда в Сараеве."
WW1_COLONIES = "Главная причина — борьба великих держав за колонии и рынки сбыта."
WW1_BLOCS = "Европа разделилась на два военных блока: Антанту и Тройственный союз."
WW1_ARMS = "Гонка вооружений усилила напряжённость между странами Европы."

D_RATE = "Производная — это скорость изменения функции в точке."
D_LIMIT = "Производная равна пределу отношения приращения функции к приращению аргумента."
D_TANGENT = "Геометрически производная — это тангенс угла наклона касательной."

P_TYPES = "В Питоне есть числа, строки, списки, кортежи и словари."
P_MUTABLE = "Списки изменяемы, а кортежи неизменяемы."
P_DICT = "Словарь хранит пары ключ и значение."
P_BOOL = "Логический тип принимает значения истина и ложь."
P_IMMUTABLE = "Кортежи неизменяемы."

F_DEF = "Фотосинтез — процесс образования органических веществ из углекислого газа и воды на свету."
F_WHERE = "Фотосинтез идёт в хлоропластах растений."
F_OXYGEN = "При фотосинтезе выделяется кислород."
F_LIGHT = "Энергию света поглощает хлорофилл."

W_AUTHOR = "Роман «Война и мир» написал Лев Толстой."
W_1812 = "Роман описывает события Отечественной войны тысяча восемьсот двенадцатого года."
W_HEROES = "Главные герои — Пьер Безухов, Андрей Болконский и Наташа Ростова."
W_FATES = "Толстой показывает судьбы людей и народа в эпоху наполеоновских войн."

I_DEF = "Инфляция — это устойчивый рост общего уровня цен."
I_MONEY = "При инфляции деньги обесцениваются, и покупательная способность падает."
I_CPI = "Инфляцию измеряют индексом потребительских цен."
I_MODERATE = "Умеренная инфляция — два-три процента в год."

GAGARIN = "Юрий Гагарин первым полетел в космос в тысяча девятьсот шестьдесят первом году."

# (spoken, thesis, expected)
CASES = [
    # Первая мировая война
    ("поводом к войне стало убийство эрцгерцога франца фердинанда в сараево", WW1_TRIGGER, True),
    ("ну повод это убийство эрц герцога фердинанда в сараеве", WW1_TRIGGER, True),
    ("главной причиной была борьба великих держав за колонии", WW1_COLONIES, True),
    ("европа разделилась на два блока антанта и тройственный союз", WW1_BLOCS, True),
    ("гонка вооружений усилила напряжение между странами", WW1_ARMS, True),
    ("европа разделилась на два блока антанта и тройственный союз", WW1_ARMS, False),
    ("главная причина борьба держав за колонии", WW1_TRIGGER, False),
    ("войну начали из за убийства в сараево", WW1_COLONIES, False),
    # производная
    ("производная это скорость изменения функции", D_RATE, True),
    ("производная показывает как быстро меняется функция в точке", D_RATE, True),
    ("производная равна приделу отношения прирощения функции к прирощению аргумента", D_LIMIT, True),
    ("производная равна пределу отношения приращения функции к приращению аргумента", D_RATE, False),
    ("геометрически это тангенс угла наклона касательной", D_TANGENT, True),
    ("тангенс угла наклона касательной", D_RATE, False),
    ("скорость изменения функции", D_TANGENT, False),
    # типы данных Python
    ("в python есть числа строки списки кортежи и словари", P_TYPES, True),
    ("основные типы это числа строки списки кортежи словари", P_TYPES, True),
    ("список можно изменять а кортеж изменить нельзя", P_MUTABLE, True),
    ("списки изменяемы а кортежи нет", P_TYPES, False),
    ("кортежи это последовательности", P_IMMUTABLE, False),
    ("кортежи неизменяемые", P_IMMUTABLE, True),
    ("словарь хранит пары ключ значение", P_DICT, True),
    ("словарь хранит пары ключ значение", P_MUTABLE, False),
    ("булев тип это истина или ложь true false", P_BOOL, True),
    ("логический тип принимает значения тру и фолс", P_BOOL, True),
    # фотосинтез
    ("при фотосинтезе выделяется кислород", F_WHERE, False),
    ("фотосинтез идет в хлоропластах растений", F_OXYGEN, False),
    ("фотосинтез идет в хлоропластах", F_WHERE, True),
    ("фотосинтез происходит в хлоропласте у растений", F_WHERE, True),
    ("при фотосинтезе выделяется кислород", F_OXYGEN, True),
    ("в результате фотосинтеза растения выделяют кислород", F_OXYGEN, True),
    ("фото синтез это процесс образования органики из углекислого газа и воды", F_DEF, True),
    ("хлорофилл поглощает энергию света", F_LIGHT, True),
    ("свет поглощается хлорофиллом", F_LIGHT, True),
    ("хлорофилл поглощает энергию света", F_WHERE, False),
    ("фотосинтез идет в хлоропластах а еще при нем выделяется кислород", F_OXYGEN, True),
    ("я не помню", F_DEF, False),
    # «Война и мир»
    ("война и мир написал лев толстой", W_AUTHOR, True),
    ("роман написал толстой", W_AUTHOR, True),
    ("роман описывает войну восемьсот двенадцатого года", W_1812, True),
    ("события войны 1812 года", W_1812, True),
    ("главные герои пьер безухов андрей болконский и наташа ростова", W_HEROES, True),
    ("герои пер безухов и андрей балконский", W_HEROES, True),
    ("главные герои пьер безухов андрей болконский и наташа ростова", W_AUTHOR, False),
    ("толстой написал роман война и мир", W_FATES, False),
    ("роман описывает войну восемьсот двенадцатого года", W_FATES, False),
    # инфляция
    ("инфляция это рост общего уровня цен", I_DEF, True),
    ("инфляция это когда цены растут", I_DEF, True),
    ("инфляцию измеряют индексом потребительских цен", I_DEF, False),
    ("деньги обесцениваются покупательная способность падает", I_MONEY, True),
    ("деньги обесцениваются", I_CPI, False),
    ("инфляция измеряется индексом потребительских цен", I_CPI, True),
    ("инфляция два три процента в год это умеренная", I_MODERATE, True),
    ("умеренная инфляция", I_DEF, False),
    ("можно я подумаю", I_DEF, False),
    # the brief's paraphrase
    ("Гагарин полетел в космос в шестьдесят первом году", GAGARIN, True),
    ("Гагарин полетел в космос в 1961 году", GAGARIN, True),
    # written after the threshold was chosen (held out): 12 of 14 right, both misses paraphrases
    ("убийство франца фердинанда стало поводом", WW1_TRIGGER, True),
    ("антанта и тройственный союз", WW1_BLOCS, True),
    ("страны европы соревновались в вооружении", WW1_ARMS, True),
    ("производная это предел отношения приращений", D_LIMIT, True),
    ("производная это тангенс", D_RATE, False),
    ("в словаре ключи и значения", P_DICT, True),
    ("растения выделяют кислород", F_WHERE, False),
    ("органические вещества образуются из углекислого газа и воды", F_DEF, True),
    ("толстой", W_AUTHOR, False),
    ("наташа ростова и пьер безухов главные герои", W_HEROES, True),
    ("война восемьсот двенадцатого года", W_FATES, False),
    ("цены растут а деньги дешевеют", I_MONEY, True),
    ("индекс потребительских цен", I_DEF, False),
    ("гагарин первым полетел в космос", GAGARIN, True),
]

# Measured at the default threshold 0.5: 68 of 71 (0.958); every miss is a paraphrase the lemma
# stage cannot see (a semantic stage's job), no hard negative matches.
ACCURACY_FLOOR = 0.93


def test_the_set_is_broad_enough() -> None:
    assert len(CASES) >= 30
    assert sum(1 for *_, expected in CASES if not expected) >= 10


def test_lemma_stage_accuracy_floor() -> None:
    matcher = ThesisMatcher()
    wrong = [
        (spoken, thesis, expected) for spoken, thesis, expected in CASES if matcher.match(spoken, thesis)[0] != expected
    ]
    accuracy = 1 - len(wrong) / len(CASES)
    assert accuracy >= ACCURACY_FLOOR, wrong


def test_no_hard_negative_matches() -> None:
    matcher = ThesisMatcher()
    false_matches = [(s, t) for s, t, expected in CASES if not expected and matcher.match(s, t)[0]]
    assert false_matches == []


@pytest.mark.parametrize(
    ("spoken", "thesis", "expected"),
    [
        ("Гагарин полетел в космос в шестьдесят первом году", GAGARIN, True),
        ("При фотосинтезе выделяется кислород", F_WHERE, False),
        ("При фотосинтезе выделяется кислород", F_OXYGEN, True),
    ],
)
def test_brief_examples(spoken: str, thesis: str, expected: bool) -> None:
    assert ThesisMatcher().match(spoken, thesis) == (expected, "lemma" if expected else "none")


def test_later_stages_run_only_when_earlier_ones_fail() -> None:
    calls: list[str] = []

    def similarity(spoken: str, thesis: str) -> float:
        calls.append("similarity")
        return 0.9 if "растут" in spoken else 0.1

    def judge(spoken: str, thesis: str) -> bool:
        calls.append("judge")
        return "да или нет" in spoken

    matcher = ThesisMatcher(similarity=similarity, judge=judge)
    assert matcher.match("инфляция это рост общего уровня цен", I_DEF) == (True, "lemma")
    assert calls == []
    assert matcher.match("инфляция это когда цены растут", I_DEF) == (True, "semantic")
    assert matcher.match("это да или нет", P_BOOL) == (True, "judge")
    assert matcher.match("я не помню", P_BOOL) == (False, "none")
    assert calls == ["similarity", "similarity", "judge", "similarity", "judge"]


def test_empty_text_never_matches() -> None:
    judge_calls: list[str] = []
    matcher = ThesisMatcher(judge=lambda s, t: judge_calls.append(s) or True)
    assert matcher.match("", F_DEF) == (False, "none")
    assert matcher.match("фотосинтез", "  ") == (False, "none")
    assert judge_calls == []


def test_content_words_drop_function_words_and_read_numbers() -> None:
    lemmas = [word.lemma for word in content_words("Это был, как и в 1961 году, очень важный полёт")]
    assert lemmas == ["один", "тысяча", "девятьсот", "шестьдесят", "год", "важный", "полет"]


def test_coverage_is_share_of_thesis_words() -> None:
    assert coverage("фотосинтез идет в хлоропластах растений", F_WHERE) == 1.0
    assert coverage("", F_WHERE) == 0.0
    assert coverage("что угодно", "и в на") == 0.0


def test_near_duplicates() -> None:
    assert near_duplicate("Фотосинтез идёт в хлоропластах растений!", F_WHERE)
    assert near_duplicate("Фотосинтез происходит в хлоропластах растений.", F_WHERE)
    assert near_duplicate("Инфляция — это рост цен.", I_DEF)
    assert not near_duplicate(I_DEF, "Инфляция — это рост цен.")
    assert not near_duplicate(F_OXYGEN, F_WHERE)
    assert not near_duplicate("Фотосинтез важен для жизни на Земле.", F_WHERE)


# --- any text an LLM or the ASR can write (issue 9, finding 1) ---------------------------------

HUGE = "1" + "0" * 34  # num2words cannot say it


def test_a_huge_number_in_a_thesis_keeps_the_plan_going() -> None:
    """The LLM stream adds each thesis to the plan, which compares it with the earlier ones."""
    plan = ThesisPlan(q=1)
    theses = [f"Число Авогадро меньше {HUGE}.", f"Гугол больше {HUGE}.", "Гугол — это десять в сотой степени."]
    added = [plan.add(text) for text in theses]
    assert [thesis.index for thesis in added if thesis] == [1, 2, 3]
    assert plan.add(f"Гугол больше, чем {HUGE}!") is None  # a repeat is still recognised
    assert ThesisMatcher().match(f"гугол больше чем {HUGE}", theses[1]) == (True, "lemma")


@settings(deadline=None, max_examples=300)
@given(any_text, any_text)
def test_matcher_never_raises(spoken: str, thesis: str) -> None:
    matched, method = ThesisMatcher().match(spoken, thesis)
    assert matched == (method == "lemma")
    assert 0.0 <= coverage(spoken, thesis) <= 1.0
    assert isinstance(near_duplicate(thesis, spoken), bool)
    assert all(word.lemma for word in content_words(thesis))
