"""Benchmark results: p50/p95 per stage, the rich tables, the JSON and the latency waterfall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table

from cluelypro.bench.baseline import BASELINE_STAGES
from cluelypro.bench.runner import RecordingResult
from cluelypro.config import Settings
from cluelypro.metrics.summary import MILESTONE_LABELS, MILESTONES, percentiles
from cluelypro.private_files import open_private


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def stats(values: list[float | None]) -> dict[str, float | None]:
    """p50 and p95 of the values measured (None: not measured in that run)."""
    found = percentiles([value for value in values if value is not None])
    return {"p50": _round(found.get("p50")), "p95": _round(found.get("p95"))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _stage_stats(runs: list, names: list[str]) -> dict[str, dict[str, float | None]]:
    return {name: stats([run.offsets[name] for run in runs if name in run.offsets]) for name in names}


def summarize(
    results: list[RecordingResult],
    startup_s: float,
    rss_peak_mb: float | None,
    settings: Settings,
    repeat: int,
    baseline: str | None,
) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready dict (statistics over answered runs only)."""
    stage_names = list(MILESTONE_LABELS)
    runs = [run for result in results for run in result.runs]
    answered = [run for run in runs if run.answered]
    summary: dict[str, Any] = {
        "voice_to_voice": stats([run.voice_to_voice for run in answered]),
        "stages": _stage_stats(answered, stage_names),
        "thesis1_stall": stats([run.stall for run in answered if run.stall is not None]),
        "baseline": None,
        "baseline_ratio": None,
        "rss_peak_mb": None if rss_peak_mb is None else round(rss_peak_mb, 1),
        "startup_s": round(startup_s, 3),
        "recordings": len(results),
        "repeat": repeat,
        "runs": len(runs),
        "answered_runs": len(answered),
        "no_answer": {
            "runs": len(runs) - len(answered),
            "recordings": [r.recording.name for r in results if not any(run.answered for run in r.runs)],
        },
        "settings": settings.model_dump(mode="json"),
        "per_recording": [_recording_summary(result, stage_names) for result in results],
    }
    if baseline is not None:
        sequential = [run for result in results for run in result.baseline if run.answered]
        summary["baseline"] = {
            "mode": baseline,
            "voice_to_voice": stats([run.voice_to_voice for run in sequential]),
            "stages": _stage_stats(sequential, [name for name, _ in BASELINE_STAGES]),
            "answered_runs": len(sequential),
        }
        pipelined_p50 = summary["voice_to_voice"]["p50"]
        sequential_p50 = summary["baseline"]["voice_to_voice"]["p50"]
        if pipelined_p50 and sequential_p50:
            summary["baseline_ratio"] = round(sequential_p50 / pipelined_p50, 3)
    return summary


def _recording_summary(result: RecordingResult, stage_names: list[str]) -> dict[str, Any]:
    answered = [run for run in result.runs if run.answered]
    entry = {
        "name": result.recording.name,
        "source": result.recording.source,
        "duration_s": round(result.recording.duration_s, 3),
        "heard": result.heard,
        "answered_runs": len(answered),
        "voice_to_voice": stats([run.voice_to_voice for run in answered]),
        "stages": _stage_stats(answered, stage_names),
        "runs": [
            {
                "heard": run.heard,
                "stop": run.stop,
                "voice_to_voice": _round(run.voice_to_voice),
                "stages": {k: _round(v) for k, v in run.offsets.items()},
                "thesis1_stall": run.stall,
                "theses": run.theses,
            }
            for run in result.runs
        ],
    }
    if result.baseline:
        sequential = [run for run in result.baseline if run.answered]
        entry["baseline"] = {
            "voice_to_voice": stats([run.voice_to_voice for run in sequential]),
            "runs": [
                {
                    "heard": run.heard,
                    "voice_to_voice": _round(run.voice_to_voice),
                    "stages": {k: _round(v) for k, v in run.offsets.items()},
                    "theses": run.theses,
                }
                for run in result.baseline
            ],
        }
    return entry


def write_json(summary: dict[str, Any], path: Path) -> None:
    """Write the summary (it holds what was heard and prompted) as a private file."""
    with open_private(path, "w") as handle:
        handle.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")


# --- tables ------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _p50_p95(values: dict[str, float | None], repeat: int) -> str:
    if values["p50"] is None:
        return "—"
    return _s(values["p50"]) if repeat == 1 else f"{_s(values['p50'])} / {_s(values['p95'])}"


def recordings_table(summary: dict[str, Any], heard: bool = True) -> Table:
    """One row per recording; `heard=False` leaves out the transcripts (a narrow terminal)."""
    repeat = summary["repeat"]
    title = "Per recording: seconds after end of speech" + (
        "" if repeat == 1 else f" (v2v p50 / p95, stages p50, over {repeat} runs)"
    )
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )  # fits 80 columns
    table.add_column("recording", no_wrap=True)
    if heard:
        table.add_column("heard", min_width=16, max_width=48)
    table.add_column("v2v", justify="right", no_wrap=True)
    for milestone in MILESTONES[:-1]:
        table.add_column(milestone.short, justify="right", no_wrap=True)
    with_baseline = summary["baseline"] is not None
    if with_baseline:
        table.add_column("seq. v2v", justify="right", no_wrap=True)
    for entry in summary["per_recording"]:
        if entry["answered_runs"]:
            v2v = _p50_p95(entry["voice_to_voice"], repeat)
            if entry["answered_runs"] < len(entry["runs"]):
                v2v += f" ({entry['answered_runs']}/{len(entry['runs'])})"
        else:
            v2v = "[yellow]no answer[/]"
        row = [entry["name"]]
        if heard:
            text = escape(entry["heard"]) or "[dim](nothing heard)[/]"
            row.append(text if entry["answered_runs"] else f"{text} [dim]— {entry['runs'][0]['stop']}[/]")
        row.append(v2v)
        row += [_s(entry["stages"][name]["p50"]) for name, _, _ in MILESTONES[:-1]]
        if with_baseline:
            row.append(_p50_p95(entry["baseline"]["voice_to_voice"], repeat))
        table.add_row(*row)
    return table


def overall_table(summary: dict[str, Any]) -> Table:
    runs = f"{summary['answered_runs']} answered runs of {summary['runs']}"
    table = Table(title=f"Overall: seconds after end of speech ({runs})", title_justify="left")
    table.add_column("stage", justify="left")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for name, _, _ in MILESTONES[:-1]:
        table.add_row(MILESTONE_LABELS[name], _s(summary["stages"][name]["p50"]), _s(summary["stages"][name]["p95"]))
    v2v = summary["voice_to_voice"]
    table.add_row("[bold]voice-to-voice (pipelined)[/]", f"[bold]{_s(v2v['p50'])}[/]", f"[bold]{_s(v2v['p95'])}[/]")
    stall = summary["thesis1_stall"]
    table.add_row("thesis 1 playback stalled (waiting for audio)", _s(stall["p50"]), _s(stall["p95"]))
    if baseline := summary["baseline"]:
        table.add_section()
        for name, label in BASELINE_STAGES[:-1]:
            table.add_row(
                f"{baseline['mode']}: {label}", _s(baseline["stages"][name]["p50"]), _s(baseline["stages"][name]["p95"])
            )
        seq = baseline["voice_to_voice"]
        table.add_row(
            f"[bold]voice-to-voice ({baseline['mode']})[/]", f"[bold]{_s(seq['p50'])}[/]", f"[bold]{_s(seq['p95'])}[/]"
        )
        ratio = summary["baseline_ratio"]
        table.add_row(
            "[bold]ratio sequential / pipelined (p50)[/]", "—" if ratio is None else f"[bold]{ratio:.2f}×[/]", ""
        )
    table.add_section()
    no_answer = summary["no_answer"]
    table.add_row("no answer (left out)", f"{no_answer['runs']} runs", f"{len(no_answer['recordings'])} recordings")
    rss = summary["rss_peak_mb"]
    table.add_row("peak RSS", "—" if rss is None else f"{rss:.0f} MB", "")
    table.add_row("start-up (engines ready)", f"{summary['startup_s']:.1f} s", "")
    return table


# --- the waterfall -----------------------------------------------------------------------------


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailableError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None


def plot_waterfall(summary: dict[str, Any], path: Path) -> None:
    """Top: median milestones as a waterfall (pipelined, then the baseline). Bottom: one row per
    answered recording, each stage a segment from the previous milestone to its own."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(MILESTONE_LABELS)
    palette = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    colors = dict(zip(names, palette, strict=True))  # one colour per milestone
    # In time order: with early speech, playback starts before thesis 1 is complete.
    timed = sorted(
        (n for n in names if summary["stages"][n]["p50"] is not None),
        key=lambda n: round(summary["stages"][n]["p50"], 3),
    )
    medians = [(MILESTONE_LABELS[n], summary["stages"][n]["p50"], colors[n]) for n in timed]
    pipelined = len(medians)
    if summary["baseline"]:
        seq_colors = dict(
            zip([n for n, _ in BASELINE_STAGES], ("tab:blue", "tab:orange", "tab:green", "tab:purple"), strict=True)
        )
        medians += [
            (f"{summary['baseline']['mode']}: {label}", summary["baseline"]["stages"][n]["p50"], seq_colors[n])
            for n, label in BASELINE_STAGES
        ]
    rows = [e for e in summary["per_recording"] if e["answered_runs"]]
    figure, (top, bottom) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(11, 3 + 0.35 * (len(medians) + len(rows))),
        gridspec_kw={"height_ratios": [max(1, len(medians)), max(1, len(rows))]},
    )
    _median_waterfall(top, medians, pipelined)
    _recording_waterfall(bottom, rows, names, colors)
    figure.tight_layout()
    with open_private(path, "wb") as handle:  # its rows are named after the recordings
        figure.savefig(handle, format=path.suffix[1:] or "png", dpi=110)
    plt.close(figure)


def _median_waterfall(axes, medians: list[tuple[str, float | None, Any]], pipelined: int) -> None:
    previous = 0.0
    for row, (_label, value, color) in enumerate(medians):
        if row == pipelined:
            previous = 0.0  # the baseline starts again at the end of speech
        if value is None:
            continue
        left, right = sorted((previous, value))
        axes.barh(row, max(right - left, 0.01), left=left, color=color, alpha=0.85)
        axes.text(value, row, f" {value:.2f} s", va="center", fontsize=8)
        previous = value
    axes.set_yticks(range(len(medians)), [label for label, _, _ in medians], fontsize=8)
    axes.invert_yaxis()
    if len(medians) > pipelined:
        axes.axhline(pipelined - 0.5, color="grey", linewidth=0.8)
    axes.set_title("Latency waterfall, seconds after end of speech: medians (top), per recording (bottom)")


def _recording_waterfall(axes, rows: list[dict[str, Any]], names: list[str], colors: dict[str, Any]) -> None:
    labelled: set[str] = set()

    def label(name: str) -> str | None:
        if name in labelled:
            return None
        labelled.add(name)
        return name

    for row, entry in enumerate(rows):
        # In time order (a stage may end before the one listed above it); within 1 ms, in list order.
        milestones = sorted(
            (round(entry["stages"][n]["p50"], 3), i, n)
            for i, n in enumerate(names)
            if entry["stages"][n]["p50"] is not None
        )
        previous = 0.0
        for value, _, name in milestones:
            axes.barh(row, value - previous, left=previous, color=colors[name], label=label(MILESTONE_LABELS[name]))
            previous = value
        if (seq := entry.get("baseline", {}).get("voice_to_voice", {}).get("p50")) is not None:
            axes.plot([seq], [row], marker="x", color="black", linestyle="none", label=label("sequential v2v"))
    axes.set_yticks(range(len(rows)), [e["name"] for e in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds after end of speech")
    if rows:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axes.text(0.5, 0.5, "no recording was answered", transform=axes.transAxes, ha="center")
