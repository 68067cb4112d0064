"""Build the end-of-turn set of `eval/turn/` (issue 14): questions paused in the middle, and whole ones.

    PYTHONPATH=src .venv/bin/python scripts/make_turn_set.py            # what is missing
    PYTHONPATH=src .venv/bin/python scripts/make_turn_set.py --force    # everything again

Writes `eval/turn/cases.jsonl` (the manifest `cluelypro eval turn` reads) and the recordings of
`eval/turn/audio/`. Four kinds of case:

- paused, RHVoice: PAUSED_QUESTIONS, each said whole by RHVoice (the product's synthesiser, as
  scripts/make_eval_audio.py drives it), so that the words before the pause keep the prosody of a
  sentence that goes on; the silence RHVoice leaves at the comma marked «|» is then made exactly
  300, 500, 700 or 900 ms long (digital silence put in, or taken out, in its middle). 12 questions
  × 2 recordings: the k-th uses pause PAUSES_MS[k % 4], voice VOICES[(k + k // 4) % 4] and speed
  SPEEDS[k % 3], so each pause length has 6 cases, and the two recordings of a question differ in
  voice, speed and pause.
- paused, real speech: each Golos clip of ../shared/audio/ru with a pause of its own background
  (noise of the level and spectrum of its quietest stretches) put in at a word boundary (GOLOS),
  so that with the words' own silence there the pause is 300, 500, 700 or 900 ms (PAUSES_MS[i % 4]
  for the i-th clip). Not stored: the manifest names the shared clip and the splice, and
  `eval turn` makes the pause at replay time (cluelypro.eval.turn.splice_pause).
- finished, RHVoice: every recording of eval/audio/ (the 51 questions × 2, all four voices),
  named in place, not copied.
- finished, real speech: the Golos clips as they are.

Times in the manifest are those of the audio as replayed. For RHVoice the question runs from its
first to its last sample louder than SILENCE_FLOOR (the floor make_eval_audio trims at); the
pause, from the last such sample before it to the first after it. For Golos the start, end and
split points are labelled by hand (GOLOS, from the 10 ms energy envelope against the clip's
background, and ASR of the two halves to check the word boundary). Every case is replayed with at
least 2 s of its own background after the end (`eval turn` appends it). Deterministic: the same
bytes again with --force.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from cluelypro.tts.rhvoice import RhVoiceSynthesizer
from make_eval_audio import RATE, SILENCE_FLOOR, SPEEDS, VOICES, plan, read_rows, synthesize

ROOT = Path(__file__).resolve().parents[1]
TURN = ROOT / "eval" / "turn"
AUDIO = TURN / "audio"
MANIFEST = TURN / "cases.jsonl"
QUESTIONS = ROOT / "eval" / "questions.jsonl"
SHARED_RU = ROOT.parent / "shared" / "audio" / "ru"
SHARED_FROM_TURN = "../../../shared/audio/ru"  # ../shared/audio/ru from the project root
PAUSES_MS = (300, 500, 700, 900)
MIN_GAP_S = 0.02  # a silence RHVoice leaves between words: at least this long under SILENCE_FLOOR
MAX_FOLDER_BYTES = 2 * 1024 * 1024
KEY_ORDER = (
    "id", "file", "kind", "voice", "speed", "start_s", "end_s", "pause_start_s", "pause_s", "splice", "text",
    "before_pause",
)  # fmt: skip

# «|» marks the pause: always at a comma or colon, where RHVoice leaves a silence of its own.
PAUSED_QUESTIONS = (
    ("sky", "Скажите, | почему небо голубое?"),
    ("photosynthesis", "Объясните, пожалуйста, | как работает фотосинтез."),
    ("redox", "Расскажите, | что такое окисление и восстановление в химии."),
    ("climate", "Что такое климат, | и от каких факторов он зависит?"),
    ("virus", "Скажите, пожалуйста, | чем отличается вирус от бактерии?"),
    ("seasons", "Как вы думаете, | почему на Земле сменяются времена года?"),
    ("powers", "Назовите ветви власти, | и объясните принцип их разделения."),
    ("offence", "Что такое правонарушение, | и какие виды юридической ответственности вы знаете?"),
    ("serfdom", "Вспомните, | когда и почему в России отменили крепостное право."),
    ("os", "Что такое операционная система, | и зачем она нужна?"),
    ("energy", "Объясните, | в чём заключается закон сохранения энергии."),
    ("peter", "Теперь по истории: | расскажите о реформах Петра Первого."),
)


@dataclass(frozen=True)
class GolosClip:
    file: str
    start_s: float  # first sound of the first word
    end_s: float  # the last word's energy back within ~6 dB of the background (breaths, clicks after it not counted)
    split_s: float  # an energy minimum at a word boundary
    before_pause: str  # the words before it (ASR of the two halves agrees)
    gap: tuple[float, float] | None = None  # the words' own silence around split_s, if any (within ~6 dB of background)


GOLOS = (
    GolosClip("golos_00.wav", 0.48, 3.52, 1.70, "шестьдесят тысяч", (1.59, 1.73)),
    GolosClip("golos_01.wav", 0.13, 3.28, 1.53, "покажи мне на смотрешке"),
    GolosClip("golos_02.wav", 0.30, 2.84, 0.99, "заказать"),
    GolosClip("golos_03.wav", 0.67, 4.40, 3.01, "алиса закажи килограммовый торт", (2.89, 3.03)),
    GolosClip("golos_04.wav", 1.22, 4.73, 2.61, "ищи телеканал", (2.60, 2.65)),
    GolosClip("golos_05.wav", 0.67, 2.42, 1.51, "михаила"),
    GolosClip("golos_06.wav", 0.62, 4.03, 1.35, "любовницы"),
    GolosClip("golos_07.wav", 0.46, 1.74, 0.87, "найди"),
    GolosClip("golos_08.wav", 1.64, 3.43, 2.41, "гетто", (2.29, 2.47)),
    GolosClip("golos_09.wav", 0.45, 2.91, 1.24, "хочу посмотреть"),
)


def loud_span(audio: np.ndarray) -> tuple[int, int]:
    """First and one past the last sample louder than SILENCE_FLOOR."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE_FLOOR)
    return int(loud[0]), int(loud[-1]) + 1


def gaps(audio: np.ndarray) -> list[tuple[int, int]]:
    """(first quiet sample, first loud sample after) of each silence of at least MIN_GAP_S inside the speech."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE_FLOOR)
    steps = np.diff(loud)
    return [(int(loud[i]) + 1, int(loud[i + 1])) for i in np.flatnonzero(steps > MIN_GAP_S * RATE)]


def speech_seconds(audio: np.ndarray) -> float:
    first, last = loud_span(audio)
    return (last - first) / RATE


def paused_recording(tts: RhVoiceSynthesizer, text: str, voice: str, speed: float, pause_ms: int) -> dict:
    """The question said whole, its silence at «|» made `pause_ms` long: audio and labels."""
    before, after = (part.strip() for part in text.split("|"))
    whole = as_stored(synthesize(tts, f"{before} {after}", voice, speed))  # labels from the 16-bit samples
    # Where RHVoice paused: the silence that best fits the two halves said alone.
    first, last = loud_span(whole)
    before_s = speech_seconds(synthesize(tts, before, voice, speed))
    after_s = speech_seconds(synthesize(tts, after, voice, speed))

    def misfit(gap: tuple[int, int]) -> float:
        return abs((gap[0] - first) / RATE - before_s) + abs((last - gap[1]) / RATE - after_s)

    candidates = gaps(whole)
    if not candidates:
        raise RuntimeError(f"{voice}: RHVoice left no silence in «{text}»")
    gap = min(candidates, key=misfit)
    if misfit(gap) > 0.4:
        raise RuntimeError(f"{voice}: no silence of «{text}» where «|» is (best misfit {misfit(gap):.2f} s)")
    middle = (gap[0] + gap[1]) // 2
    change = round(pause_ms / 1000 * RATE) - (gap[1] - gap[0])
    if change >= 0:
        audio = np.concatenate([whole[:middle], np.zeros(change, np.float32), whole[middle:]])
    else:
        cut_from = middle + change // 2  # -change samples out of the middle of the silence
        audio = np.concatenate([whole[:cut_from], whole[cut_from - change :]])
    pause_start = gap[0]
    if (pause_start, pause_start + round(pause_ms / 1000 * RATE)) not in gaps(audio):
        raise RuntimeError(f"{voice}: the pause of «{text}» did not come out {pause_ms} ms long")
    start, end = loud_span(audio)
    return {
        "audio": audio,
        "start_s": round(start / RATE, 5),
        "end_s": round(end / RATE, 5),
        "pause_start_s": round(pause_start / RATE, 5),
        "pause_s": pause_ms / 1000,
        "before_pause": before,
        "text": f"{before} {after}",
    }


def paused_plan() -> list[tuple[str, str, str, float, int]]:
    """(case id, text with «|», voice, speed, pause ms) of every paused RHVoice case, in order."""
    cases = []
    for k in range(2 * len(PAUSED_QUESTIONS)):
        name, text = PAUSED_QUESTIONS[k // 2]
        voice, speed, pause = VOICES[(k + k // 4) % len(VOICES)], SPEEDS[k % len(SPEEDS)], PAUSES_MS[k % 4]
        cases.append((f"{name}-{voice}-{round(speed * 100):03d}-p{pause}", text, voice, speed, pause))
    return cases


def as_stored(audio: np.ndarray) -> np.ndarray:
    """`audio` as it reads back from a 16-bit FLAC file."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, RATE, subtype="PCM_16", format="FLAC")
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def write_flac(path: Path, audio: np.ndarray) -> None:
    partial = path.with_name(f".{path.name}.partial")
    sf.write(partial, audio, RATE, subtype="PCM_16", format="FLAC")
    partial.replace(path)


def paused_rhvoice_cases(tts: RhVoiceSynthesizer, force: bool) -> list[dict]:
    cases = []
    AUDIO.mkdir(parents=True, exist_ok=True)
    planned = paused_plan()
    for number, (case_id, text, voice, speed, pause) in enumerate(planned, 1):
        path = AUDIO / f"{case_id}.flac"
        made = paused_recording(tts, text, voice, speed, pause)
        if force or not path.exists():
            write_flac(path, made["audio"])
        if not np.array_equal(sf.read(path, dtype="float32")[0], made["audio"]):
            raise RuntimeError(f"{path.name} holds other audio than its labels describe: run with --force")
        print(f"[{number:2d}/{len(planned)}] {path.relative_to(ROOT)}: pause at {made['pause_start_s']:.2f} s")
        cases.append(
            {
                "id": case_id,
                "file": f"audio/{path.name}",
                "kind": "paused",
                "voice": voice,
                "speed": speed,
                **{key: made[key] for key in ("start_s", "end_s", "pause_start_s", "pause_s")},
                "text": made["text"],
                "before_pause": made["before_pause"],
            }
        )
    keep = {f"{case_id}.flac" for case_id, *_ in planned}
    for stale in sorted(AUDIO.glob("*.flac")):
        if stale.name not in keep:
            stale.unlink()
            print(f"removed {stale.name}: no longer planned")
    return cases


def golos_texts() -> dict[str, str]:
    lines = (SHARED_RU / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t")[:2] for line in lines if line.strip())


def golos_cases() -> list[dict]:
    texts = golos_texts()
    paused, finished = [], []
    for index, clip in enumerate(GOLOS):
        if not (SHARED_RU / clip.file).is_file():
            raise RuntimeError(f"{SHARED_RU / clip.file} is missing")
        pause = PAUSES_MS[index % 4] / 1000
        gap_start, gap_end = clip.gap or (clip.split_s, clip.split_s)
        insert = round(pause - (gap_end - gap_start), 4)  # with the words' own silence, the pause is `pause`
        stem = clip.file.removesuffix(".wav")
        common = {"file": f"{SHARED_FROM_TURN}/{clip.file}", "voice": "golos", "start_s": clip.start_s}
        paused.append(
            {
                "id": f"{stem}-p{PAUSES_MS[index % 4]}",
                **common,
                "kind": "paused",
                "end_s": round(clip.end_s + insert, 4),
                "pause_start_s": gap_start,
                "pause_s": pause,
                "splice": {"at_s": clip.split_s, "insert_s": insert},
                "text": texts[clip.file],
                "before_pause": clip.before_pause,
            }
        )
        finished.append({"id": stem, **common, "kind": "finished", "end_s": clip.end_s, "text": texts[clip.file]})
    return paused + finished


def finished_rhvoice_cases() -> list[dict]:
    cases = []
    for row, voice, speed, name in plan(read_rows(QUESTIONS), 2):
        audio, rate = sf.read(ROOT / "eval" / "audio" / name, dtype="float32")
        assert rate == RATE, name
        start, end = loud_span(audio)
        cases.append(
            {
                "id": name.removesuffix(".flac"),
                "file": f"../audio/{name}",
                "kind": "finished",
                "voice": voice,
                "speed": speed,
                "start_s": round(start / RATE, 5),
                "end_s": round(end / RATE, 5),
                "text": row["question"],
            }
        )
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="write recordings that exist again")
    args = parser.parse_args()
    started = time.monotonic()
    tts = RhVoiceSynthesizer()
    tts.load()
    try:
        paused = paused_rhvoice_cases(tts, args.force)
    finally:
        tts.close()
    golos = golos_cases()
    cases = [*paused, *(c for c in golos if c["kind"] == "paused")]
    cases += [*finished_rhvoice_cases(), *(c for c in golos if c["kind"] == "finished")]
    ordered = [{key: case[key] for key in KEY_ORDER if key in case} for case in cases]
    MANIFEST.write_text("".join(json.dumps(case, ensure_ascii=False) + "\n" for case in ordered), encoding="utf-8")
    size = sum(path.stat().st_size for path in AUDIO.iterdir())
    counts = {kind: sum(case["kind"] == kind for case in cases) for kind in ("paused", "finished")}
    print(f"{MANIFEST.relative_to(ROOT)}: {counts['paused']} paused, {counts['finished']} finished cases")
    print(f"{AUDIO.relative_to(ROOT)}: {size / 1e6:.2f} MB; done in {time.monotonic() - started:.1f} s")
    if size > MAX_FOLDER_BYTES:
        print(f"{AUDIO} is over {MAX_FOLDER_BYTES // 2**20} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
