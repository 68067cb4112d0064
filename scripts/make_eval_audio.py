"""Record the labelled exam questions of `eval/` with RHVoice, as the product speaks.

    PYTHONPATH=src .venv/bin/python scripts/make_eval_audio.py            # what is missing
    PYTHONPATH=src .venv/bin/python scripts/make_eval_audio.py --force    # everything again

For `eval/questions.jsonl` each question gets 2 recordings, for `eval/heldout.jsonl` 1, into
`eval/audio/` and `eval/heldout-audio/`. The (voice, speed) pair of the k-th recording of a set
is VOICES[k % 4], SPEEDS[k % 3]: every 12 recordings go through all 12 pairs, and the two
recordings of a question differ in both voice and speed. Speeds are the product's `tts_speed`
(1.0 is RHVoice's normal rate; `RhVoiceSynthesizer` passes `absolute_rate = speed - 1`).

Each file is 16 kHz mono 16-bit FLAC: the synthesised speech with its own leading and trailing
silence trimmed and 0.3 s of digital silence put around it. The script also writes each
folder's `transcripts.tsv` (file, question, key terms joined by `|`) and the `audio` field of
each jsonl line. Same input, same files: existing recordings are kept unless `--force`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from cluelypro.tts.rhvoice import RhVoiceSynthesizer

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "eval"
VOICES = ("anna", "aleksandr", "elena", "irina")
SPEEDS = (0.9, 1.0, 1.2)
RATE = 16_000
PAD_SECONDS = 0.3
SILENCE_FLOOR = 0.01  # of full scale: what is quieter at either end counts as silence
MAX_FOLDER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class EvalSet:
    jsonl: Path
    audio_dir: Path
    variants: int  # recordings per question


SETS = (
    EvalSet(EVAL / "questions.jsonl", EVAL / "audio", 2),
    EvalSet(EVAL / "heldout.jsonl", EVAL / "heldout-audio", 1),
)


def file_name(question_id: str, voice: str, speed: float) -> str:
    return f"{question_id}-{voice}-{round(speed * 100):03d}.flac"


def plan(rows: list[dict], variants: int) -> list[tuple[dict, str, float, str]]:
    """(question, voice, speed, file name) for every recording of a set, in order."""
    recordings = []
    for index, row in enumerate(rows):
        for variant in range(variants):
            k = index * variants + variant
            voice, speed = VOICES[k % len(VOICES)], SPEEDS[k % len(SPEEDS)]
            recordings.append((row, voice, speed, file_name(row["id"], voice, speed)))
    return recordings


def trimmed_and_padded(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > SILENCE_FLOOR)
    if loud.size == 0:
        raise RuntimeError("RHVoice produced silence")
    margin = int(0.02 * RATE)  # keep the soft onset and release of the first and last sounds
    speech = samples[max(0, loud[0] - margin) : loud[-1] + margin]
    pad = np.zeros(int(PAD_SECONDS * RATE), dtype=np.float32)
    return np.concatenate([pad, speech, pad])


def synthesize(tts: RhVoiceSynthesizer, text: str, voice: str, speed: float) -> np.ndarray:
    tts.use(voice, speed)
    samples = np.concatenate(list(tts.synthesize(text)))
    samples = soxr.resample(samples, tts.sample_rate, RATE, quality="HQ").astype(np.float32)
    return trimmed_and_padded(np.clip(samples, -1.0, 1.0))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> bool:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def make_set(tts: RhVoiceSynthesizer, eval_set: EvalSet, force: bool) -> tuple[int, int]:
    rows = read_rows(eval_set.jsonl)
    recordings = plan(rows, eval_set.variants)
    eval_set.audio_dir.mkdir(parents=True, exist_ok=True)
    made = kept = 0
    for number, (row, voice, speed, name) in enumerate(recordings, 1):
        path = eval_set.audio_dir / name
        prefix = f"[{number:3d}/{len(recordings)}] {eval_set.audio_dir.name}/{name}"
        if path.exists() and not force:
            kept += 1
            print(f"{prefix}: kept", flush=True)
            continue
        audio = synthesize(tts, row["question"], voice, speed)
        partial = path.with_name(f".{name}.partial")
        sf.write(partial, audio, RATE, subtype="PCM_16", format="FLAC")
        partial.replace(path)
        made += 1
        print(f"{prefix}: {len(audio) / RATE:.1f} s, {path.stat().st_size // 1024} KB", flush=True)

    planned = {name for _, _, _, name in recordings}
    for stale in sorted(eval_set.audio_dir.glob("*.flac")):
        if stale.name not in planned:
            stale.unlink()
            print(f"removed {stale.name}: no longer in {eval_set.jsonl.name}")

    by_question: dict[str, list[str]] = {}
    for row, _, _, name in recordings:
        by_question.setdefault(row["id"], []).append(name)
    for row in rows:
        row["audio"] = by_question[row["id"]]
    if write_rows(eval_set.jsonl, rows):
        print(f"updated the audio field of {eval_set.jsonl.relative_to(ROOT)}")

    # No header line: the same layout as ../shared/audio/ru/transcripts.tsv.
    lines = [f"{name}\t{row['question']}\t{'|'.join(row['key_terms'])}\n" for row, _, _, name in recordings]
    (eval_set.audio_dir / "transcripts.tsv").write_text("".join(lines), encoding="utf-8")
    return made, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="synthesise files that exist again")
    args = parser.parse_args()
    start = time.monotonic()
    tts = RhVoiceSynthesizer()
    tts.load()
    missing = [voice for voice in VOICES if voice not in tts.installed_voices()]
    if missing:
        print(f"RHVoice lacks the voices {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        for eval_set in SETS:
            made, kept = make_set(tts, eval_set, args.force)
            size = sum(path.stat().st_size for path in eval_set.audio_dir.iterdir())
            print(f"{eval_set.audio_dir.relative_to(ROOT)}: {made} made, {kept} kept, {size / 1e6:.2f} MB")
            if size > MAX_FOLDER_BYTES:
                print(f"{eval_set.audio_dir} is over {MAX_FOLDER_BYTES // 2**20} MB", file=sys.stderr)
                return 1
    finally:
        tts.close()
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
