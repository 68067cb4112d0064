"""The soak, ten minutes of it (issue 9, "Bounded memory"): scripts/soak.py with the real engines.

The script replays a seeded programme of exam questions, chatter, silence, noise and the user's
own speech through the whole pipeline and reports RSS, asyncio tasks and threads per minute of
input; these tests assert on its JSON report. The two-hour run is the same command without
--minutes; its goal is RSS growth ≤ 50 MB after minute 10.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

MINUTES = 10
WARM_MINUTE = 3
GROWTH_LIMIT_MB = 50.0
"""RSS growth allowed from minute 3 to the end: the issue's two-hour budget. Measured on the old
code with the earpiece track taken out, the engines' native buffers (the Python heap shrank, by
tracemalloc) still grew 36–37 MB from minute 3 until they levelled off at minute 7–8. A leak at
the scale of audio lands above the limit: keeping every input sample would add 3.8 MB a minute
(27 MB in these seven), and the old earpiece track, 3.3–4 MB a minute, failed at +64–66 MB."""
COUNT_SLACK = 2
"""Tasks and threads the end may have above minute 3: the default executor starts its worker
threads lazily, and one may first be needed late."""


@pytest.fixture(scope="module")
def soak(tmp_path_factory) -> dict:
    report = tmp_path_factory.mktemp("soak") / "soak.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", str(MINUTES), "--json", str(report)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert report.exists(), f"the soak wrote no report (exit {run.returncode}):\n{run.stderr[-3000:]}"
    data = json.loads(report.read_text(encoding="utf-8"))
    data["stderr"] = run.stderr
    return data


def warm_sample(soak: dict) -> dict:
    return next(sample for sample in soak["samples"] if sample["minute"] >= WARM_MINUTE)


def test_the_soak_runs_to_its_end_without_an_exception(soak: dict) -> None:
    assert soak["finished"], soak["stderr"][-3000:]
    assert soak["exception"] is None
    assert soak["loop_exceptions"] == []  # e.g. "Task exception was never retrieved"
    assert [sample["minute"] for sample in soak["samples"]] == list(range(1, MINUTES + 1))
    # not vacuous: most questions were heard as questions, most own speech as the user's
    assert soak["questions"]["accepted"] >= soak["programme"]["question"] // 2
    assert soak["speaker_roles"].get("own", 0) >= soak["programme"]["own"] // 2


def test_every_accepted_question_gets_a_thesis_or_an_error(soak: dict) -> None:
    questions = soak["questions"]
    assert questions["neither"] == []
    assert questions["answered"] + questions["error"] == questions["accepted"]
    assert questions["undecided_utterances"] == []


def test_memory_stays_flat_after_warming_up(soak: dict) -> None:
    growth = soak["end"]["rss_mb"] - warm_sample(soak)["rss_mb"]
    assert growth <= GROWTH_LIMIT_MB, f"+{growth:.1f} MB from minute {WARM_MINUTE}; " + curve(soak, "rss_mb")


def test_tasks_and_threads_do_not_pile_up(soak: dict) -> None:
    warm, end = warm_sample(soak), soak["end"]
    for count in ("tasks", "threads", "os_threads"):
        assert end[count] <= warm[count] + COUNT_SLACK, f"{count}: {curve(soak, count)}"
    assert end["leftover_tasks"] == []  # every task is awaited by its owner before the pipeline returns


def curve(soak: dict, count: str) -> str:
    return ", ".join(f"{s['minute']:g}: {s[count]}" for s in soak["samples"]) + f", end: {soak['end'][count]}"
