import pytest

from cluelypro.prompter.filter import QuestionFilter
from cluelypro.prompter.samples import EXAM_QUESTIONS

SMALL_TALK = [
    "Добрый день, присаживайтесь",
    "Подождите минутку",
    "Спасибо",
    "Так, хорошо",
    "Следующий вопрос",
    "Хорошо, спасибо, садитесь.",
    "Вы готовы?",
    "Как дела?",
    "Что?",
    "Берите билет",
    "Давайте перейдём к следующему вопросу",
    "Thank you",
]


@pytest.mark.parametrize("question", EXAM_QUESTIONS)
def test_exam_questions_are_accepted(question: str) -> None:
    assert QuestionFilter().decide(question)[0]


@pytest.mark.parametrize("question", [question.rstrip("?") for question in EXAM_QUESTIONS])
def test_exam_questions_without_a_question_mark_are_accepted(question: str) -> None:
    accepted, reason = QuestionFilter().decide(question)
    assert accepted
    assert reason.startswith(("interrogative: ", "imperative: "))


@pytest.mark.parametrize("text", SMALL_TALK)
def test_small_talk_is_rejected(text: str) -> None:
    assert QuestionFilter().decide(text) == (False, "small talk")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Что такое фотосинтез?", "question mark"),
        ("Почему?", "question mark"),
        ("Почему", "interrogative: почему"),
        ("А почему он проиграл", "interrogative: почему"),
        ("В каком году началась война", "interrogative: каком"),
        ("Чем список отличается от кортежа", "interrogative: чем"),
        ("Знаете ли вы, кто такой Наполеон", "interrogative: ли"),
        ("What is a derivative", "interrogative: what"),
        ("Расскажите о причинах Первой мировой войны", "imperative: расскажите"),
        ("Расскажи про инфляцию", "imperative: расскажи"),
        ("Объясните.", "imperative: объясните"),
        ("Перечислите типы данных", "imperative: перечислите"),
        ("Опишите героев романа", "imperative: опишите"),
        ("Докажите теорему", "imperative: докажите"),
        ("Сравните списки и кортежи", "imperative: сравните"),
        ("Приведите пример изменяемого типа", "imperative: приведите"),
        ("Дайте определение производной", "imperative: дайте"),
        ("Поясните вашу мысль", "imperative: поясните"),
        ("Охарактеризуйте эпоху", "imperative: охарактеризуйте"),
        ("Можете рассказать про инфляцию", "imperative: рассказать"),
        ("Давайте поговорим об инфляции", "imperative: поговорим"),
        ("Спасибо. Расскажите о себе", "imperative: расскажите"),
        ("Следующий вопрос: что такое инфляция", "interrogative: что"),
        ("Tell me about inflation", "imperative: tell"),
        ("Explain recursion", "imperative: explain"),
    ],
)
def test_question_reasons(text: str, reason: str) -> None:
    assert QuestionFilter().decide(text) == (True, reason)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Включи свет", "command"),
        ("Дайте мне ручку", "command"),
        ("Закройте, пожалуйста, дверь", "command"),
        ("Фотосинтез.", "too short"),
        ("Фотосинтез идёт в хлоропластах", "statement"),
        ("", "empty"),
        ("  ...  ", "empty"),
    ],
)
def test_rejections(text: str, reason: str) -> None:
    assert QuestionFilter().decide(text) == (False, reason)


def test_min_words_applies_to_statements_only() -> None:
    strict = QuestionFilter(commentary=True, min_words=4)
    assert strict.decide("Фотосинтез идёт в хлоропластах") == (True, "commentary")
    assert strict.decide("Инфляция растёт") == (False, "too short")
    assert strict.decide("Зачем?") == (True, "question mark")


def test_commentary_mode_accepts_statements_but_not_small_talk_or_commands() -> None:
    commentary = QuestionFilter(commentary=True)
    assert commentary.decide("Фотосинтез идёт в хлоропластах") == (True, "commentary")
    assert commentary.decide("Что такое инфляция?") == (True, "question mark")
    assert commentary.decide("Добрый день, присаживайтесь") == (False, "small talk")
    assert commentary.decide("Включи свет") == (False, "command")


def test_all_mode_passes_everything_non_empty() -> None:
    llm = QuestionFilter(mode="all")
    assert llm.decide("Добрый день, присаживайтесь") == (True, "llm decides")
    assert llm.decide("Что такое инфляция?") == (True, "llm decides")
    assert llm.decide(" ") == (False, "empty")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        QuestionFilter(mode="regex")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "60 тысяч 10 геет сколько будет стоит.",  # real ASR output of golos_00: the comma is lost
        "А ты знаешь почему небо голубое",
    ],
)
def test_unambiguous_interrogatives_count_anywhere(text: str) -> None:
    accepted, reason = QuestionFilter().decide(text)
    assert accepted and reason.startswith("interrogative: ")
