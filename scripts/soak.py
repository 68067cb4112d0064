"""Soak: hours of conversation through the real pipeline; memory, tasks and threads stay flat.

    .venv/bin/python scripts/soak.py --minutes 10 --json soak.json      # what CI runs
    nice -n 10 .venv/bin/python scripts/soak.py --json soak.json        # two hours of input

A seeded, repeatable programme is generated block by block (two hours held at once would be
460 MB): rounds of 40–60 s, each one examiner question followed by one or two of chatter, the
user's own speech and noise bursts, with 5–40 s of silence between them. It is replayed with
`--fast` semantics (`Clock(fast=True)`, no real-time waits) through the real `Pipeline` and the
embedded engines, loaded once. Like the scripted room of tests/test_scenarios.py, the examiner
reacts to the prompter: a question is asked once the previous answer has begun (a thesis or an
`error`) and everything said before it is decided, or after WAIT_LIMIT_S. Replayed flat out, ten
minutes of input were read in 13 s, before any answer had begun (the queues hold them): the input
minutes would say nothing about a conversation.

- questions: samples.EXAM_QUESTIONS and MORE_EXAM_QUESTIONS in RHVoice "aleksandr", and the
  shared real Russian clips (../shared/audio/ru) whose transcript the question filter accepts;
- chatter: CHATTER in "aleksandr" and the real clips the filter rejects (commands, statements);
  before anything runs, every written question must be accepted and every chatter line rejected;
- own speech: a real speaker (--profile-speaker, ../shared/audio/speakers/<name>) enrolled from
  their first two utterances; the held-out ones appear in the programme;
- noise: white or pink bursts of 1–4 s at speech level (Silero hears no speech in them; white
  noise is also flatter than the segmenter's noise filter lets through).

Every minute of input time it samples RSS, open asyncio tasks and threads (a progress line each),
and counts, through a timeline observer, each accepted question's theses and `error` events.
With --json the report is rewritten after every sample, so a killed run still leaves its samples.
A question the model declined (it wrote an answer with no thesis in it, «0»: it judged the
utterance not worth one) is listed apart; it is the model's answer, not lost work.
The exit code is 1 if an accepted question got neither a thesis, an error nor any LLM output, an utterance was
never decided, or a task died with its exception unretrieved; a traceback if the pipeline raised.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import psutil

from cluelypro.audio.earpiece import TrackEarpiece
from cluelypro.audio.io import AudioInputError, read_audio, to_mono_16k
from cluelypro.config import BLOCK_SAMPLES, SAMPLE_RATE, Settings, load_settings
from cluelypro.engines import build_engines, load_engines
from cluelypro.metrics.events import Asr, Error, LlmFirstToken, Question, Segment, Speaker, Thesis
from cluelypro.metrics.timeline import Clock, Record, Timeline
from cluelypro.packaged import ModelUnavailableError
from cluelypro.pipeline.pipeline import Pipeline
from cluelypro.prompter.filter import QuestionFilter
from cluelypro.prompter.samples import EXAM_QUESTIONS
from cluelypro.speaker.enroll import build_profile
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.speaker.profiles import ProfileError
from cluelypro.tts.rhvoice import RhVoiceSynthesizer
from cluelypro.vad.engines import make_detector

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
EXAMINER_VOICE = "aleksandr"
EXAMINER_PEAK = 0.7  # synthesised lines are normalised to this peak, as in tests/test_scenarios.py
WAIT_LIMIT_S = 120.0  # wall time the examiner waits for an answer to begin before asking on
WARM_MINUTE = 10  # the goal: RSS growth after minute 10 of input ≤ 50 MB

ROUND_S = (40.0, 60.0)  # one question per round
PAUSE_S = (5.0, 40.0)
NOISE_S = (1.0, 4.0)
GAIN = (0.6, 1.0)  # each occurrence of a line at another level

MORE_EXAM_QUESTIONS = [
    "Объясните, чем вирус отличается от бактерии.",
    "Какие законы Ньютона вы знаете?",
    "Почему небо голубое?",
    "Назовите основные функции печени.",
    "В каком году в России отменили крепостное право?",
    "Сформулируйте теорему Пифагора.",
    "Расскажите о строении клетки.",
    "Как работает двигатель внутреннего сгорания?",
    "Дайте определение валового внутреннего продукта.",
    "Чем погода отличается от климата?",
    "Сформулируйте закон Ома.",
    "Кто такой Пётр Первый и чем он известен?",
    "Зачем нужна периодическая таблица Менделеева?",
    "Перечислите части речи в русском языке.",
    "Сколько планет в Солнечной системе?",
    "Как устроена кровеносная система человека?",
    "Опишите круговорот воды в природе.",
    "Что такое рекурсия в программировании?",
    "Можете объяснить, что такое спрос и предложение?",
    "Почему распался Советский Союз?",
    "Какова роль митохондрий в клетке?",
    "Сравните феодализм и капитализм.",
]

CHATTER = [
    "Добрый день, присаживайтесь.",
    "Так, хорошо.",
    "Следующий вопрос.",
    "Возьмите билет.",
    "Я сейчас закрою окно, на улице очень шумно.",
    "Сегодня у нас очень много студентов.",
    "Включите, пожалуйста, свет.",
    "Положите телефоны на край стола.",
    "У вас есть двадцать минут на подготовку.",
    "Экзамен закончится в три часа.",
    "Закройте дверь.",
    "Отлично, продолжаем.",
    "Мы вернёмся к этой теме позже.",
    "Не торопитесь, подумайте спокойно.",
    "Коллега, передайте мне ведомость.",
    "В аудитории сегодня холодно.",
]


class SoakError(Exception):
    """The soak cannot run as asked; the message is one line."""


# --- the lines of the programme, rendered once (a fixed set: memory stays bounded) -------------


@dataclass(frozen=True)
class Line:
    kind: str  # "question", "chatter" or "own"
    text: str
    audio: np.ndarray = field(repr=False)


@dataclass
class Bank:
    questions: list[Line]
    chatter: list[Line]
    own: list[Line]

    @cached_property
    def speech_rms(self) -> float:
        return float(np.mean([np.sqrt(np.mean(line.audio**2)) for line in self.questions]))


def check_filter(question_filter: QuestionFilter, questions: list[str], chatter: list[str]) -> None:
    """The programme is only meaningful if the filter accepts each question and rejects each chatter line."""
    wrong = []
    for text, wanted in [(text, True) for text in questions] + [(text, False) for text in chatter]:
        accepted, reason = question_filter.decide(text)
        if accepted != wanted:
            wrong.append(f"«{text}» {'rejected' if wanted else 'accepted'} ({reason})")
    if wrong:
        raise SoakError("the question filter disagrees with the programme: " + "; ".join(wrong))


def synthesised(kind: str, texts: list[str]) -> list[Line]:
    examiner = RhVoiceSynthesizer(EXAMINER_VOICE)
    examiner.load()
    try:
        return [Line(kind, text, _examiner_says(examiner, text)) for text in texts]
    finally:
        examiner.close()  # its native threads must not count in the soak's thread samples


def _examiner_says(examiner: RhVoiceSynthesizer, text: str) -> np.ndarray:
    speech = to_mono_16k(np.concatenate(list(examiner.synthesize(text))), examiner.sample_rate)
    return EXAMINER_PEAK * speech / max(1e-6, float(np.abs(speech).max()))


def real_russian_clips(question_filter: QuestionFilter) -> tuple[list[Line], list[Line]]:
    """The shared real Russian clips, split by what the filter says of their transcript."""
    folder = SHARED_AUDIO / "ru"
    with (folder / "transcripts.tsv").open(encoding="utf-8") as table:
        rows = list(csv.reader(table, delimiter="\t"))
    lines = [
        Line("question" if question_filter.decide(text)[0] else "chatter", text, read_audio(folder / name))
        for name, text in rows
    ]
    return [line for line in lines if line.kind == "question"], [line for line in lines if line.kind == "chatter"]


def speaker_utterances(speaker: str) -> list[Path]:
    if not SHARED_AUDIO.is_dir():
        raise SoakError(f"the shared recordings are missing: {SHARED_AUDIO}")
    folder = SHARED_AUDIO / "speakers" / speaker
    files = sorted([*folder.glob("*.flac"), *folder.glob("*.wav")])
    if len(files) < 3:
        raise SoakError(f"{folder}: need a speaker folder with at least 3 utterances (2 to enrol, the rest held out)")
    return files


def build_bank(settings: Settings, speaker_files: list[Path]) -> Bank:
    question_filter = QuestionFilter(settings.question_filter_mode, commentary=settings.commentary_mode)
    check_filter(question_filter, EXAM_QUESTIONS + MORE_EXAM_QUESTIONS, CHATTER)
    real_questions, real_chatter = real_russian_clips(question_filter)
    return Bank(
        questions=synthesised("question", EXAM_QUESTIONS + MORE_EXAM_QUESTIONS) + real_questions,
        chatter=synthesised("chatter", CHATTER) + real_chatter,
        own=[Line("own", path.name, read_audio(path)) for path in speaker_files[2:]],
    )


def enrolled_gate(engines, speaker_files: list[Path]) -> SpeakerGate:
    enrolment = np.concatenate([read_audio(path) for path in speaker_files[:2]])
    profile = build_profile("soak", enrolment, engines.embedder, make_detector("silero"))
    return SpeakerGate(engines.embedder, profile)


# --- the programme: an endless seeded stream of segments, cut into blocks ----------------------


def noise_burst(rng: Random, rms: float) -> np.ndarray:
    samples = round(rng.uniform(*NOISE_S) * SAMPLE_RATE)
    noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(samples)
    if rng.random() < 0.5:  # pink: 1/f power
        frequencies = np.fft.rfftfreq(samples)
        frequencies[0] = frequencies[1]
        noise = np.fft.irfft(np.fft.rfft(noise) / np.sqrt(frequencies), samples)
    return (rms * noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def pauses(total_s: float, count: int, rng: Random) -> list[float]:
    """`count` silences of PAUSE_S that add up to about `total_s`."""
    weights = [rng.random() + 0.2 for _ in range(count)]
    return [min(max(total_s * w / sum(weights), PAUSE_S[0]), PAUSE_S[1]) for w in weights]


def programme(bank: Bank, rng: Random, tally: Counter) -> Iterator[tuple[str, np.ndarray]]:
    """Rounds of one question and one or two fillers (chatter, own speech, noise), with silences."""
    fillers = filler_kinds(rng)
    while True:
        speech = [line_at_random(bank.questions, rng)]
        speech += [filler(bank, next(fillers), rng) for _ in range(rng.randint(1, 2))]
        spoken_s = sum(len(audio) for _, audio in speech) / SAMPLE_RATE
        for (kind, audio), pause_s in zip(
            speech, pauses(rng.uniform(*ROUND_S) - spoken_s, len(speech), rng), strict=True
        ):
            tally[kind] += 1
            tally["silence_s"] += pause_s
            yield kind, audio
            yield "silence", np.zeros(round(pause_s * SAMPLE_RATE), dtype=np.float32)


def filler_kinds(rng: Random) -> Iterator[str]:
    """Each kind once in every three fillers, in a shuffled order (even a short run has them all)."""
    while True:
        yield from rng.sample(["chatter", "own", "noise"], 3)


def filler(bank: Bank, kind: str, rng: Random) -> tuple[str, np.ndarray]:
    if kind == "noise":
        return kind, noise_burst(rng, bank.speech_rms)
    return line_at_random(getattr(bank, kind), rng)


def line_at_random(lines: list[Line], rng: Random) -> tuple[str, np.ndarray]:
    line = rng.choice(lines)
    return line.kind, (rng.uniform(*GAIN) * line.audio).astype(np.float32)


class Blocks:
    """Segments cut into microphone-sized blocks, up to `total` samples in all."""

    def __init__(self, total: int) -> None:
        self.left = total
        self._carry = np.zeros(0, dtype=np.float32)

    def cut(self, segment: np.ndarray) -> Iterator[np.ndarray]:
        self._carry = np.concatenate([self._carry, segment])
        while len(self._carry) >= BLOCK_SAMPLES and self.left > 0:
            block, self._carry = self._carry[: min(BLOCK_SAMPLES, self.left)], self._carry[BLOCK_SAMPLES:]
            self.left -= len(block)
            yield block


# --- what is watched --------------------------------------------------------------------------


@dataclass
class Outcome:
    text: str
    theses: int = 0
    errors: int = 0
    llm_wrote: bool = False  # an LLM answered (`llm_first_token`): no thesis then means it declined («0»)
    overtaken_by: int | None = None  # a newer question accepted before this one had any outcome


class Outcomes:
    """A timeline observer: per accepted question, its thesis and error events; and whether the
    pipeline has settled (every utterance decided, every accepted question with an outcome)."""

    def __init__(self) -> None:
        self.by_q: dict[int, Outcome] = {}
        self.errors = Counter()
        self.roles = Counter()  # the speaker gate's decisions
        self.events = 0
        self.settled = asyncio.Event()
        self.settled.set()
        self._undecided: set[int] = set()  # utterances emitted, not yet own, a question or an ASR error
        self._unanswered: set[int] = set()  # accepted questions with neither a thesis nor an error yet
        self._not_waited_for: tuple[set[int], set[int]] = (set(), set())  # the same, after a wait timed out
        self._last_asr: tuple[int | None, str] = (None, "")  # asr and question are emitted back to back

    def __call__(self, record: Record) -> None:
        self.events += 1
        event, q, utt = record.event, record.q, record.utt
        if isinstance(event, Segment):
            self._undecided.add(utt)
        elif isinstance(event, Asr):
            self._last_asr = (utt, event.text)
        elif isinstance(event, Speaker):
            self.roles[event.role] += 1
            if event.role == "own":
                self._undecided.discard(utt)
        elif isinstance(event, Question):
            self._undecided.discard(utt)
            if event.accepted:
                self._accept(q, self._last_asr[1] if self._last_asr[0] == utt else "")
        elif isinstance(event, LlmFirstToken) and q in self.by_q:
            self.by_q[q].llm_wrote = True
        elif isinstance(event, Thesis) and q in self.by_q:
            self.by_q[q].theses += 1
            self._unanswered.discard(q)
        elif isinstance(event, Error):
            self.errors[event.stage] += 1
            self._undecided.discard(utt)
            if q in self.by_q:
                self.by_q[q].errors += 1
                self._unanswered.discard(q)
        self._update_settled()

    def _accept(self, q: int, text: str) -> None:
        for waiting in self._unanswered:
            self.by_q[waiting].overtaken_by = self.by_q[waiting].overtaken_by or q
        self.by_q[q] = Outcome(text)
        self._unanswered.add(q)

    def _update_settled(self) -> None:
        utterances, questions = self._not_waited_for
        if self._undecided - utterances or self._unanswered - questions:
            self.settled.clear()
        else:
            self.settled.set()

    def give_up(self) -> dict[str, list[int]]:
        """Stop waiting for what has not come yet (it still counts if it comes later)."""
        self._not_waited_for[0].update(self._undecided)
        self._not_waited_for[1].update(self._unanswered)
        self._update_settled()
        return {"utterances": sorted(self._undecided), "questions": sorted(self._unanswered)}

    def summary(self) -> dict[str, Any]:
        outcomes = self.by_q.values()
        return {
            "accepted": len(self.by_q),
            "answered": sum(1 for o in outcomes if o.theses),
            "error": sum(1 for o in outcomes if o.errors and not o.theses),
            # the model wrote an answer with no thesis in it: it judged the question not worth one
            "declined": [
                {"q": q, **asdict(o)} for q, o in self.by_q.items() if not (o.theses or o.errors) and o.llm_wrote
            ],
            "neither": [
                {"q": q, **asdict(o)} for q, o in self.by_q.items() if not (o.theses or o.errors or o.llm_wrote)
            ],
            "undecided_utterances": sorted(self._undecided),  # neither own, nor a question, nor an ASR error
        }


@dataclass
class Report:
    path: Path | None
    data: dict[str, Any]

    def write(self) -> None:
        """Atomically, so a run killed mid-write still leaves the previous samples."""
        if self.path is None:
            return
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(partial, self.path)


class Soak:
    def __init__(self, minutes: float, bank: Bank, seed: int, report: Report, clock: Clock) -> None:
        self.total = round(minutes * 60 * SAMPLE_RATE)
        self.bank = bank
        self.rng = Random(seed)
        self.report = report
        self.clock = clock
        self.outcomes = Outcomes()
        self.tally: Counter = Counter()
        self.loop_exceptions: list[str] = []
        self.waits_timed_out: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.process = psutil.Process()
        self.started = time.monotonic()
        self.position = 0

    async def source(self) -> AsyncIterator[np.ndarray]:
        self.clock.restart()
        blocks, next_minute = Blocks(self.total), 1
        for kind, segment in programme(self.bank, self.rng, self.tally):
            if kind == "question":
                await self.examiner_waits()
            for block in blocks.cut(segment):
                await asyncio.sleep(0)  # as replay_file does with --fast
                yield block
                self.position += len(block)
                if self.position >= next_minute * 60 * SAMPLE_RATE:
                    self.samples.append(self.sample())
                    self.update_report(finished=False)
                    next_minute += 1
            if not blocks.left:
                return

    async def examiner_waits(self) -> None:
        """The next question comes once the previous answer has begun (a thesis or an error) and
        everything said before it is decided — at most WAIT_LIMIT_S of wall time."""
        try:
            await asyncio.wait_for(self.outcomes.settled.wait(), WAIT_LIMIT_S)
        except asyncio.TimeoutError:  # TimeoutError's alias only from Python 3.11
            self.waits_timed_out.append(
                {"minute": round(self.position / SAMPLE_RATE / 60, 2), **self.outcomes.give_up()}
            )

    def sample(self) -> dict[str, Any]:
        sample = {
            "minute": round(self.position / SAMPLE_RATE / 60, 2),
            "rss_mb": round(self.process.memory_info().rss / 2**20, 1),
            "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "os_threads": self.process.num_threads(),
            "questions": len(self.outcomes.by_q),
            "events": self.outcomes.events,
            "wall_s": round(time.monotonic() - self.started, 1),
        }
        print(
            "minute {minute:6.2f}  rss {rss_mb:7.1f} MB  tasks {tasks:3d}  threads {threads:3d} ({os_threads} os)  "
            "questions {questions:4d}  wall {wall_s:7.1f} s".format(**sample),
            flush=True,
        )
        return sample

    def on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.loop_exceptions.append(f"{context['message']}: {context.get('exception')!r}")
        loop.default_exception_handler(context)

    async def run(self, pipeline: Pipeline) -> dict[str, Any]:
        asyncio.get_running_loop().set_exception_handler(self.on_loop_exception)
        self.started = time.monotonic()
        await pipeline.run(self.source())
        end = self.sample()
        end["leftover_tasks"] = sorted(
            task.get_coro().__qualname__ for task in asyncio.all_tasks() if task is not asyncio.current_task()
        )
        return end

    def update_report(self, finished: bool, end: dict[str, Any] | None = None, exception: str | None = None) -> None:
        at_warm = next((s["rss_mb"] for s in self.samples if s["minute"] >= WARM_MINUTE), None)
        self.report.data.update(
            finished=finished,
            exception=exception,
            programme={kind: round(count, 1) for kind, count in self.tally.items()},
            samples=self.samples,
            end=end,
            rss_minute_10_mb=at_warm,
            rss_end_mb=end and end["rss_mb"],
            growth_after_minute_10_mb=round(end["rss_mb"] - at_warm, 1) if end and at_warm is not None else None,
            questions=self.outcomes.summary(),
            errors=dict(self.outcomes.errors),
            speaker_roles=dict(self.outcomes.roles),
            loop_exceptions=self.loop_exceptions,
            waits_timed_out=self.waits_timed_out,
            wall_s=round(time.monotonic() - self.started, 1),
        )
        self.report.write()


def run_soak(args: argparse.Namespace) -> int:
    settings = load_settings()
    speaker_files = speaker_utterances(args.profile_speaker)
    began = time.monotonic()
    bank = build_bank(settings, speaker_files)
    engines = build_engines(settings, speaker_gate=True)
    load_engines(engines, lambda label: lambda done, total: None)
    gate = enrolled_gate(engines, speaker_files)
    report = Report(
        args.json,
        {
            "seed": args.seed,
            "minutes": args.minutes,
            "profile_speaker": args.profile_speaker,
            "voice_threshold": gate.threshold,
            "load_s": round(time.monotonic() - began, 1),
        },
    )
    clock, timeline = Clock(fast=True), Timeline(args.events)
    soak = Soak(args.minutes, bank, args.seed, report, clock)
    timeline.subscribe(soak.outcomes)
    earpiece = TrackEarpiece(clock, soak.total, keep=False)  # as `run --input --fast` makes it without --output
    pipeline = Pipeline(settings, engines, clock, timeline, earpiece, gate)
    print(f"loaded in {report.data['load_s']} s; {args.minutes} min of input, seed {args.seed}", flush=True)
    end, exception = None, None
    try:
        end = asyncio.run(soak.run(pipeline))
    except Exception as error:  # the report must say so; the traceback is printed too
        exception = repr(error)
        raise
    finally:
        gc.collect()  # a task dropped with an unretrieved exception is reported when collected
        soak.update_report(finished=end is not None, end=end, exception=exception)
        engines.close()
        timeline.close()
    summary = report.data["questions"]
    print(
        f"RSS minute 10 {report.data['rss_minute_10_mb']} MB, end {report.data['rss_end_mb']} MB, growth "
        f"{report.data['growth_after_minute_10_mb']} MB; questions {summary['accepted']} accepted, "
        f"{summary['answered']} answered, {summary['error']} error only, {len(summary['declined'])} declined "
        f"by the model, {len(summary['neither'])} neither; "
        f"wall {report.data['wall_s']} s",
        flush=True,
    )
    for outcome in summary["neither"]:
        overtaken = f" (q{outcome['overtaken_by']} was accepted first)" if outcome["overtaken_by"] else ""
        print(f"neither thesis nor error: q{outcome['q']} «{outcome['text']}»{overtaken}", flush=True)
    for outcome in summary["declined"]:
        print(f"declined by the model (no thesis in its answer): q{outcome['q']} «{outcome['text']}»", flush=True)
    for wait in soak.waits_timed_out:
        print(f"waited {WAIT_LIMIT_S:g} s in vain at minute {wait['minute']}: {wait}", flush=True)
    if summary["undecided_utterances"]:
        print(f"utterances never decided: {summary['undecided_utterances']}", flush=True)
    return 1 if summary["neither"] or summary["undecided_utterances"] or soak.loop_exceptions else 0


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: {message}\n")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="input time to replay (default 120)")
    parser.add_argument("--seed", type=int, default=1, help="the programme's seed (same seed, same programme)")
    parser.add_argument("--json", type=Path, help="write the report here, rewritten after every sample")
    parser.add_argument("--events", type=Path, help="also write the event timeline as JSON lines")
    parser.add_argument(
        "--profile-speaker",
        default="libri_1688",
        help="speaker folder under ../shared/audio/speakers enrolled as the user",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        return run_soak(args)
    except (SoakError, AudioInputError, ModelUnavailableError, ProfileError) as error:
        print(f"soak.py: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
