"""`cluelypro eval asr|answers|turn`: the quality of what the user hears (SPEC §6), as `bench` is
for latency. Engines are built and chained as `run` builds them, so any engine is scored the same
way; `turn` replays recordings through the real VAD and segmenter, with and without the turn model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cluelypro.audio.io import AudioInputError, shown
from cluelypro.cli import console as ui
from cluelypro.cli.bench import _table_console
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.engine_names import Stage
from cluelypro.eval import answers as answer_scoring
from cluelypro.eval import asr as asr_scoring
from cluelypro.eval import report
from cluelypro.eval import turn as turn_scoring
from cluelypro.eval.inputs import (
    EvalInputError,
    LabelledQuestion,
    existing_folder,
    load_questions,
    load_transcripts,
    read_recording,
)
from cluelypro.llm.base import ThesisLLM
from cluelypro.pipeline.fallback import AllEnginesFailed
from cluelypro.pipeline.pipeline import StageChains
from cluelypro.turn.base import TurnModel
from cluelypro.vad.engines import SpeechDetector, make_detector
from cluelypro.vad.frames import scored_frames
from cluelypro.vad.segmenter import segmenter_for
from cluelypro.vad.turn import TurnPolicy

Option = typer.Option
Argument = typer.Argument
EXIT_USER_ERROR = 2
JsonOption = Annotated[Path | None, Option("--json", help="write the results as JSON")]
ReportOption = Annotated[Path | None, Option("--report", help="write a Markdown report")]
LimitOption = Annotated[int | None, Option(min=1, help="only the first N recordings or questions")]
AsrModelOption = Annotated[str | None, Option(help="faster-whisper model name or path (ASR_MODEL)")]
LlmModelOption = Annotated[str | None, Option(help="embedded LLM name or GGUF path (LLM_MODEL)")]


def register_eval_command(
    app: typer.Typer, guarded: Callable[[Callable[[], int]], None], settings_factory: Callable[..., Settings]
) -> None:
    quality = typer.Typer(help="Score quality: ASR accuracy, the facts and faults of the theses, the end of turn.")
    app.add_typer(quality, name="eval", no_args_is_help=True)

    @quality.command("asr")
    def asr(
        folder: Annotated[Path, Argument(help="audio files and transcripts.tsv (file, text, optional key terms a|b)")],
        json_path: JsonOption = None,
        report_path: ReportOption = None,
        limit: LimitOption = None,
        asr_model: AsrModelOption = None,
    ) -> None:
        """WER, CER and key-term accuracy of the ASR chain, per file and over the folder."""
        guarded(
            lambda: _user_errors(
                lambda: _score_asr(settings_factory(asr_model=asr_model), folder, json_path, report_path, limit)
            )
        )

    @quality.command("answers")
    def answers(
        questions: Annotated[
            Path, Argument(help="JSON lines: question, facts (lists of alternatives), optional audio, subject")
        ],
        audio: Annotated[
            Path | None, Option(help="folder of the recordings: ask what the ASR chain hears of each")
        ] = None,
        json_path: JsonOption = None,
        report_path: ReportOption = None,
        limit: LimitOption = None,
        asr_model: AsrModelOption = None,
        llm_model: LlmModelOption = None,
    ) -> None:
        """Fact coverage and violations of the theses, from the question text or its recording."""

        def body() -> int:
            settings = settings_factory(asr_model=asr_model, llm_model=llm_model)
            return _score_answers(settings, questions, audio, json_path, report_path, limit)

        guarded(lambda: _user_errors(body))

    @quality.command("turn")
    def turn(
        cases: Annotated[
            Path,
            Argument(help="JSON lines of cases: file, kind paused|finished, end_s, … (eval/turn/cases.jsonl)"),
        ],
        json_path: JsonOption = None,
        report_path: ReportOption = None,
        limit: Annotated[int | None, Option(min=1, help="only the first N cases")] = None,
        complete_at: Annotated[
            float | None, Option(min=0.0, max=1.0, help="the model's probability that ends the turn (TURN_COMPLETE_AT)")
        ] = None,
        incomplete_below: Annotated[
            float | None,
            Option(min=0.0, max=1.0, help="below it the pause is held (TURN_INCOMPLETE_BELOW)"),
        ] = None,
        hold_ms: Annotated[
            int | None, Option(min=0, help="the silence that ends a turn judged incomplete (TURN_HOLD_MS)")
        ] = None,
    ) -> None:
        """Questions cut before their end, and time to the confirmed end: fixed window vs turn model."""

        def body() -> int:
            settings = settings_factory(
                turn_complete_at=complete_at, turn_incomplete_below=incomplete_below, turn_hold_ms=hold_ms
            )
            return _score_turn(settings, cases, json_path, report_path, limit)

        guarded(lambda: _user_errors(body))


def _user_errors(body: Callable[[], int]) -> int:
    try:
        return body()
    except EvalInputError as error:
        ui.fail(str(error))
        return EXIT_USER_ERROR


# --- eval asr ------------------------------------------------------------------------------------


def _score_asr(
    settings: Settings, folder: Path, json_path: Path | None, report_path: Path | None, limit: int | None
) -> int:
    recordings = load_transcripts(folder, limit)  # bad input fails before the models load
    skipped: list[dict[str, str]] = []
    audio = {r.file: clip for r in recordings if (clip := _readable(folder, r.file, skipped)) is not None}
    if not audio:
        raise EvalInputError(f"no recording of {shown(folder)} could be read")
    with _engines(settings, ("asr",)) as chains:
        scores = asyncio.run(_transcribe_all(chains, [r for r in recordings if r.file in audio], audio, skipped))
    summary = asr_scoring.summarize(scores, skipped)
    engines = _names(chains.asr.engines)
    _print_tables("ASR per file", report.asr_rows(summary), "ASR overall", report.asr_overall(summary))
    _write(summary, json_path, report_path, lambda: report.asr_markdown(summary, shown(folder), engines))
    return 0 if scores else _nothing_scored()


async def _transcribe_all(chains: StageChains, recordings: list, audio: dict[str, np.ndarray], skipped: list) -> list:
    scores = []
    with _progress() as progress:
        task = progress.add_task("transcribing", total=len(recordings))
        for recording in recordings:
            try:
                transcription = await _transcription(chains, audio[recording.file])
            except AllEnginesFailed as failure:
                _skip(skipped, recording.file, str(failure))
            else:
                scored = asr_scoring.score(recording, transcription)
                scores.append(scored)
                progress.console.print(
                    f"{escape(recording.file)}  WER {100 * scored.errors.wer:.0f} %  «{escape(transcription.text)}»"
                )
            progress.advance(task)
    return scores


async def _transcription(chains: StageChains, audio: np.ndarray) -> asr_scoring.Transcription:
    started = time.monotonic()
    text, engine = await asr_scoring.transcribe(chains.asr, audio)
    return asr_scoring.Transcription(text, engine, time.monotonic() - started)


# --- eval answers --------------------------------------------------------------------------------


def _score_answers(
    settings: Settings,
    path: Path,
    audio_folder: Path | None,
    json_path: Path | None,
    report_path: Path | None,
    limit: int | None,
) -> int:
    questions = load_questions(path, limit)  # bad input fails before the models load
    if audio_folder is not None:
        existing_folder(audio_folder)
    records: list[answer_scoring.StreamRecord] = []
    stages: tuple[Stage, ...] = ("asr", "llm") if audio_folder is not None else ("llm",)
    with _engines(settings, stages, records) as chains:
        entries, skipped = asyncio.run(_answer_all(settings, chains, records, questions, audio_folder))
    summary = answer_scoring.summarize(entries, skipped)
    engines = _names(chains.llm.engines) + (f"; ASR {_names(chains.asr.engines)}" if audio_folder else "")
    _print_tables("Answers", report.answer_rows(summary), "Answers overall", report.answers_overall(summary))
    _write(summary, json_path, report_path, lambda: report.answers_markdown(summary, shown(path), engines))
    return 0 if entries else _nothing_scored()


async def _answer_all(
    settings: Settings,
    chains: StageChains,
    records: list[answer_scoring.StreamRecord],
    questions: list[LabelledQuestion],
    audio_folder: Path | None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with _progress() as progress:
        task = progress.add_task("answering", total=len(questions))
        for item in questions:
            for audio, heard in await _asked(chains, item, audio_folder, skipped):
                text = item.question if heard is None else heard
                run = await answer_scoring.write_answer(text, chains.llm, records, settings, len(entries) + 1)
                entry = answer_scoring.question_entry(item, audio, heard, run)
                entries.append(entry)
                progress.console.print(_answer_line(entry))
            progress.advance(task)
    return entries, skipped


async def _asked(
    chains: StageChains, item: LabelledQuestion, audio_folder: Path | None, skipped: list[dict[str, str]]
) -> list[tuple[str | None, str | None]]:
    """(recording, what the ASR chain heard of it) for each way `item` is asked: once from its
    text (heard None), or once for each of its recordings with --audio."""
    if audio_folder is None:
        return [(item.audio[0] if len(item.audio) == 1 else None, None)]
    if not item.audio:
        _skip(skipped, item.question, "no recording named, and --audio asks for one")
    asked: list[tuple[str | None, str | None]] = []
    for name in item.audio:
        if (clip := _readable(audio_folder, name, skipped)) is None:
            continue
        try:
            asked.append((name, (await _transcription(chains, clip)).text))
        except AllEnginesFailed as failure:
            _skip(skipped, name, str(failure))
    return asked


def _answer_line(entry: dict[str, Any]) -> str:
    heard = f" heard «{escape(entry['heard'])}»" if entry["heard"] is not None else ""
    covered = sum(c is not None for c in entry["facts_covered"])
    faults = f"  [yellow]{escape(report.kinds(entry))}[/]" if entry["violations"] else ""
    error = f"  [red]{escape(entry['error'])}[/]" if "error" in entry else ""
    return (
        f"«{escape(entry['question'])}»{heard}: {len(entry['theses'])} theses, "
        f"facts {covered}/{len(entry['facts'])}{faults}{error}"
    )


# --- eval turn -----------------------------------------------------------------------------------


def _score_turn(
    settings: Settings, path: Path, json_path: Path | None, report_path: Path | None, limit: int | None
) -> int:
    from cluelypro.engines import make_turn_model

    cases = turn_scoring.load_cases(path, limit)  # bad input fails before the models load
    skipped: list[dict[str, str]] = []
    audio = {case.id: clip for case in cases if (clip := _case_audio(case, path.parent, skipped)) is not None}
    if not audio:
        raise EvalInputError(f"no case of {shown(path)} could be read")
    model = make_turn_model(settings.model_copy(update={"turn_model": "smart-turn"}))
    assert model is not None
    started = time.monotonic()
    model.load()
    model.complete_probability(np.zeros(SAMPLE_RATE, dtype=np.float32))  # the first call is slower
    detector = make_detector(settings.vad_engine, settings.webrtc_aggressiveness)
    ui.errors.print(f"[green]ready[/] in {time.monotonic() - started:.1f} s: {model.name}, VAD {detector.name}")
    policy = TurnPolicy.from_settings(settings)
    entries = _replay_all(settings, [c for c in cases if c.id in audio], audio, detector, model, policy)
    summary = turn_scoring.summarize(entries, skipped, settings, model.name)
    out = _table_console()
    out.print(report.rows_table("End of turn per case", *report.turn_rows(summary)))
    out.print(report.rows_table("End of turn per group", *report.turn_group_rows(summary)))
    out.print(report.overall_table("End of turn overall", report.turn_overall(summary)))
    out.print(f"[dim]{escape(turn_scoring.CLOCK_NOTE)}[/]")
    _write(summary, json_path, report_path, lambda: report.turn_markdown(summary, shown(path)))
    return 0


def _case_audio(case: turn_scoring.TurnCase, folder: Path, skipped: list[dict[str, str]]) -> np.ndarray | None:
    try:
        return turn_scoring.case_audio(case, folder)
    except (AudioInputError, ValueError) as error:  # ValueError: a splice outside the recording
        _skip(skipped, case.id, str(error))
    return None


def _replay_all(
    settings: Settings,
    cases: list[turn_scoring.TurnCase],
    audio: dict[str, np.ndarray],
    detector: SpeechDetector,
    model: TurnModel,
    policy: TurnPolicy,
) -> list[dict[str, Any]]:
    """Each case through the VAD once, then through two segmenters: the fixed window, and the
    turn model at the pause."""
    entries = []
    scorer = turn_scoring.timed(model)
    with _progress() as progress:
        task = progress.add_task("replaying", total=len(cases))
        for case in cases:
            detector.reset()
            scored = list(scored_frames(audio[case.id], detector))
            fixed = turn_scoring.replay(scored, segmenter_for(settings, detector.frame_samples))
            learned = turn_scoring.replay(scored, segmenter_for(settings, detector.frame_samples), scorer, policy)
            entry = turn_scoring.case_entry(case, fixed, learned)
            entries.append(entry)
            progress.console.print(escape(report.turn_line(entry)))
            progress.advance(task)
    return entries


# --- shared ----------------------------------------------------------------------------------------


@contextmanager
def _engines(
    settings: Settings, stages: tuple[Stage, ...], records: list[answer_scoring.StreamRecord] | None = None
) -> Iterator[StageChains]:
    """The engines of `stages`, built, chained and loaded as `run` does (with progress); the LLMs
    recorded into `records`, when given."""
    from cluelypro.engines import build_engines, load_engines

    built = build_engines(settings)
    llms: list[ThesisLLM] = (
        [answer_scoring.RecordingLLM(llm, records) for llm in built.llms] if records is not None else built.llms
    )
    engines = replace(
        built,
        recognizers=built.recognizers if "asr" in stages else [],
        llms=llms if "llm" in stages else [],
        synthesizers=[],
        left_out=[item for item in built.left_out if item.stage in stages],
    )
    try:
        with ui.loading_progress() as progress:
            startup_s = load_engines(engines, progress)
        ui.print_left_out(engines.left_out)
        ui.errors.print(f"[green]ready[/] in {startup_s:.1f} s")
        yield StageChains(settings, engines)
    finally:
        engines.close()


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=ui.errors, transient=True) as progress:
        yield progress


def _readable(folder: Path, name: str, skipped: list[dict[str, str]]) -> np.ndarray | None:
    try:
        return read_recording(folder, name)
    except AudioInputError as error:
        _skip(skipped, name, str(error))
        return None


def _skip(skipped: list[dict[str, str]], item: str, reason: str) -> None:
    ui.errors.print(f"[yellow]warning:[/] skipping {escape(item)}: {escape(reason)}")
    skipped.append({"item": item, "reason": reason})


def _names(engines: list) -> str:
    return " → ".join(engine.name for engine in engines) or "none"


def _print_tables(title: str, rows: tuple[list[str], list[list[str]]], overall: str, pairs: list) -> None:
    out = _table_console()
    out.print(report.rows_table(title, *rows))
    out.print(report.overall_table(overall, pairs))


def _write(
    summary: dict[str, Any], json_path: Path | None, report_path: Path | None, markdown: Callable[[], str]
) -> None:
    from cluelypro.bench.report import write_json

    if json_path is not None:
        write_json(summary, json_path)
        ui.console.print(f"results written to {escape(shown(json_path))}")
    if report_path is not None:
        report.write_markdown(markdown(), report_path)
        ui.console.print(f"report written to {escape(shown(report_path))}")


def _nothing_scored() -> int:
    ui.fail("nothing could be scored; see the warnings above")
    return EXIT_USER_ERROR
