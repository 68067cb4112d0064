"""Does the other speaker's utterance need an answer? (SPEC §2.5.)

Heuristic mode looks for a question mark, an interrogative word at the start of a clause
(«…, а почему он…», «В каком году…»), the particle «ли», or a verb asking for an answer
(«расскажите», «можете объяснить», «дайте определение», "explain"), matched on pymorphy3 lemmas
so every form counts. An utterance made only of greetings, thanks, fillers and exam routine
(«Добрый день, присаживайтесь», «Так, хорошо», «Следующий вопрос») is small talk; any other
imperative («Включи свет») is a command. A one-word follow-up counts when it carries a cue
(«Почему?», «Объясните.»). Mode "all" passes every utterance on to the answering LLM, whose thesis
prompt answers nothing to small talk (the filter itself asks no LLM). Commentary mode also answers statements.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from cluelypro.prompter.matcher import morph

FilterMode = Literal["heuristic", "all"]

INTERROGATIVE_LEMMAS = {
    "что",
    "кто",
    "какой",
    "каков",
    "каковой",
    "чей",
    "почему",
    "зачем",
    "отчего",
    "когда",
    "где",
    "куда",
    "откуда",
    "сколько",
    "насколько",
    "как",
    "разве",
    "неужели",
}
ANYWHERE_INTERROGATIVES = {"почему", "зачем", "отчего", "сколько", "насколько", "откуда"}
"""Never conjunctions, so they ask wherever they stand: ASR often drops the comma before them."""
ENGLISH_INTERROGATIVES = {
    "what",
    "why",
    "how",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "which",
    "do",
    "does",
    "did",
    "is",
    "are",
    "was",
    "were",
    "can",
    "could",
    "would",
    "should",
    "will",
}
ANSWER_VERBS = {
    "рассказать",
    "рассказывать",
    "объяснить",
    "объяснять",
    "назвать",
    "называть",
    "перечислить",
    "перечислять",
    "описать",
    "описывать",
    "доказать",
    "доказывать",
    "сравнить",
    "сравнивать",
    "привести",
    "приводить",
    "пояснить",
    "пояснять",
    "охарактеризовать",
    "характеризовать",
    "сформулировать",
    "формулировать",
    "раскрыть",
    "раскрывать",
    "обосновать",
    "обосновывать",
    "определить",
    "определять",
    "вывести",
    "выводить",
    "найти",
    "находить",
    "вычислить",
    "вычислять",
    "посчитать",
    "решить",
    "решать",
    "сказать",
    "разобрать",
    "разбирать",
    "проанализировать",
    "анализировать",
    "изложить",
    "излагать",
    "прокомментировать",
    "комментировать",
    "уточнить",
    "вспомнить",
    "рассмотреть",
    "рассматривать",
}
GIVE_OBJECTS = {
    "определение",
    "характеристика",
    "ответ",
    "оценка",
    "пример",
    "объяснение",
    "описание",
    "пояснение",
    "формулировка",
    "доказательство",
}
MODAL_LEMMAS = {"мочь", "смочь", "хотеть", "просить", "попросить"}
LETS = {"давайте", "давай"}
LETS_VERBS = {"поговорить", "обсудить", "обсуждать", "разобраться"}
ENGLISH_ANSWER_VERBS = {
    "tell",
    "explain",
    "describe",
    "name",
    "list",
    "compare",
    "define",
    "give",
    "walk",
    "elaborate",
    "outline",
    "prove",
    "summarize",
    "summarise",
    "clarify",
}
CLAUSE_LEAD_INS = {
    "а",
    "и",
    "но",
    "ну",
    "так",
    "вот",
    "тогда",
    "теперь",
    "хорошо",
    "итак",
    "ладно",
    "скажите",
    "скажи",
    "пожалуйста",
    "еще",
    "интересно",
    "значит",
    "кстати",
    "хм",
    "and",
    "so",
    "well",
    "ok",
    "okay",
    "now",
    "then",
    "but",
    "please",
    "you",
}
PREPOSITIONS = {"in", "on", "of", "for", "about", "at", "from", "to", "with", "by"}
SMALL_TALK_PHRASES = [
    "добрый день",
    "добрый вечер",
    "доброе утро",
    "до свидания",
    "всего доброго",
    "следующий вопрос",
    "следующий билет",
    "вы готовы",
    "все готовы",
    "можно начинать",
    "давайте начнем",
    "давайте начинать",
    "как дела",
    "как ваши дела",
    "как у вас дела",
    "меня слышно",
    "вы меня слышите",
    "одну минуту",
    "одну секунду",
    "одну минуточку",
    "берите билет",
    "возьмите билет",
    "тяните билет",
    "время пошло",
    "время вышло",
    "можете готовиться",
    "давайте дальше",
    "идем дальше",
    "к следующему вопросу",
    "good morning",
    "good afternoon",
    "thank you",
    "how are you",
    "next question",
    "are you ready",
    "one moment",
    "nice to meet you",
    "sit down",
]
SMALL_TALK_WORDS = {
    "здравствуйте",
    "здравствуй",
    "привет",
    "приветствую",
    "спасибо",
    "благодарю",
    "пожалуйста",
    "присаживайтесь",
    "садитесь",
    "проходите",
    "подождите",
    "подожди",
    "погодите",
    "минутку",
    "минуточку",
    "секундочку",
    "секунду",
    "момент",
    "так",
    "хорошо",
    "ладно",
    "итак",
    "ну",
    "вот",
    "отлично",
    "понятно",
    "ясно",
    "угу",
    "ага",
    "да",
    "нет",
    "окей",
    "ок",
    "что",
    "а",
    "и",
    "дальше",
    "продолжаем",
    "продолжайте",
    "начинаем",
    "переходим",
    "молодец",
    "верно",
    "правильно",
    "замечательно",
    "прекрасно",
    "извините",
    "простите",
    "готовьтесь",
    "готовы",
    "готов",
    "начнем",
    "начинайте",
    "давайте",
    "перейдем",
    "hello",
    "hi",
    "thanks",
    "ok",
    "okay",
    "yes",
    "no",
    "well",
    "so",
    "right",
    "fine",
    "great",
    "sure",
    "please",
    "wait",
    "sorry",
    "pardon",
    "what",
    "good",
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-zа-я0-9]+", text.lower().replace("ё", "е"))


def _clauses(text: str) -> list[list[str]]:
    parts = re.split(r"[.!?;:,—–()«»\"]+|\s-\s", text)
    return [words for part in parts if (words := _words(part))]


@lru_cache(maxsize=4096)
def _parses(word: str) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple((p.normal_form.replace("ё", "е"), frozenset(p.tag.grammemes)) for p in morph().parse(word))


def _lemmas(word: str) -> set[str]:
    return {lemma for lemma, _ in _parses(word)}


def _is_preposition(word: str) -> bool:
    return word in PREPOSITIONS or any("PREP" in tags for _, tags in _parses(word))


def _clause_opening(clause: list[str]) -> list[str]:
    start = 0
    while start < len(clause) and (clause[start] in CLAUSE_LEAD_INS or _is_preposition(clause[start])):
        start += 1
    return clause[start:]


def _interrogative(text: str) -> str | None:
    for clause in _clauses(text):
        opening = _clause_opening(clause)
        if opening and (opening[0] in ENGLISH_INTERROGATIVES or _lemmas(opening[0]) & INTERROGATIVE_LEMMAS):
            return opening[0]
        if "ли" in clause[1:]:
            return "ли"
        anywhere = [word for word in clause if _lemmas(word) & ANYWHERE_INTERROGATIVES]
        if anywhere:
            return anywhere[0]
    return None


def _answer_verb(words: list[str], position: int) -> bool:
    word = words[position]
    lets = position > 0 and words[position - 1] in LETS
    for lemma, tags in _parses(word):
        if lets and lemma in LETS_VERBS | ANSWER_VERBS and {"1per", "plur"} <= tags:
            return True
        if lemma not in ANSWER_VERBS and lemma != "дать":
            continue
        asks = "impr" in tags or "2per" in tags
        asks = asks or ("INFN" in tags and any(_lemmas(w) & MODAL_LEMMAS for w in words[:position]))
        if lemma == "дать":
            asks = asks and any(_lemmas(w) & GIVE_OBJECTS for w in words[position + 1 : position + 4])
        if asks:
            return True
    return False


def _imperative(text: str) -> str | None:
    for clause in _clauses(text):
        opening = _clause_opening(clause)
        if opening and opening[0] in ENGLISH_ANSWER_VERBS:
            return opening[0]
        for position in range(len(clause)):
            if _answer_verb(clause, position):
                return clause[position]
    return None


def _is_command(words: list[str]) -> bool:
    return any("impr" in tags for word in words for _, tags in _parses(word))


def _is_small_talk(text: str) -> bool:
    normalised = " " + " ".join(_words(text)) + " "
    for phrase in SMALL_TALK_PHRASES:
        normalised = normalised.replace(f" {phrase} ", " ")
    return all(word in SMALL_TALK_WORDS for word in normalised.split())


class QuestionFilter:
    def __init__(self, mode: FilterMode = "heuristic", commentary: bool = False, min_words: int = 2) -> None:
        if mode not in ("heuristic", "all"):
            raise ValueError(f"unknown question filter mode: {mode!r}")
        self.mode = mode
        self.commentary = commentary
        self.min_words = min_words

    def decide(self, text: str) -> tuple[bool, str]:
        """(accepted, reason) for one utterance of the other speaker."""
        words = _words(text)
        if not words:
            return False, "empty"
        if self.mode == "all":
            return True, "llm decides"  # the answering LLM: its prompt says nothing to small talk
        if _is_small_talk(text):
            return False, "small talk"
        if "?" in text:
            return True, "question mark"
        if word := _interrogative(text):
            return True, f"interrogative: {word}"
        if word := _imperative(text):
            return True, f"imperative: {word}"
        if len(words) < self.min_words:
            return False, "too short"
        if _is_command(words):
            return False, "command"
        if self.commentary:
            return True, "commentary"
        return False, "statement"
