"""The thesis LLM: model resolution (fast) and the real embedded model (slow)."""

import logging
import re
import threading
import time
from pathlib import Path

import pytest
from num2words import num2words

from cluelypro.llm import models
from cluelypro.llm.llama import OwnThread
from cluelypro.llm.models import EmbeddedModel, resolve_gguf
from cluelypro.llm.prompts import deepening_messages, thesis_messages
from cluelypro.llm.thesis_parser import ThesisStreamParser
from cluelypro.packaged import ModelUnavailableError
from cluelypro.prompter.samples import EXAM_QUESTIONS

SMALL_TALK = ["Добрый день, присаживайтесь.", "Подождите минутку, я найду ваш билет."]


# --- resolving the model file ----------------------------------------------------------------


def test_sha_mismatch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    parts[0].write_bytes(b"GGUF" + b"\0" * 60)
    parts[1].write_bytes(b"tampered")
    monkeypatch.setenv("CLUELYPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(EmbeddedModel, "part_paths", lambda self: parts)
    with pytest.raises(ModelUnavailableError, match="SHA-256 of the joined parts is .* expected"):
        resolve_gguf("qwen2.5-coder-0.5b")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written left behind


def test_missing_part_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLUELYPRO_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(models.EMBEDDED, "tiny", EmbeddedModel("no_such_model_part", 2, "0" * 64))
    with pytest.raises(ModelUnavailableError, match="pip install no-such-model-part1 no-such-model-part2"):
        resolve_gguf("tiny")


def test_paths_must_be_existing_gguf_files(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\3\4 a zip, not a model")
    with pytest.raises(ModelUnavailableError, match="not a GGUF file"):
        resolve_gguf(str(not_gguf))
    with pytest.raises(ModelUnavailableError, match="neither an embedded model"):
        resolve_gguf(str(tmp_path / "missing.gguf"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF\3\0\0\0")
    assert resolve_gguf(str(gguf)) == gguf


def test_every_prompt_shares_one_cacheable_prefix() -> None:
    first = thesis_messages("Что такое инфляция?")
    assert thesis_messages("Что такое ДНК?", context="Поговорим о биологии.")[:-1] == first[:-1]
    assert deepening_messages("Что такое инфляция?", ["Инфляция — рост цен."])[:-1] == first[:-1]


# --- prompts that outgrow the context (issue 9, finding 11) -------------------------------------

PHOTOSYNTHESIS = "Что такое фотосинтез?"
# Eighty long theses already said: far more than the 2048-token context holds.
SAID = [
    f"Тезис {num2words(n, lang='ru', to='ordinal')}: фотосинтез в листьях растений превращает энергию "
    f"света в химическую энергию органических веществ и выделяет кислород."
    for n in range(1, 81)
]


def test_trimming_drops_old_theses_then_examples_never_rules_or_question() -> None:
    from cluelypro.llm.prompts import KEEP_RECENT_THESES, shorter_prompts

    full = deepening_messages(PHOTOSYNTHESIS, SAID[:6])
    shorter = shorter_prompts(full)
    assert [prompt.left_out for prompt in shorter[:4]] == [
        "1 of 6 earlier theses",
        "2 of 6 earlier theses",
        "3 of 6 earlier theses",
        "3 of 6 earlier theses and 1 of 5 worked examples",
    ]
    assert shorter[2].messages[:-1] == full[:-1]  # examples stay while old theses can go
    assert SAID[2] not in shorter[2].messages[-1]["content"]
    assert all(thesis in shorter[2].messages[-1]["content"] for thesis in SAID[6 - KEEP_RECENT_THESES : 6])
    assert shorter[3].messages[:-1] == full[:-3]  # the last example goes first: it keeps the cached prefix
    assert shorter[-1].left_out == "6 of 6 earlier theses and 5 of 5 worked examples"
    for prompt in shorter:
        assert prompt.messages[0] == full[0] and PHOTOSYNTHESIS in prompt.messages[-1]["content"]
    assert [len(prompt.messages) for prompt in shorter] == sorted((len(p.messages) for p in shorter), reverse=True)


def test_a_question_prompt_can_only_lose_its_examples() -> None:
    from cluelypro.llm.prompts import shorter_prompts

    full = thesis_messages(PHOTOSYNTHESIS, context="Поговорим о биологии.")
    shorter = shorter_prompts(full)
    assert [prompt.left_out for prompt in shorter] == [f"{n} of 5 worked examples" for n in range(1, 6)]
    assert shorter[-1].messages == [full[0], full[-1]]


# --- the real model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm():
    from cluelypro.llm.llama import LlamaThesisLLM

    model = LlamaThesisLLM()
    try:
        model.load()
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    model.warm_up()
    return model


def ask(llm, question: str, commentary: bool = False, messages=None) -> tuple[list[str], float, float]:
    parser, theses, pieces = ThesisStreamParser(), [], 0
    start = time.perf_counter()
    first = None
    for piece in llm.stream(messages or thesis_messages(question, commentary=commentary), 180):
        first = first or time.perf_counter()
        pieces += 1
        theses += parser.feed(piece)
    theses += parser.finish()
    end = time.perf_counter()
    ttft = (first or end) - start
    rate = (pieces - 1) / (end - first) if first and pieces > 1 else 0.0
    print(f"\n{question}  ttft={ttft:.2f}s  {rate:.1f} tok/s")
    for thesis in theses:
        print(f"    - {thesis}")
    return theses, ttft, rate


def cyrillic_ratio(text: str) -> float:
    letters = re.findall(r"[^\W\d_]", text.replace("Python", ""))
    return sum("а" <= c.lower() <= "я" or c in "ёЁ" for c in letters) / max(len(letters), 1)


@pytest.mark.slow
@pytest.mark.parametrize("question", EXAM_QUESTIONS)
def test_product_questions_get_russian_theses(llm, question: str) -> None:
    theses, ttft, _ = ask(llm, question)
    assert 1 <= len(theses) <= 5
    for thesis in theses:
        assert 3 <= len(thesis.split()) <= 25, thesis
        assert cyrillic_ratio(thesis) > 0.5, thesis  # mostly Russian


@pytest.mark.slow
@pytest.mark.parametrize("utterance", SMALL_TALK)
def test_small_talk_gets_no_theses(llm, utterance: str) -> None:
    assert ask(llm, utterance)[0] == []


@pytest.mark.slow
def test_prefix_cache_makes_the_next_question_fast(llm) -> None:
    llm._llama.reset()  # forget everything: the next call evaluates the whole prompt
    _, cold, _ = ask(llm, "Что такое инфляция?")
    _, warm, _ = ask(llm, "Что такое фотосинтез?")
    print(f"cold ttft {cold:.2f}s, warm ttft {warm:.2f}s")
    assert warm < cold / 3


def test_engine_calls_run_on_one_thread_whoever_calls() -> None:
    """llama.cpp's OpenMP pools are per calling thread: every call must come from one thread."""
    own = OwnThread("engine")
    produced: list[str] = []

    def tokens():
        for number in range(1000):
            time.sleep(0.005)  # a token takes time to generate
            produced.append(threading.current_thread().name)
            yield number

    def take_three() -> None:
        stream = own.iterate(tokens)
        seen.append([next(stream) for _ in range(3)])
        stream.close()  # returns once the producer has stopped
        stopped_at.append(len(produced))

    seen, stopped_at = [], []
    for _ in range(2):
        caller = threading.Thread(target=take_three)
        caller.start()
        caller.join()
    assert seen == [[0, 1, 2], [0, 1, 2]]
    assert len(set(produced)) == 1 and produced[0].startswith("engine")
    assert stopped_at[-1] == len(produced) < 2000, "nothing is produced after close()"
    assert own.call(lambda: threading.current_thread().name) == produced[0]


@pytest.mark.slow
def test_closing_the_stream_stops_generation(llm) -> None:
    stream = llm.stream(thesis_messages(EXAM_QUESTIONS[0]), 180)
    for _ in range(3):
        next(stream)
    stream.close()  # returns once generation has stopped
    evaluated = llm._llama.n_tokens
    time.sleep(0.3)
    assert llm._llama.n_tokens == evaluated  # nothing is generated in the background
    assert ask(llm, "Что такое инфляция?")[0]  # and the model is usable right away


@pytest.mark.slow
def test_commentary_mode_answers_a_statement_with_facts(llm) -> None:
    statement = "Фотосинтез происходит в хлоропластах растений."
    theses, _, _ = ask(llm, statement, commentary=True)
    assert 1 <= len(theses) <= 5
    assert all(cyrillic_ratio(thesis) > 0.5 for thesis in theses)


@pytest.mark.slow
def test_a_deepening_prompt_beyond_the_context_is_trimmed_logged_and_answered(llm, caplog) -> None:
    messages = deepening_messages(PHOTOSYNTHESIS, SAID)
    with caplog.at_level(logging.WARNING, logger="cluelypro.llm.llama"):
        theses, _, _ = ask(llm, PHOTOSYNTHESIS, messages=messages)
    assert theses, "the model still answers"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and re.search(r"left out \d+ of 80 earlier theses$", warnings[0]), warnings
    sent = llm.fit(messages, 180)
    assert sent[:-1] == messages[:-1] and SAID[-1] in sent[-1]["content"] and SAID[0] not in sent[-1]["content"]


@pytest.mark.slow
def test_a_trimmed_prompt_leaves_room_for_the_answer(llm) -> None:
    """The token count is an upper bound of the real prompt, and not a loose one."""
    sent = llm.fit(deepening_messages(PHOTOSYNTHESIS, SAID), 180)
    completion = llm._thread.call(lambda: llm._llama.create_chat_completion(sent, max_tokens=1))
    prompt_tokens, room = completion["usage"]["prompt_tokens"], llm.context_tokens - 180
    print(f"trimmed prompt: {prompt_tokens} tokens of the {room} the answer leaves")
    assert 0.9 * room < prompt_tokens <= room


@pytest.mark.slow
def test_a_normal_request_is_sent_untouched(llm, caplog) -> None:
    messages = thesis_messages(PHOTOSYNTHESIS)
    assert llm.fit(messages, 180) is messages
    with caplog.at_level(logging.WARNING, logger="cluelypro.llm.llama"):
        assert ask(llm, PHOTOSYNTHESIS)[0]
        assert llm.fit(deepening_messages(PHOTOSYNTHESIS, SAID[:5]), 180)[-1]["content"].count("Тезис") == 5
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
