"""`cluelypro eval`: the text measures (WER, CER, lemmas, facts), the per-thesis violations, the
answer's `cut`, the theses through the pipeline's writer, the CLI's one-line input errors, and —
slow — both commands end to end with the embedded engines.

Slow tests: `eval asr` on the first three shared recordings (../shared/audio/ru, Golos), and
`eval answers` on two questions, one of them asked by an RHVoice examiner's recording."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
from hypothesis import given, settings

from cluelypro.config import Settings
from cluelypro.eval.answers import RecordingLLM, StreamRecord, covered_by, question_entry, summarize, write_answer
from cluelypro.eval.asr import Transcription, score
from cluelypro.eval.asr import summarize as asr_summary
from cluelypro.eval.inputs import LabelledQuestion, LabelledRecording
from cluelypro.eval.text import corpus_errors, errors, lemmas, normalize, phrase_in
from cluelypro.pipeline.fallback import ChainPolicy, EngineChain
from cluelypro.prompter.speakable import MISREAD, REPEATED, TOO_LONG, answer_cut, misread_reason, violations_of
from conftest import RU_AUDIO, assert_one_line_exit_2
from text_strategies import any_text, llm_text

CLI = [sys.executable, "-m", "cluelypro.cli"]
PHOTOSYNTHESIS_FACTS = [["хлорофилл"], ["свет", "солнечный"], ["кислород"], ["углекислый газ", "CO2"]]
PYTHAGORAS_FACTS = [["квадрат гипотенузы"], ["сумма квадратов катетов", "сумма квадратов"], ["прямоугольный"]]


# --- normalisation, WER and CER -------------------------------------------------------------------


def test_normalisation_reads_digits_as_words_and_drops_case_yo_and_punctuation() -> None:
    assert normalize("Любовницы, 2013 — 15-й сезон!") == "любовницы две тысячи тринадцать пятнадцатый сезон"
    assert normalize("Ёлка  зелёная…") == "елка зеленая"
    assert normalize("60 000 тенге?") == "шестьдесят тысяч тенге"


def test_wer_and_cer_on_known_pairs() -> None:
    same = errors("Две тысячи тринадцать, ёлка!", "2013 елка")
    assert (same.word_errors, same.wer, same.cer) == (0, 0.0, 0.0)
    real = errors("заказать яблоки зеленые", "Закасаться яблоки зелёную.")  # whisper-base on golos_02
    assert (real.word_errors, real.reference_words) == (2, 3)
    assert real.wer == pytest.approx(2 / 3)
    assert real.cer == pytest.approx(jiwer.cer("заказать яблоки зеленые", "закасаться яблоки зеленую"))
    assert errors("какая погода в москве", "").wer == 1.0
    assert errors("какая погода", "какая сейчас погода в москве").wer == 1.5  # insertions count


def test_overall_wer_is_corpus_level_not_a_mean_of_files() -> None:
    short = errors("забудь", "забуду")  # 1 error in 1 word
    long = errors("включи ночную лампу в спальне сейчас", "включи ночную лампу в спальне сейчас")
    total = corpus_errors([short, long])
    assert total.wer == pytest.approx(1 / 7)
    assert (short.wer + long.wer) / 2 == pytest.approx(0.5)


@settings(deadline=None, max_examples=150)
@given(any_text)
def test_identical_text_scores_zero(text: str) -> None:
    assert errors(text, text).wer == 0.0 and errors(text, text).cer == 0.0


@settings(deadline=None, max_examples=150)
@given(llm_text.filter(lambda text: bool(normalize(text))))
def test_an_empty_hypothesis_has_every_word_wrong(text: str) -> None:
    assert errors(text, "").wer == 1.0 and errors(text, "").cer == 1.0


@settings(deadline=None, max_examples=150)
@given(llm_text, llm_text)
def test_wer_and_cer_agree_with_jiwer_on_the_normalised_text(reference: str, hypothesis: str) -> None:
    ref, hyp = normalize(reference), normalize(hypothesis)
    if ref and hyp:
        found = errors(reference, hypothesis)
        assert found.wer == pytest.approx(jiwer.wer(ref, hyp))
        assert found.cer == pytest.approx(jiwer.cer(ref, hyp))


# --- lemmas: key terms and facts --------------------------------------------------------------------


def test_a_key_term_is_found_in_any_inflected_form() -> None:
    heard = lemmas("Расскажите про процесс фотосинтеза у растений")
    assert phrase_in("фотосинтез", heard)
    assert phrase_in("растение", heard)
    assert not phrase_in("хлорофилл", heard)
    assert phrase_in("углекислый газ", lemmas("листья поглощают углекислого газа много"))
    assert not phrase_in("углекислый газ", lemmas("листья поглощают газ"))  # every word of the term
    assert not phrase_in("", heard)


def test_key_term_accuracy_over_files() -> None:
    recordings = [
        LabelledRecording("a.wav", "что такое фотосинтез", ("фотосинтез",)),
        LabelledRecording("b.wav", "теорема пифагора", ("теорема пифагора",)),
        LabelledRecording("c.wav", "какая погода"),
    ]
    heard = ["Что такое фотосинтеза?", "теорема пифа гора", "какая погода"]
    scores = [score(r, Transcription(text, "fake", 0.1)) for r, text in zip(recordings, heard, strict=True)]
    summary = asr_summary(scores, [])
    assert summary["key_term_accuracy"] == 0.5
    assert [entry["key_terms_found"] for entry in summary["files"]] == [["фотосинтез"], [], []]
    assert summary["wer"] == pytest.approx(round(3 / 7, 4))  # фотосинтеза: 1; пифа гора: 1 + 1 inserted
    assert asr_summary(scores[2:], [])["key_term_accuracy"] is None


def test_a_fact_is_covered_by_any_of_its_alternatives() -> None:
    theses = lemmas("Растения поглощают CO2 и выделяют кислород. Энергию дают солнечные лучи.")
    assert covered_by(("углекислый газ", "CO2"), theses) == "CO2"
    assert covered_by(("кислород",), theses) == "кислород"
    assert covered_by(("свет", "солнечный"), theses) == "солнечный"
    assert covered_by(("хлорофилл",), theses) is None


def fake_run(theses: list[str], cut: bool = False):
    from cluelypro.eval.answers import AnswerRun

    return AnswerRun(theses, 0.5, "fake", cut)


def test_fact_coverage_over_questions() -> None:
    photosynthesis = LabelledQuestion("Что такое фотосинтез?", tuple(map(tuple, PHOTOSYNTHESIS_FACTS)))
    pythagoras = LabelledQuestion("Теорема Пифагора?", tuple(map(tuple, PYTHAGORAS_FACTS)))
    entries = [
        question_entry(photosynthesis, None, None, fake_run(["Хлорофилл растений поглощает солнечный свет."])),
        question_entry(pythagoras, None, None, fake_run(["Это теорема о треугольниках, доказанная давно."])),
    ]
    assert entries[0]["facts_covered"] == ["хлорофилл", "свет", None, None]
    summary = summarize(entries, [])
    assert summary["fact_coverage"] == pytest.approx(round(2 / 7, 4))
    assert summary["questions_with_a_fact"] == 1
    assert summary["first_thesis_s_p50"] == 0.5


# --- violations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "thesis",
    [
        "Теорема Пифагора: c^2 = a^2 + b^2.",  # from issue 12
        "Фотосинтез идёт в 叶绿体 хлоропластах клеток.",  # a CJK word the TTS drops
        "Вода — это H2O, оксид водорода.",
        "Площадь круга равна π·r², где r — радиус.",
        "Если x ≥ 0, то модуль равен самому числу.",
    ],
)
def test_what_a_russian_voice_would_misread(thesis: str) -> None:
    assert violations_of(thesis) == [MISREAD]
    assert misread_reason(thesis)


@pytest.mark.parametrize(
    "thesis",
    [
        "Первая мировая война началась в 1914 году.",  # digits are read in agreement
        "Вода кипит при 100 °C на уровне моря.",
        "Свет распространяется со скоростью около 300 000 км/с.",
        "Альфа-частица — это ядро атома гелия.",
    ],
)
def test_what_the_normaliser_reads_correctly_is_not_misread(thesis: str) -> None:
    assert misread_reason(thesis) is None


def test_the_reasons_name_what_would_be_misread() -> None:
    reason = misread_reason("c^2 = a^2 + b^2") or ""
    assert "Latin letters a b c" in reason and "formula characters + = ^" in reason
    cjk = misread_reason("Фотосинтез идёт в 叶绿体") or ""
    assert cjk.startswith("no reading for") and all(char in cjk for char in "叶绿体")


def test_a_thesis_said_again_is_repeated() -> None:
    first = "Хлорофилл поглощает солнечный свет."
    assert violations_of("Хлорофилл поглощает солнечный свет!", [first]) == [REPEATED]
    assert violations_of("Хлорофил поглощает солнечный свет.", [first]) == [REPEATED]  # ratio ≥ 95
    assert violations_of("Хлорофилл поглощает свет.", [first]) == [REPEATED]  # nothing the first lacks
    assert violations_of("Солнечный свет поглощает хлорофилл.", [first]) == [REPEATED]  # the same lemmas
    assert violations_of("Кислород выделяется в атмосферу при фотосинтезе.", [first]) == []


def test_a_thesis_over_fifteen_words_is_too_long() -> None:
    twenty = (
        "Фотосинтез — это сложный процесс, в ходе которого зелёные наземные растения преобразуют "
        "энергию солнечного света в энергию химических связей органических веществ."
    )
    assert len(twenty.replace("—", "").split()) == 20
    assert violations_of(twenty) == [TOO_LONG]
    assert violations_of("Фотосинтез — образование органических веществ на свету.") == []


def test_an_answer_lists_each_violation_with_its_thesis() -> None:
    item = LabelledQuestion("Теорема Пифагора?", tuple(map(tuple, PYTHAGORAS_FACTS)))
    theses = ["Квадрат гипотенузы равен сумме квадратов катетов.", "c^2 = a^2 + b^2 для всех", "Квадрат гипотенузы"]
    entry = question_entry(item, None, None, fake_run([*theses, theses[0].upper()], cut=True))
    kinds = [(v["kind"], v["thesis"]) for v in entry["violations"]]
    assert kinds == [(MISREAD, 2), (REPEATED, 3), (REPEATED, 4), ("cut", None)]  # 3 says only a part of 1
    assert summarize([entry], [])["violations"] == {"misread": 1, "repeated": 2, "too_long": 0, "cut": 1}


def test_an_answer_is_cut_when_its_stream_ends_mid_line_or_at_max_tokens() -> None:
    unfinished = "1. Фотосинтез — процесс образования веществ.\n2. Хлорофилл поглощает свет и"
    finished = "1. Фотосинтез — процесс образования веществ.\n2. Хлорофилл поглощает свет."
    assert answer_cut(unfinished, 30, ended_on_its_own=True, full=False, max_tokens=180)
    assert not answer_cut(finished, 30, ended_on_its_own=True, full=False, max_tokens=180)
    assert not answer_cut(finished + "\n", 30, ended_on_its_own=True, full=False, max_tokens=180)
    assert answer_cut(finished, 180, ended_on_its_own=True, full=False, max_tokens=180)
    assert not answer_cut(unfinished, 180, ended_on_its_own=False, full=False, max_tokens=180)  # closed by us
    assert not answer_cut(unfinished, 180, ended_on_its_own=True, full=True, max_tokens=180)  # five theses
    assert not answer_cut("0", 1, ended_on_its_own=True, full=False, max_tokens=180)  # small talk


# --- theses through the pipeline's writer, with scripted engines ------------------------------------


class ScriptedLLM:
    """A ThesisLLM that streams a fixed answer in small pieces."""

    def __init__(self, answer: str, delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s  # per piece: like a model, slower than its reader
        self.name = "scripted"
        self.closed_early = False

    def load(self, progress=None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        pieces = [self.answer[i : i + 4] for i in range(0, len(self.answer), 4)][:max_tokens]
        try:
            for piece in pieces:
                time.sleep(self.delay_s)
                yield piece
        except GeneratorExit:
            self.closed_early = True
            raise


def scripted_answer(answer: str, max_tokens: int = 180, delay_s: float = 0.0):
    records: list[StreamRecord] = []
    llm = ScriptedLLM(answer, delay_s)
    chain = EngineChain("llm", [RecordingLLM(llm, records)], ChainPolicy(None, 30.0, empty_is_failure=True))
    run = asyncio.run(write_answer("Что такое фотосинтез?", chain, records, Settings(llm_max_tokens=max_tokens), 1))
    return run, records, llm


def test_theses_come_through_the_writer_and_a_cut_answer_is_seen() -> None:
    run, records, _ = scripted_answer(
        "1. Фотосинтез — образование органических веществ на свету.\n2. Хлорофилл поглощает солнечный"
    )
    assert run.theses == ["Фотосинтез — образование органических веществ на свету.", "Хлорофилл поглощает солнечный"]
    assert run.cut and run.engine == "scripted" and run.first_thesis_s is not None
    assert records[-1].ended_on_its_own


def test_the_writer_stops_at_five_theses_and_that_is_not_a_cut() -> None:
    lines = "".join(f"{n}. Тезис номер {n} о фотосинтезе растений\n" for n in range(1, 9))
    run, records, llm = scripted_answer(lines, delay_s=0.005)
    assert len(run.theses) == 5 and not run.cut
    assert llm.closed_early and not records[-1].ended_on_its_own


def test_an_answer_stopped_by_max_tokens_is_cut() -> None:
    thesis = "1. Фотосинтез — образование органических веществ из углекислого газа и воды на свету.\n"
    run, records, _ = scripted_answer(thesis, max_tokens=16)
    assert run.cut and len(records[-1].pieces) == 16  # 16 pieces of 4 characters: out of tokens


# --- the CLI: one-line errors for bad input -----------------------------------------------------------


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=600
    )


def test_asr_input_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_exit_2(run_cli("eval", "asr", "missing", cwd=tmp_path), "folder not found", "missing")
    folder = tmp_path / "clips"
    folder.mkdir()
    assert_one_line_exit_2(run_cli("eval", "asr", str(folder), cwd=tmp_path), "no transcripts.tsv in")
    (folder / "transcripts.tsv").write_text("a.wav\tзабудь\nb.wav\n", encoding="utf-8")
    assert_one_line_exit_2(run_cli("eval", "asr", str(folder), cwd=tmp_path), "transcripts.tsv line 2", "1 column")
    (folder / "transcripts.tsv").write_text("a.wav\tзабудь\n", encoding="utf-8")
    (folder / "a.wav").write_bytes(b"not audio at all")
    unreadable = run_cli("eval", "asr", str(folder), cwd=tmp_path)
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    warning, error = unreadable.stderr.strip().splitlines()  # the file's warning, then why nothing is scored
    assert "skipping a.wav: cannot read" in warning and "could be read" in error


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"question": "Что такое ДНК?", "facts": [["нуклеотид"]]', "line 2: not JSON"),
        ('{"question": "", "facts": []}', 'line 2: "question" must be a non-empty string'),
        ('{"question": "Что такое ДНК?", "facts": ["нуклеотид"]}', 'line 2: "facts" must be a list of lists'),
        ('{"question": "Что такое ДНК?", "facts": [], "audio": 5}', 'line 2: "audio" must be a file name'),
        ('["Что такое ДНК?"]', "line 2: expected an object"),
    ],
)
def test_answers_input_errors_name_the_line(tmp_path: Path, line: str, needle: str) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "Что такое фотосинтез?", "facts": [["свет"]]}\n' + line + "\n", "utf-8")
    assert_one_line_exit_2(run_cli("eval", "answers", str(questions), cwd=tmp_path), needle)


def test_answers_without_the_file_or_the_audio_folder(tmp_path: Path) -> None:
    assert_one_line_exit_2(run_cli("eval", "answers", "none.jsonl", cwd=tmp_path), "question file not found")
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "Что такое фотосинтез?", "facts": [["свет"]]}\n', "utf-8")
    result = run_cli("eval", "answers", str(questions), "--audio", "nowhere", cwd=tmp_path)
    assert_one_line_exit_2(result, "folder not found", "nowhere")


# --- slow: the real embedded engines -------------------------------------------------------------------


@pytest.mark.slow
def test_eval_asr_on_the_shared_recordings(tmp_path: Path) -> None:
    out, report = tmp_path / "asr.json", tmp_path / "asr.md"
    result = run_cli("eval", "asr", str(RU_AUDIO), "--limit", "3", "--json", str(out), "--report", str(report),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert {"wer", "cer", "key_term_accuracy", "files"} <= set(summary)
    assert summary["wer"] >= 0 and summary["cer"] >= 0 and summary["key_term_accuracy"] is None
    assert [entry["file"] for entry in summary["files"]] == ["golos_00.wav", "golos_01.wav", "golos_02.wav"]
    for entry in summary["files"]:
        assert {"file", "reference", "hypothesis", "wer", "cer", "key_terms", "key_terms_found"} <= set(entry)
        assert entry["hypothesis"].strip() and entry["wer"] >= 0
    assert report.read_text(encoding="utf-8").startswith("# ASR quality")
    print(f"\nwhisper on 3 Golos clips: WER {summary['wer']:.3f}, CER {summary['cer']:.3f}")
    for entry in summary["files"]:
        print(f"  {entry['file']}: WER {entry['wer']:.3f} «{entry['hypothesis']}»")


@pytest.mark.slow
def test_eval_asr_skips_a_file_that_is_not_audio_and_scores_key_terms(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(RU_AUDIO / "ohf_02.wav", folder)
    (folder / "broken.wav").write_bytes(b"RIFF but not really a wave file")
    (folder / "transcripts.tsv").write_text(
        "ohf_02.wav\tКакая погода в Москве\tпогода|Москва\nbroken.wav\tзабудь\nabsent.wav\tневажно\n", "utf-8"
    )
    out = tmp_path / "asr.json"
    result = run_cli("eval", "asr", str(folder), "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping broken.wav" in result.stderr and "skipping absent.wav" in result.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert [entry["file"] for entry in summary["files"]] == ["ohf_02.wav"]
    assert [item["item"] for item in summary["skipped"]] == ["broken.wav", "absent.wav"]
    assert 0 <= summary["key_term_accuracy"] <= 1
    print(f"\nohf_02: «{summary['files'][0]['hypothesis']}», key terms {summary['files'][0]['key_terms_found']}")


@pytest.mark.slow
def test_eval_answers_from_text_and_from_a_recording(tmp_path: Path) -> None:
    from cluelypro.audio.io import write_audio
    from cluelypro.bench.corpus import synthesized_questions

    asked = ["Что такое фотосинтез?", "Сформулируйте теорему Пифагора."]
    names = ["photosynthesis.wav", "pythagoras.wav"]
    for name, recording in zip(names, synthesized_questions(asked, "elena"), strict=True):
        write_audio(tmp_path / name, np.concatenate([recording.audio, np.zeros(8000, np.float32)]))
    questions = tmp_path / "questions.jsonl"
    lines = [
        {"question": asked[0], "audio": "photosynthesis.wav", "facts": PHOTOSYNTHESIS_FACTS, "subject": "биология"},
        {"question": asked[1], "audio": ["pythagoras.wav"], "facts": PYTHAGORAS_FACTS, "subject": "геометрия"},
    ]
    questions.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")
    out, report = tmp_path / "answers.json", tmp_path / "answers.md"
    args = ["eval", "answers", str(questions), "--audio", str(tmp_path), "--json", str(out), "--report", str(report)]
    # Short on two busy cores: fewer tokens, and one llama.cpp thread (two threads starved by other
    # processes wait at every barrier: 30 s to the first thesis against 8 s). The code path is the same.
    result = run_cli(*args, cwd=tmp_path, env={"LLM_MAX_TOKENS": "64", "LLM_THREADS": "1", "LLM_PROMPT_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text(encoding="utf-8"))
    assert {"fact_coverage", "questions_with_a_fact", "violations", "first_thesis_s_p50", "questions"} <= set(summary)
    assert 0 <= summary["fact_coverage"] <= 1
    assert set(summary["violations"]) == {"misread", "repeated", "too_long", "cut"}
    assert [entry["audio"] for entry in summary["questions"]] == ["photosynthesis.wav", "pythagoras.wav"]
    assert all(entry["heard"].strip() for entry in summary["questions"])  # «фотосинтес»: whisper-base's own
    # Under a 64-token cap one answer may be only a formula, which the post-filter drops.
    assert any(entry["theses"] for entry in summary["questions"]), summary["questions"]
    assert summary["violations"]["misread"] == 0  # what the post-filter lets through is speakable
    assert summary["first_thesis_s_p50"] > 0 and not summary["skipped"]
    assert report.read_text(encoding="utf-8").startswith("# Answer quality")
    print(f"\nfrom audio: fact coverage {summary['fact_coverage']}, violations {summary['violations']}")
    for entry in summary["questions"]:
        print(f"  heard «{entry['heard']}»: {entry['facts_covered']} {entry['theses']}")
