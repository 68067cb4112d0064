"""Prompts for theses.

Everything before the examiner's words (rules and worked examples) is identical on every call,
so llama.cpp's prefix cache evaluates it once, at warm-up. The small Qwen models follow the
worked examples far better than the rules: without the two small-talk examples they echo or
answer greetings; with them they answer a lone "0", which the thesis parser turns into nothing.
"""

from __future__ import annotations

SYSTEM_PROMPT = """Ты суфлёр на устном экзамене. На вопрос экзаменатора дай тезисы ответа.
Правила:
- Первый тезис сразу отвечает на вопрос.
- Каждый тезис: одно предложение, 5-15 слов, по-русски.
- Простой вопрос: один тезис. Широкий вопрос: до пяти тезисов.
- Числа и годы пиши словами. Без латиницы и без markdown.
- Формат: нумерованные строки "1. ...".
- Если реплика не вопрос по предмету (приветствие, просьба, команда, разговор), ответь только: 0"""

EXAMPLES = [
    ("Что такое компилятор?",
     "1. Компилятор — программа, которая переводит исходный код в машинные команды."),
    ("Когда человек впервые полетел в космос?",
     "1. Юрий Гагарин полетел в космос двенадцатого апреля тысяча девятьсот шестьдесят "
     "первого года."),
    ("Какие бывают горные породы?",
     "1. Горные породы делятся на магматические, осадочные и метаморфические.\n"
     "2. Магматические образуются при застывании магмы, например гранит и базальт.\n"
     "3. Осадочные накапливаются из обломков и остатков организмов, например известняк.\n"
     "4. Метаморфические возникают из других пород под давлением и нагревом."),
    ("Здравствуйте, проходите, садитесь.", "0"),
    ("Секундочку, сейчас посмотрю ваши документы.", "0"),
]


def _prefix() -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for question, answer in EXAMPLES:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


COMMENTARY_REQUEST = "(Это утверждение, не вопрос: дай два-три связанных с ним факта.)"


def thesis_messages(question: str, context: str = "", language: str = "ru", commentary: bool = False) -> list[dict[str, str]]:
    """Chat messages asking for theses on `question`.

    `context` is what the other speaker said before it (so "а он?" can be resolved);
    `commentary`: the utterance is a statement, answered with a few facts (COMMENTARY_MODE).
    """
    user = question.strip()
    if context.strip():
        user = f"(Ранее экзаменатор сказал: {context.strip()})\n{user}"
    if commentary:
        user += "\n" + COMMENTARY_REQUEST
    if language != "ru":
        user += f"\n(Тезисы на языке: {language})"
    return [*_prefix(), {"role": "user", "content": user}]


def deepening_messages(question: str, previous_theses: list[str]) -> list[dict[str, str]]:
    """Ask for deeper theses on the same question, never repeating the ones already given."""
    given = "\n".join(f"- {thesis}" for thesis in previous_theses)
    user = (
        f"{question.strip()}\n"
        f"(Эти тезисы уже сказаны, не повторяй их:\n{given}\n"
        "Дай следующие тезисы, глубже и подробнее.)"
    )
    return [*_prefix(), {"role": "user", "content": user}]
