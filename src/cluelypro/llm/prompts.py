"""Prompts for theses.

Everything before the examiner's words (rules and worked examples) is identical on every call,
so llama.cpp's prefix cache evaluates it once, at warm-up. The small Qwen models follow the
worked examples far better than the rules: without the two small-talk examples they echo or
answer greetings; with them they answer a lone "0", which the thesis parser turns into nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYSTEM_PROMPT = """Ты суфлёр на устном экзамене. На вопрос экзаменатора дай тезисы ответа.
Правила:
- Первый тезис сразу отвечает на вопрос.
- Каждый тезис: одно предложение, 5-15 слов, по-русски.
- Простой вопрос: один тезис. Широкий вопрос: до пяти тезисов.
- Числа и годы пиши словами. Без латиницы и без markdown.
- Формат: нумерованные строки "1. ...".
- Если реплика не вопрос по предмету (приветствие, просьба, команда, разговор), ответь только: 0"""

EXAMPLES = [
    ("Что такое компилятор?", "1. Компилятор — программа, которая переводит исходный код в машинные команды."),
    (
        "Когда человек впервые полетел в космос?",
        "1. Юрий Гагарин полетел в космос двенадцатого апреля тысяча девятьсот шестьдесят первого года.",
    ),
    (
        "Какие бывают горные породы?",
        "1. Горные породы делятся на магматические, осадочные и метаморфические.\n"
        "2. Магматические образуются при застывании магмы, например гранит и базальт.\n"
        "3. Осадочные накапливаются из обломков и остатков организмов, например известняк.\n"
        "4. Метаморфические возникают из других пород под давлением и нагревом.",
    ),
    ("Здравствуйте, проходите, садитесь.", "0"),
    ("Секундочку, сейчас посмотрю ваши документы.", "0"),
]


def _prefix() -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for question, answer in EXAMPLES:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


COMMENTARY_REQUEST = "(Это утверждение, не вопрос: дай два-три связанных с ним факта.)"


def thesis_messages(
    question: str, context: str = "", language: str = "ru", commentary: bool = False
) -> list[dict[str, str]]:
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


DEEPENING_HEAD = "(Эти тезисы уже сказаны:"
DEEPENING_TAIL = "Продолжи список с пункта {next}: новые тезисы, глубже и подробнее, без повторов.)"
_TAIL_BEFORE, _TAIL_AFTER = (re.escape(part) for part in DEEPENING_TAIL.split("{next}"))
_DEEPENING = re.compile(rf"(?s)(.*)\n{re.escape(DEEPENING_HEAD)}\n(.*)\n{_TAIL_BEFORE}\d+{_TAIL_AFTER}")
_SAID_NUMBER = re.compile(r"^\d+\. ")
KEEP_RECENT_THESES = 3  # trimming keeps the last few theses said, so deepening goes on from them


def deepening_messages(question: str, previous_theses: list[str]) -> list[dict[str, str]]:
    """Ask for deeper theses on the same question, never repeating the ones already given.

    The theses said are a numbered list to be continued: shown as a list to avoid, the small
    Qwen models copied it whole before writing anything new, and their tokens ran out first."""
    return [*_prefix(), {"role": "user", "content": _deepening_request(question, previous_theses)}]


def _deepening_request(question: str, theses: list[str], first_number: int = 1) -> str:
    given = "\n".join(f"{number}. {thesis}" for number, thesis in enumerate(theses, first_number))
    tail = DEEPENING_TAIL.format(next=first_number + len(theses))
    return f"{question.strip()}\n{DEEPENING_HEAD}\n{given}\n{tail}"


@dataclass(frozen=True)
class Shorter:
    messages: list[dict[str, str]]
    left_out: str  # in words, for the log


def shorter_prompts(messages: list[dict[str, str]]) -> list[Shorter]:
    """Ever shorter versions of a thesis or deepening prompt, from the least lost to the most:
    first the oldest theses already said (down to the last KEEP_RECENT_THESES), then the worked
    examples from the last (small talk matters least to deepening, and the rest keeps its place
    in llama.cpp's prefix cache), then the last theses. The rules and the question always stay."""
    system, *examples, request = messages
    question, said = _split_deepening(request["content"])
    pairs = [examples[i : i + 2] for i in range(0, len(examples), 2)]

    def without(theses: int, worked: int) -> Shorter:
        content = request["content"] if question is None else _deepening_request(question, said[theses:], theses + 1)
        kept = [message for pair in pairs[: len(pairs) - worked] for message in pair]
        left_out = [
            f"{count} of {total} {what}"
            for count, total, what in [(theses, len(said), "earlier theses"), (worked, len(pairs), "worked examples")]
            if count
        ]
        return Shorter([system, *kept, {**request, "content": content}], " and ".join(left_out))

    old = len(said) - min(KEEP_RECENT_THESES, len(said))
    return (
        [without(theses, 0) for theses in range(1, old + 1)]
        + [without(old, worked) for worked in range(1, len(pairs) + 1)]
        + [without(theses, len(pairs)) for theses in range(old + 1, len(said) + 1)]
    )


def _split_deepening(content: str) -> tuple[str | None, list[str]]:
    """(question, theses said) of a deepening request; (None, []) for any other request."""
    found = _DEEPENING.fullmatch(content)
    if found is None:
        return None, []
    return found.group(1), [_SAID_NUMBER.sub("", line, count=1) for line in found.group(2).split("\n") if line]
