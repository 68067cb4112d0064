"""Scoring the end of turn (issue 14): each case of a turn set (`eval/turn/cases.jsonl`) replayed
offline, frame by frame, through the real VAD and segmenter twice — with the fixed silence window
(END_SILENCE_MS), and with the turn model asked at the speculative pause (TurnPolicy) — to see which
questions are cut before their end and how soon the end of the others is confirmed.

Offline there is no wall clock: input time is the frames pushed. Each call of the turn model is
timed for real, and when its "complete" closes an utterance, that time is added to the moment the
end is confirmed (the pipeline's frames wait for the model the same way).

A case is a recording with its labels; the times in the manifest are those of the audio as it is
replayed: after the splice, when the case has one (a pause of the clip's own background put in at
a word boundary, made here from a shared recording rather than stored), and with the clip's own
background appended until TAIL_S after the question's end.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cluelypro.audio.io import read_audio, shown
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.eval.inputs import EvalInputError, json_object, parsed_lines
from cluelypro.metrics.summary import percentiles
from cluelypro.turn.base import TurnModel
from cluelypro.vad.segmenter import Segmenter, SpeechEnded, SpeechPaused, SpeechStarted
from cluelypro.vad.turn import TurnPolicy, apply_turn

CaseKind = Literal["paused", "finished"]
KINDS: tuple[CaseKind, ...] = ("paused", "finished")
MODES = ("fixed", "learned")
TAIL_S = 2.0
"""Silence (the clip's own background) after the question's end, appended when the file has less."""
CLOCK_NOTE = (
    "Offline replay: input time is frames pushed, no wall clock; the turn model's measured call time "
    "is added to the end it confirms"
)
MANIFEST_FORMAT = (
    '{"id": …, "file": …, "kind": "paused"|"finished", "voice": …, "text": …, "start_s": …, "end_s": …, '
    '"pause_start_s": …, "pause_s": … (paused), "splice": {"at_s": …, "insert_s": …} (optional)}'
)

QUIET_SHARE = 0.1
"""The background of a clip (its level and spectrum): the 32 ms windows within 3 dB of the power
its quietest tenth of windows stays under."""
BACKGROUND_WINDOW = 512
FADE_S = 0.01
"""Equal-power crossfade where inserted background meets the recording."""
SPLICE_SEED = 1
TAIL_SEED = 2


# --- the manifest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splice:
    """A pause made at replay time: `insert_s` of the clip's own background put in at `at_s` of
    the source file."""

    at_s: float
    insert_s: float


@dataclass(frozen=True)
class TurnCase:
    id: str
    file: str  # relative to the manifest's folder
    kind: CaseKind
    voice: str  # an RHVoice voice, or "golos" for real human speech
    text: str
    start_s: float  # the question's first sound, in the replayed audio
    end_s: float  # the question's true end, in the replayed audio
    pause_start_s: float | None = None  # paused: where the inner pause begins
    pause_s: float | None = None  # paused: its length
    before_pause: str | None = None  # paused: the words said before it
    splice: Splice | None = None


def load_cases(path: Path, limit: int | None = None) -> list[TurnCase]:
    """The cases of a JSON-lines manifest, in its order (only the first `limit`)."""
    if not path.is_file():
        raise EvalInputError(f"case file not found: {shown(path)}")
    cases = parsed_lines(path, _case, f"holds no cases (one JSON object a line: {MANIFEST_FORMAT})")
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):
        raise EvalInputError(f"{shown(path)}: case id {next(i for i in ids if ids.count(i) > 1)!r} is used twice")
    return cases[:limit]


def _case(line: str, where: str) -> TurnCase:
    item = json_object(line, where, MANIFEST_FORMAT)
    for key in ("id", "file", "voice", "text"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise EvalInputError(f'{where}: "{key}" must be a non-empty string')
    kind = item.get("kind")
    if kind not in KINDS:
        raise EvalInputError(f'{where}: "kind" must be "paused" or "finished", not {kind!r}')
    start_s, end_s = _seconds(item, "start_s", where), _seconds(item, "end_s", where)
    if not start_s < end_s:
        raise EvalInputError(f'{where}: "start_s" must come before "end_s"')
    pause_start_s = pause_s = None
    if kind == "paused":
        pause_start_s, pause_s = _seconds(item, "pause_start_s", where), _seconds(item, "pause_s", where)
        if not start_s < pause_start_s < pause_start_s + pause_s < end_s:
            raise EvalInputError(f"{where}: the pause must lie inside the question (start_s … end_s)")
    splice = None
    if (raw := item.get("splice")) is not None:
        if not isinstance(raw, dict):
            raise EvalInputError(f'{where}: "splice" must be {{"at_s": …, "insert_s": …}}')
        splice = Splice(_seconds(raw, "at_s", where), _seconds(raw, "insert_s", where))
    before = item.get("before_pause")
    return TurnCase(
        item["id"].strip(),
        item["file"].strip(),
        kind,
        item["voice"].strip(),
        item["text"].strip(),
        start_s,
        end_s,
        pause_start_s,
        pause_s,
        before if isinstance(before, str) else None,
        splice,
    )


def _seconds(item: dict[str, Any], key: str, where: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EvalInputError(f'{where}: "{key}" must be a number of seconds ≥ 0')
    return float(value)


# --- the audio -------------------------------------------------------------------------------------


def case_audio(case: TurnCase, folder: Path) -> np.ndarray:
    """The case's audio as it is replayed (16 kHz float32): the file, spliced when the case says
    so, with its own background appended until TAIL_S after the question's end. AudioInputError
    when the file cannot be read."""
    audio = read_audio(folder / case.file)
    if case.splice is not None:
        audio = splice_pause(audio, case.splice.at_s, case.splice.insert_s)
    return with_tail(audio, case.end_s + TAIL_S)


def background_like(audio: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` of noise with the level and spectrum of `audio`'s quietest stretches (its own
    background: room noise for a real recording, digital silence for a synthetic one).
    Deterministic for a given `seed`."""
    if samples <= 0 or len(audio) < BACKGROUND_WINDOW:
        return np.zeros(max(samples, 0), dtype=np.float32)
    windows = sliding_window_view(audio.astype(np.float64), BACKGROUND_WINDOW)[:: BACKGROUND_WINDOW // 2]
    power = (windows**2).mean(axis=1)
    quiet = windows[power <= 2 * np.quantile(power, QUIET_SHARE)]
    level = float(np.sqrt((quiet**2).mean()))
    if level == 0.0:
        return np.zeros(samples, dtype=np.float32)
    spectrum = np.sqrt((np.abs(np.fft.rfft(quiet * np.hanning(BACKGROUND_WINDOW), axis=1)) ** 2).mean(axis=0))
    shape = np.interp(np.fft.rfftfreq(samples), np.fft.rfftfreq(BACKGROUND_WINDOW), spectrum)
    white = np.random.default_rng(seed).standard_normal(samples)
    noise = np.fft.irfft(np.fft.rfft(white) * shape, n=samples)
    noise *= level / max(float(np.sqrt((noise**2).mean())), 1e-12)
    return noise.astype(np.float32)


def _fades(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-in, fade-out) of equal power, for mixing two unrelated signals."""
    angle = (np.arange(samples) + 0.5) / samples * (np.pi / 2)
    return np.sin(angle).astype(np.float32), np.cos(angle).astype(np.float32)


def splice_pause(audio: np.ndarray, at_s: float, insert_s: float, seed: int = SPLICE_SEED) -> np.ndarray:
    """`audio` with `insert_s` of its own background put in at `at_s` (crossfaded over FADE_S on
    each side); the result is exactly `insert_s` longer."""
    fade = round(FADE_S * SAMPLE_RATE)
    at, insert = round(at_s * SAMPLE_RATE), round(insert_s * SAMPLE_RATE)
    if not fade <= at <= len(audio) - fade:
        raise ValueError(f"cannot splice at {at_s} s into {len(audio) / SAMPLE_RATE:.2f} s of audio")
    noise = background_like(audio, insert + 2 * fade, seed)
    fade_in, fade_out = _fades(fade)
    head, tail = audio[:at], audio[at:]
    return np.concatenate(
        [
            head[:-fade],
            head[-fade:] * fade_out + noise[:fade] * fade_in,
            noise[fade:-fade],
            noise[-fade:] * fade_out + tail[:fade] * fade_in,
            tail[fade:],
        ]
    ).astype(np.float32)


def with_tail(audio: np.ndarray, until_s: float, seed: int = TAIL_SEED) -> np.ndarray:
    """`audio` lengthened with its own background (crossfaded in) to at least `until_s`."""
    missing = round(until_s * SAMPLE_RATE) - len(audio)
    if missing <= 0:
        return audio
    fade = min(round(FADE_S * SAMPLE_RATE), len(audio))
    noise = background_like(audio, missing + fade, seed)
    fade_in, fade_out = _fades(fade)
    mixed = audio[len(audio) - fade :] * fade_out + noise[:fade] * fade_in
    return np.concatenate([audio[: len(audio) - fade], mixed, noise[fade:]]).astype(np.float32)


# --- the replay ------------------------------------------------------------------------------------

Scorer = Callable[[np.ndarray], tuple[float, float]]
"""The turn model as the replay asks it: audio → (probability complete, seconds the call took)."""


def timed(model: TurnModel) -> Scorer:
    def score(audio: np.ndarray) -> tuple[float, float]:
        started = time.perf_counter()
        probability = model.complete_probability(audio)
        return probability, time.perf_counter() - started

    return score


class CachedScorer:
    """A scorer that asks the model once per distinct audio and answers again with the same
    probability and the call time first measured (for sweeps over policies)."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._known: dict[tuple[int, str], tuple[float, float]] = {}

    def __call__(self, audio: np.ndarray) -> tuple[float, float]:
        key = (len(audio), hashlib.sha1(np.ascontiguousarray(audio).tobytes()).hexdigest())
        if key not in self._known:
            self._known[key] = self._scorer(audio)
        return self._known[key]


@dataclass(frozen=True)
class TurnCall:
    at_s: float  # input time of the pause the model was asked at
    probability: float
    seconds: float
    decision: str


@dataclass(frozen=True)
class Closure:
    """An utterance the segmenter closed (or rejected)."""

    start_s: float  # its voiced span
    end_s: float
    input_s: float  # input time its end was confirmed
    model_s: float  # the turn model's call time, when the model's "complete" closed it
    reason: str

    @property
    def confirmed_s(self) -> float:
        return self.input_s + self.model_s


@dataclass
class ReplayRun:
    starts: list[float] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    calls: list[TurnCall] = field(default_factory=list)


def replay(
    scored: Iterable[tuple[np.ndarray, float]],
    segmenter: Segmenter,
    scorer: Scorer | None = None,
    policy: TurnPolicy | None = None,
) -> ReplayRun:
    """Scored frames through `segmenter`, flushed at the end; with a `scorer`, the turn model is
    asked at every pause the segmenter offers and `policy`'s decision applied at once."""
    run = ReplayRun()
    for frame, probability in scored:
        for event in segmenter.push(frame, probability):
            _record(run, segmenter, event, 0.0)
            if isinstance(event, SpeechPaused) and scorer is not None:
                _judge(run, segmenter, event, scorer, policy or TurnPolicy())
    for event in segmenter.flush():
        _record(run, segmenter, event, 0.0)
    return run


def _judge(run: ReplayRun, segmenter: Segmenter, paused: SpeechPaused, scorer: Scorer, policy: TurnPolicy) -> None:
    probability, seconds = scorer(paused.audio)
    decision = policy.decide(probability)
    run.calls.append(TurnCall(segmenter.now, probability, seconds, decision))
    for event in apply_turn(segmenter, paused.utt, decision, policy):
        _record(run, segmenter, event, seconds)


def _record(run: ReplayRun, segmenter: Segmenter, event: object, model_s: float) -> None:
    if isinstance(event, SpeechStarted):
        run.starts.append(event.t)
    elif isinstance(event, SpeechEnded):
        run.closures.append(Closure(event.start, event.end, segmenter.now, model_s, event.reason))


# --- scoring -----------------------------------------------------------------------------------------


def outcome(case: TurnCase, run: ReplayRun) -> dict[str, Any]:
    """What one replay made of a case: cut before its end (an utterance with question speech in
    it closed before the question's true end: the question was split), else how long after the
    true end its end was confirmed."""
    question = [c for c in run.closures if c.end_s > case.start_s and c.start_s < case.end_s]
    cuts = [c for c in question if c.input_s < case.end_s]
    final = next((c for c in question if c.input_s >= case.end_s), None)
    to_end = None if cuts or final is None else final.confirmed_s - case.end_s
    return {
        "cut_early": bool(cuts),
        "cut_at_s": round(cuts[0].input_s, 3) if cuts else None,
        "to_end_s": None if to_end is None else round(to_end, 3),
        "utterances": len(question),
        "closed_by_model": final is not None and final.model_s > 0,
        "calls": [
            {
                "at_s": round(call.at_s, 3),
                "probability": round(call.probability, 4),
                "seconds": round(call.seconds, 4),
                "decision": call.decision,
            }
            for call in run.calls
        ],
    }


def case_entry(case: TurnCase, fixed: ReplayRun, learned: ReplayRun) -> dict[str, Any]:
    return {
        "id": case.id,
        "kind": case.kind,
        "voice": case.voice,
        "file": case.file,
        "text": case.text,
        "end_s": case.end_s,
        "pause_start_s": case.pause_start_s,
        "pause_s": case.pause_s,
        "fixed": outcome(case, fixed),
        "learned": outcome(case, learned),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def group_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Cases, early cuts and time to confirmed end (p50/p95 over the cases not cut) per mode."""
    result: dict[str, Any] = {"cases": len(entries)}
    for mode in MODES:
        ends = [e[mode]["to_end_s"] for e in entries if e[mode]["to_end_s"] is not None]
        spread = percentiles(ends)
        cut = sum(e[mode]["cut_early"] for e in entries)
        result[mode] = {
            "cut_early": cut,
            "cut_early_rate": round(cut / len(entries), 4) if entries else None,
            "to_end_s_p50": _rounded(spread.get("p50")),
            "to_end_s_p95": _rounded(spread.get("p95")),
            "to_end_s_max": _rounded(max(ends)) if ends else None,
        }
    return result


def _by(entries: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(key(entry), []).append(entry)
    return {name: group_summary(members) for name, members in sorted(groups.items())}


def _pause_ms(entry: dict[str, Any]) -> str:
    return f"{round(entry['pause_s'] * 1000):04d}"


def summarize(
    entries: list[dict[str, Any]], skipped: list[dict[str, str]], settings: Settings, model: str
) -> dict[str, Any]:
    paused = [e for e in entries if e["kind"] == "paused"]
    finished = [e for e in entries if e["kind"] == "finished"]
    calls = [call for e in entries for call in e["learned"]["calls"]]
    seconds = percentiles([call["seconds"] for call in calls])
    return {
        "clock": CLOCK_NOTE,
        "model": model,
        "settings": {
            "vad_engine": settings.vad_engine,
            "vad_threshold": settings.vad_threshold,
            "end_silence_ms": settings.end_silence_ms,
            "speculative_asr_ms": settings.speculative_asr_ms,
            "turn_complete_at": settings.turn_complete_at,
            "turn_incomplete_below": settings.turn_incomplete_below,
            "turn_hold_ms": settings.turn_hold_ms,
        },
        "cases_scored": len(entries),
        "paused": {
            **group_summary(paused),
            "by_pause_ms": _by(paused, _pause_ms),
            "by_voice": _by(paused, lambda e: e["voice"]),
        },
        "finished": {**group_summary(finished), "by_voice": _by(finished, lambda e: e["voice"])},
        "calls": {
            "count": len(calls),
            "seconds_p50": _rounded(seconds.get("p50")),
            "seconds_p95": _rounded(seconds.get("p95")),
            "seconds_max": _rounded(max(call["seconds"] for call in calls)) if calls else None,
        },
        "skipped": skipped,
        "cases": entries,
    }
