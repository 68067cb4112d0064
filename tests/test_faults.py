"""Never stuck, never silent (issue 9): the pipeline's own logic under faults, in milliseconds.

The real Pipeline, Answer, fallback chains, fast clock and track earpiece run around scripted
engines (tests/harness); every assertion is on the event timeline or on what the engines were
asked. Test names say which finding of the issue they cover (F1 … F11); each failed on the old
main (3d4e816) — by hanging, by losing a question, or by doing work nobody needed.
"""

from __future__ import annotations

import pytest

from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.pipeline import answer as answer_module
from harness.engines import Fault, ScriptedEmbedder, ScriptedLLM, ScriptedRecognizer, ScriptedSynthesizer
from harness.run import Harness, HarnessHung, Quiet, Say, Sleep, WaitFor, event

PHOTOSYNTHESIS = "Что такое фотосинтез?"
INFLATION = "Что такое инфляция?"
SMALL_TALK_QUESTION = "Как у вас дела сегодня?"
OWN = "А что такое хлорофилл, я забыла?"  # the user thinking aloud, worded as a question
LINES = {1: PHOTOSYNTHESIS, 2: INFLATION, 3: SMALL_TALK_QUESTION, 4: OWN}

ANSWERS = {
    "фотосинтез": "1. Фотосинтез — процесс образования сахаров из света в листьях.\n"
    "2. Он идёт в хлоропластах с участием хлорофилла.\n"
    "3. Побочный продукт фотосинтеза — кислород.",
    "инфляция": "1. Инфляция — устойчивый рост общего уровня цен.\n2. Её измеряют индексом потребительских цен.",
    "дела": "0",
    ScriptedLLM.DEEPENING: (
        "1. Световая фаза идёт на мембранах тилакоидов.\n2. Темновая фаза называется циклом Кальвина."
    ),
}


def answering_llm(**kwargs) -> ScriptedLLM:
    return ScriptedLLM(dict(ANSWERS), **kwargs)


def answered(harness: Harness, q: int) -> bool:
    return bool(harness.of("playback_start", q=q))


def answered_line(harness: Harness, text: str) -> bool:
    """The utterance that said `text` was accepted as a question and its answer was spoken."""
    utts = {e["utt"] for e in harness.of("asr", text=text)}
    qs = {e["q"] for e in harness.of("question", accepted=True) if e["utt"] in utts}
    return any(answered(harness, q) for q in qs)


def errors(harness: Harness, stage: str) -> list[dict]:
    return harness.of("error", stage=stage)


# --- F1: a hang on what the LLM writes -----------------------------------------------------------


def test_f1_a_fault_before_synthesis_never_leaves_a_thesis_waiting_forever(monkeypatch, capsys) -> None:
    """Old main: normalize_for_tts raised before the `try` whose `finally` finishes the thesis's
    audio, so playback waited for it forever and the run never ended."""

    def broken(text: str, language: str = "ru") -> str:
        if "хлоропластах" in text:
            raise ValueError("could not convert string to float: '0,00005'")
        return text

    monkeypatch.setattr(answer_module, "normalize_for_tts", broken)
    harness = Harness(LINES, llms=[answering_llm()])
    harness.run(Say(1), WaitFor(event("playback_end", q=1, index=3), "thesis 3 spoken"), Say(2))
    assert errors(harness, "tts"), "the failure is an error event"
    assert harness.of("playback_start", q=1, index=3), "the theses after the broken one are spoken"
    assert answered(harness, 2), "the next question is answered"
    assert "tts error" in capsys.readouterr().out


def test_f1_an_llm_that_fails_after_early_speech_still_closes_its_round(capsys) -> None:
    """Old main: `_answer` raised past `round_done()`, so the answer started from thesis 1's
    first words waited for the rest of its round forever."""
    llm = answering_llm(faults={"фотосинтез": Fault(raises_after=6)})
    harness = Harness(LINES, llms=[llm])
    harness.run(Say(2), WaitFor(event("playback_end", q=1), "answer 1"), Say(1))  # the run must end
    assert harness.of("playback_start", q=2, index=1), "the head of thesis 1 was spoken"
    assert errors(harness, "llm") and "every llm engine failed" in errors(harness, "llm")[0]["message"]
    assert harness.of("thesis", q=2, index=1), "the thesis started early is completed from what was written"
    assert "llm error" in capsys.readouterr().out


def test_f1_numbers_no_voice_can_read_are_spoken_anyway() -> None:
    """Old main: «0,00005» (ValueError) and a 35-digit integer (KeyError) in a thesis hung it."""
    huge = "1" * 35
    llm = ScriptedLLM(
        {
            "фотосинтез": "1. Лист поглощает 0,00005 долей света и 1e10 фотонов.\n"
            f"2. Всего {huge} молекул хлорофилла в клетке.\n"
            "3. Побочный продукт фотосинтеза — кислород."
        }
    )
    harness = Harness(LINES, llms=[llm])
    harness.run(Say(1), WaitFor(event("playback_end", q=1, index=3), "every thesis spoken"))
    assert [e["index"] for e in harness.of("tts_first_audio", q=1)] == [1, 2, 3]
    assert not harness.of("error")


def test_f1_a_huge_number_in_a_thesis_does_not_cut_the_stream() -> None:
    """Old main: the thesis matcher's num2words raised on 35 digits, killing the LLM stream
    (`llm error: 11`), and the theses after it were lost."""
    huge = "9" * 35
    llm = ScriptedLLM(
        {
            "фотосинтез": f"1. В листе {huge} хлоропластов по оценке учёных.\n"
            "2. Он идёт в хлоропластах с участием хлорофилла.\n"
            "3. Побочный продукт фотосинтеза — кислород."
        }
    )
    harness = Harness(LINES, llms=[llm])
    harness.run(Say(1), WaitFor(event("thesis", q=1, index=3), "thesis 3"))
    assert not harness.of("error")


# --- F2: no task dies silently -------------------------------------------------------------------


class FailingEarpiece(TrackEarpiece):
    """The earpiece's device fails on its first chunks (unplugged), then works again."""

    def __init__(self, clock, failures: int = 1) -> None:
        super().__init__(clock, 0, keep=False)
        self.failures = failures

    async def play(self, chunk, at):
        if self.failures:
            self.failures -= 1
            raise OSError("PortAudio: device unavailable")
        return await super().play(chunk, at)


def test_f2_a_failing_earpiece_is_reported_and_the_next_question_is_answered(capsys) -> None:
    """Old main: the answer's speaker task died with its exception unseen: no event, no line."""
    harness = Harness(LINES, llms=[answering_llm()], earpiece=FailingEarpiece)
    harness.run(Say(1), WaitFor(event("error", stage="playback"), "the failure reported"), Say(2))
    (error,) = errors(harness, "playback")
    assert "device unavailable" in error["message"] and error["q"] == 1
    assert "playback error" in capsys.readouterr().out
    assert answered(harness, 2)


def test_f2_a_failing_deepening_is_reported() -> None:
    llm = answering_llm(faults={ScriptedLLM.DEEPENING: Fault(raises=ConnectionError("deepening refused"))})
    harness = Harness(LINES, llms=[llm])
    harness.run(Say(1), WaitFor(event("error", stage="llm"), "the deepening failure reported"))
    assert "deepening refused" in errors(harness, "llm")[0]["message"]


def test_f2_no_task_exception_is_ever_left_unretrieved() -> None:
    """A storm of faults under asyncio's debug mode: every task's failure has an owner. Old main:
    a dropped speculation whose ASR failed left "Task exception was never retrieved"."""
    asr = ScriptedRecognizer(LINES, faults={INFLATION: Fault(raises=RuntimeError("asr down"))})
    llm = answering_llm(faults={ScriptedLLM.DEEPENING: Fault(raises=ConnectionError("deepening refused"))})
    tts = ScriptedSynthesizer(faults={"кислород": Fault(raises=OSError("tts down"))})
    harness = Harness(LINES, recognizers=[asr], llms=[llm], synthesizers=[tts], earpiece=FailingEarpiece)
    harness.run(
        Say(2, 1.2, pause_at_s=0.6, quiet_after_s=0),
        Say(2, 1.2, pause_at_s=0.6),
        Say(1),
        Quiet(2),
        Say(2, pause_at_s=0.5),
    )
    assert harness.of("error"), "faults happened"
    assert not harness.asyncio_errors, harness.asyncio_errors


# --- F4: own speech does no costly work; a dropped speculation stops its work -------------------


def test_f4_own_speech_never_reaches_the_llm_nor_the_asr() -> None:
    """Old main: speculative ASR and LLM ran on every pause before the speaker gate: the user's
    own speech started an LLM answer (and, with cloud engines, went to the provider)."""
    harness = Harness(LINES, llms=[answering_llm()], own={1})
    harness.run(Say(1, 1.5, pause_at_s=0.7), Quiet(0.6), Say(1))
    assert [e["role"] for e in harness.of("speaker")] == ["own", "own"]
    assert harness.recognizer.calls == [] and harness.llm.calls == []
    assert not harness.of("question")


def test_f4_until_said_transcribes_own_speech_but_never_asks_the_llm() -> None:
    harness = Harness(LINES, llms=[answering_llm()], own={4}, advance_policy="until-said")
    harness.run(Say(4, 1.5, pause_at_s=0.7), Quiet(0.6), Say(4))
    assert OWN in harness.recognizer.calls
    assert harness.llm.calls == []


def test_f4_a_dropped_speculation_cancels_its_asr_and_llm() -> None:
    """Old main: a speculation dropped because the speaker went on kept its ASR call (stale
    transcriptions queued behind the lock) and its LLM ran on until cancelled late."""
    slow_asr = ScriptedRecognizer(LINES, faults={PHOTOSYNTHESIS: Fault(delay_s=0.3)})
    slow_llm = answering_llm(token_s=0.05)
    harness = Harness(LINES, recognizers=[slow_asr], llms=[slow_llm])
    pauses = [Say(1, 0.6, quiet_after_s=0), Quiet(0.15)] * 8  # eight pauses long enough to speculate on, then the end
    harness.run(*pauses, Say(1, 0.6), WaitFor(event("thesis", q=1), "the answer"))
    # the first speculation's call was already running (a local call is not interrupted), the last is kept
    assert len(slow_asr.calls) <= 2, f"stale speculative ASR calls ran: {len(slow_asr.calls)}"
    assert len(harness.of("question")) == 1


def test_f4_a_dropped_speculative_answer_stops_generating() -> None:
    llm = ScriptedLLM({"фотосинтез": "1. " + "очень " * 200 + "длинный тезис."}, token_s=0.01)
    harness = Harness(LINES, llms=[llm])
    harness.run(
        Say(1, 0.6, quiet_after_s=0.2),
        WaitFor(lambda e: llm.outputs > 3, "the speculative answer started", 2),
        Say(2, 0.8),
    )
    assert llm.closed_early >= 1, "the dropped speculation's generation was stopped"


# --- F5: a failing provider is rested --------------------------------------------------------------


FOUR_THESES = (
    "1. Инфляция — устойчивый рост общего уровня цен.\n2. Её измеряют индексом потребительских цен.\n"
    "3. Умеренная инфляция сопровождает рост экономики.\n4. Гиперинфляция разрушает сбережения граждан."
)


def test_f5_a_hanging_tts_engine_is_skipped_after_its_first_miss() -> None:
    """Old main: one answer logged a `provider_skipped` for the hung engine per thesis, and every
    thesis paid the whole first-audio budget."""
    hung = ScriptedSynthesizer("hung-cloud", faults={"": Fault(hang=True)}, remote=True)
    harness = Harness(
        LINES,
        llms=[ScriptedLLM({"инфляция": FOUR_THESES}, token_s=0.03)],
        synthesizers=[hung, ScriptedSynthesizer("embedded")],
        early_speech=False,
    )
    harness.run(Say(2), WaitFor(event("playback_end", q=1, index=4), "every thesis spoken"))
    skips = harness.of("provider_skipped", stage="tts", provider="hung-cloud")
    assert [s["reason"] for s in skips].count("no output within 0.3 s") == 1, skips
    assert [s["reason"] for s in skips].count("cooling down") <= 1
    assert len(hung.calls) < 4, "later theses never waited for the resting engine"
    assert {e["engine"] for e in harness.of("tts_first_audio")} == {"embedded"}


def test_f5_a_rested_engine_is_readmitted_after_its_cool_down() -> None:
    flaky = ScriptedSynthesizer("flaky-cloud", faults={"Фотосинтез": Fault(raises=ConnectionError("503"))}, remote=True)
    harness = Harness(
        LINES,
        llms=[answering_llm()],
        synthesizers=[flaky, ScriptedSynthesizer("embedded")],
        provider_cooldown_s=0.2,
        deepening_max_depth=0,
        thesis_repeats=1,
    )
    harness.run(Say(1), WaitFor(event("playback_end", q=1, index=3), "answer 1"), Sleep(0.4), Say(2))
    assert any("Инфляция" in call for call in flaky.calls), "re-admitted after the cool-down"
    assert "flaky-cloud" in {e["engine"] for e in harness.of("tts_first_audio", q=2)}


# --- F6: deepening is cut by a newer question, not ended -----------------------------------------


def test_f6_deepening_cut_by_a_question_with_no_answer_resumes() -> None:
    """Old main: the cut deepening round counted as empty, so the old answer never deepened
    again even though the newer question produced no thesis."""
    llm = ScriptedLLM(
        {
            "фотосинтез": "1. Фотосинтез — процесс образования сахаров из света в листьях.",
            "дела": "0",
            ScriptedLLM.DEEPENING: ANSWERS[ScriptedLLM.DEEPENING],
        },
        token_s=0.02,
    )
    harness = Harness(LINES, llms=[llm], deepening_max_depth=1)
    harness.run(
        Say(1),
        WaitFor(lambda e: any(ScriptedLLM.DEEPENING in c for c in llm.calls), "deepening started"),
        Say(3),
        WaitFor(event("thesis", q=1, depth=1), "the deepening came back"),
    )
    assert harness.of("question", accepted=True, utt=2), "the small-talk question was accepted and got nothing"
    assert not harness.of("interrupted")


# --- F7: the last engine of a chain has a watchdog -----------------------------------------------


def test_f7_a_hung_last_llm_is_dropped_and_the_next_question_answered(capsys) -> None:
    llm = answering_llm(faults={"фотосинтез": Fault(hang=True)})
    harness = Harness(LINES, llms=[llm], speculative_llm=False)
    harness.when(event("error", stage="llm"), llm.hang.release)
    harness.run(Say(1), WaitFor(event("error", stage="llm"), "the watchdog", 5), Say(2))
    assert "hung" in errors(harness, "llm")[0]["message"]
    assert answered(harness, 2)
    assert "llm error" in capsys.readouterr().out


def test_f7_a_hung_last_asr_is_dropped_and_the_next_utterance_heard() -> None:
    asr = ScriptedRecognizer(LINES, faults={PHOTOSYNTHESIS: Fault(hang=True)})
    harness = Harness(LINES, recognizers=[asr], llms=[answering_llm()])
    harness.when(event("error", stage="asr"), asr.hang.release)
    harness.run(Say(1), WaitFor(event("error", stage="asr"), "the watchdog", 5), Say(2))
    assert not answered_line(harness, PHOTOSYNTHESIS) and answered_line(harness, INFLATION)


def test_f7_a_hung_last_tts_is_dropped_and_the_next_thesis_spoken() -> None:
    tts = ScriptedSynthesizer(faults={"хлоропластах": Fault(hang=True)})
    harness = Harness(LINES, llms=[answering_llm()], synthesizers=[tts], early_speech=False)
    harness.when(event("error", stage="tts"), tts.hang.release)
    harness.run(Say(1), WaitFor(event("playback_start", q=1, index=3), "thesis 3 spoken", 5))
    assert errors(harness, "tts") and "hung" in errors(harness, "tts")[0]["message"]


# --- F9: bounded histories -------------------------------------------------------------------------


def test_f9_the_other_speakers_history_keeps_only_the_context_window() -> None:
    statements = {n: f"Сегодня хорошая погода номер {n}." for n in range(10, 40)}
    harness = Harness(statements, context_window_s=5)
    harness.run(*[step for n in statements for step in (Say(n), Quiet(0.7))])
    heard = harness.pipeline._heard
    assert len(harness.of("asr")) == 30 and 0 < len(heard) <= 4, len(heard)


def test_f9_only_speech_within_the_context_window_before_a_question_is_its_context() -> None:
    """Old main measured the window back from the last thing heard, not from the question: a
    question asked minutes after another got the old one as context (and the embedded model,
    reading «(Ранее экзаменатор сказал: Какое сегодня число?)», answered «0»)."""
    harness = Harness(LINES, llms=[answering_llm()], context_window_s=30)
    harness.run(Say(1), Quiet(5), Say(3), Quiet(120), Say(2), WaitFor(event("thesis", q=3), "answer 3"))
    asked = [prompt for prompt in harness.llm.prompts if ScriptedLLM.DEEPENING not in prompt]
    by_question = {prompt.splitlines()[-1]: prompt for prompt in asked}  # the question comes after its context
    assert PHOTOSYNTHESIS in by_question[SMALL_TALK_QUESTION], "5 s before: context"
    assert "Ранее" not in by_question[INFLATION], "two minutes before: not context"


# --- F11: what the LLM returns -------------------------------------------------------------------


def test_f11_an_empty_llm_stream_hands_over_to_the_next_engine() -> None:
    empty = ScriptedLLM({}, name="empty-cloud", faults={"": Fault(empty=True)}, remote=True)
    harness = Harness(LINES, llms=[empty, answering_llm()])
    harness.run(Say(1), WaitFor(event("thesis", q=1, index=2), "theses"))
    (skip,) = harness.of("provider_skipped", stage="llm")
    assert skip["provider"] == "empty-cloud" and "without any output" in skip["reason"]


def test_f11_an_empty_stream_from_the_last_llm_is_an_error() -> None:
    harness = Harness(LINES, llms=[ScriptedLLM({}, faults={"": Fault(empty=True)})])
    harness.run(Say(1), WaitFor(event("error", stage="llm"), "the error"))


def test_f11_thesis_text_that_looks_like_markup_is_printed_and_spoken(capsys) -> None:
    # A thesis can no longer hold rich markup ("[/INST]" is an aside the post-filter drops), but a
    # transcript can: it is printed as heard, and the question is still answered.
    llm = ScriptedLLM({"фотосинтез": "1. Фотосинтез идёт в листьях растений."})
    harness = Harness({1: "[/INST] [bold]Что такое фотосинтез?[/bold]"}, llms=[llm])
    harness.run(Say(1), WaitFor(event("playback_end", q=1, index=1), "thesis spoken"))
    assert "[/INST] [bold]Что такое фотосинтез?[/bold]" in capsys.readouterr().out


# --- the pipeline's own paths ----------------------------------------------------------------------


def test_a_kept_speculation_answers_from_the_pause() -> None:
    harness = Harness(LINES, llms=[answering_llm()])
    harness.run(Say(1), WaitFor(event("playback_start", q=1), "answer"))
    asked = [call for call in harness.llm.calls if ScriptedLLM.DEEPENING not in call]
    assert len(asked) == 1, "the answer started on the pause was adopted, not asked again"


def test_early_speech_speaks_thesis_1_before_it_is_complete() -> None:
    harness = Harness(LINES, llms=[answering_llm(token_s=0.02)])
    harness.run(Say(1), WaitFor(event("thesis", q=1, index=1), "thesis 1"))
    assert harness.of("playback_start", q=1, index=1)[0]["t"] < harness.of("thesis", q=1, index=1)[0]["t"]


def test_an_answer_stops_at_five_theses_and_its_generation_is_stopped() -> None:
    facts = [
        "Фотосинтез идёт в хлоропластах листьев.",
        "Хлорофилл поглощает красный и синий свет.",
        "Световая фаза расщепляет воду на мембранах.",
        "Цикл Кальвина связывает углекислый газ.",
        "Побочный продукт процесса — кислород атмосферы.",
        "Растения запасают глюкозу в виде крахмала.",
        "Скорость процесса зависит от температуры среды.",
    ]
    listing = "".join(f"{n}. {fact}\n" for n, fact in enumerate(facts, 1))
    llm = ScriptedLLM({"фотосинтез": listing}, token_s=0.005)
    harness = Harness(LINES, llms=[llm])
    harness.run(Say(1), WaitFor(event("playback_end", q=1, index=5), "thesis 5 spoken"), Sleep(0.5))
    assert [e["index"] for e in harness.of("thesis", q=1, depth=0)] == [1, 2, 3, 4, 5]
    assert llm.closed_early >= 1, "the rest of the list was not generated"


def test_a_mid_answer_hand_over_restarts_on_the_next_engine_without_repeats() -> None:
    cut = ScriptedLLM(dict(ANSWERS), name="cut-cloud", faults={"фотосинтез": Fault(raises_after=20)}, remote=True)
    harness = Harness(LINES, llms=[cut, answering_llm()])
    harness.run(Say(1), WaitFor(event("thesis", q=1, index=3), "all theses"))
    skip = harness.of("provider_skipped", stage="llm")[0]
    assert skip["after_output"] is True and skip["provider"] == "cut-cloud"
    texts = [e["text"] for e in harness.of("thesis", q=1, depth=0)]
    assert len(texts) == len(set(texts)) == 3


def test_a_new_question_takes_over_and_nothing_of_the_old_one_follows() -> None:
    harness = Harness(LINES, llms=[answering_llm(token_s=0.01)], deepening_max_depth=3)
    harness.run(
        Say(1),
        WaitFor(event("playback_start", q=1, index=2), "answer 1 under way"),
        Say(2),
        WaitFor(event("playback_start", q=2), "answer 2"),
    )
    (interrupted,) = harness.of("interrupted")
    assert (interrupted["old_q"], interrupted["new_q"]) == (1, 2)
    after = [e for e in harness.events[harness.events.index(interrupted) + 1 :] if e["q"] == 1]
    assert all(e["event"] == "playback_end" for e in after), after


def test_an_accepted_question_with_an_empty_answer_does_not_interrupt() -> None:
    harness = Harness(LINES, llms=[answering_llm(token_s=0.01)], thesis_repeats=3)
    harness.run(
        Say(1),
        WaitFor(event("playback_start", q=1, index=1), "answer 1"),
        Say(3),
        WaitFor(event("question", utt=2), "question 2"),
        Quiet(0.5),
    )
    assert harness.of("question", utt=2, accepted=True)
    assert not harness.of("interrupted") and not harness.of("thesis", q=2)
    question_2 = harness.of("question", utt=2)[0]
    assert [e for e in harness.of("playback_start", q=1) if e["t"] >= question_2["t"]], "answer 1 goes on"


STAGE_FAULTS = {
    "vad": lambda h: setattr(h.detector, "fail_on", 1),
    "speaker": lambda h: setattr(h.embedder, "fault", Fault(raises=RuntimeError("embedder crashed"))),
    "asr": lambda h: h.recognizer.faults.update({PHOTOSYNTHESIS: Fault(raises=RuntimeError("asr crashed"))}),
    "llm": lambda h: h.llm.faults.update({"фотосинтез": Fault(raises=RuntimeError("llm crashed"))}),
    "tts": lambda h: h.synthesizer.faults.update({"Фотосинтез": Fault(raises=RuntimeError("tts crashed"))}),
}


@pytest.mark.parametrize("stage", [*STAGE_FAULTS, "playback"])
def test_an_exception_at_any_stage_is_reported_and_the_next_question_answered(stage: str, capsys) -> None:
    earpiece = FailingEarpiece if stage == "playback" else None
    harness = Harness(LINES, llms=[answering_llm()], embedder=ScriptedEmbedder(), earpiece=earpiece)
    if stage in STAGE_FAULTS:
        STAGE_FAULTS[stage](harness)
    harness.run(Say(1), WaitFor(event("error", stage=stage), f"the {stage} error"), Quiet(1.0), Say(2))
    assert errors(harness, stage)
    assert f"{stage} error" in capsys.readouterr().out
    assert answered_line(harness, INFLATION)


def test_a_run_that_cannot_end_fails_as_hung_instead_of_blocking_the_suite() -> None:
    harness = Harness(LINES, llms=[answering_llm()])
    with pytest.raises(HarnessHung):
        harness.run(Say(1), WaitFor(event("interrupted"), "an interruption that never comes", 0.5))


def test_f9_the_timeline_keeps_a_window_while_observers_see_every_event() -> None:
    """Old main kept every event of the run in memory (rescanned for the summary at exit)."""
    from cluelypro.metrics.events import Asr, PlaybackStart, Question, SpeechEnd
    from cluelypro.metrics.summary import ChainCollector
    from cluelypro.metrics.timeline import Timeline

    timeline, seen, chains = Timeline(keep=50), [], ChainCollector(keep=10)
    timeline.subscribe(seen.append)
    timeline.subscribe(chains)
    for utt in range(1, 501):
        timeline.emit(SpeechEnd(1.0), float(utt), utt=utt)
        timeline.emit(Asr(f"вопрос {utt}?", "scripted", 1), float(utt), utt=utt)
        timeline.emit(Question(True, "question mark"), float(utt), utt=utt, q=utt)
        timeline.emit(PlaybackStart(1), utt + 1.0, utt=utt, q=utt)
    assert len(timeline.events) == 50 and len(seen) == 2000
    assert [chain.q for chain in chains.chains] == list(range(491, 501)), "the last chains, in bounded memory"
    assert all(chain.voice_to_voice == 1.0 and chain.text.startswith("вопрос") for chain in chains.chains)
