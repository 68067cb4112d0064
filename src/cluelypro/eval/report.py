"""`eval` results for people: rich tables for the terminal and a Markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from cluelypro.private_files import open_private
from cluelypro.prompter.speakable import KINDS


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _terms(entry: dict[str, Any]) -> str:
    return f"{len(entry['key_terms_found'])}/{len(entry['key_terms'])}" if entry["key_terms"] else "—"


def _covered(entry: dict[str, Any]) -> str:
    return f"{sum(c is not None for c in entry['facts_covered'])}/{len(entry['facts'])}"


def kinds(entry: dict[str, Any]) -> str:
    return ", ".join(violation["kind"] for violation in entry["violations"]) or "—"


def _violation_counts(summary: dict[str, Any]) -> str:
    return ", ".join(f"{kind} {summary['violations'][kind]}" for kind in KINDS)


# --- rows shared by the terminal and Markdown ---------------------------------------------------


def asr_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["file", "WER", "CER", "key terms", "reference", "hypothesis"]
    rows = [
        [e["file"], _percent(e["wer"]), _percent(e["cer"]), _terms(e), e["reference"], e["hypothesis"]]
        for e in summary["files"]
    ]
    return header, rows


def asr_overall(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("files scored", f"{summary['files_scored']} ({len(summary['skipped'])} skipped)"),
        ("WER (corpus)", _percent(summary["wer"])),
        ("CER (corpus)", _percent(summary["cer"])),
        ("key-term accuracy", _percent(summary["key_term_accuracy"])),
    ]


def answer_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["#", "question", "heard", "theses", "facts", "violations", "first thesis"]
    rows = [
        [
            str(number),
            e["question"],
            "—" if e["heard"] is None else e["heard"],
            str(len(e["theses"])),
            _covered(e),
            kinds(e),
            _seconds(e["first_thesis_s"]),
        ]
        for number, e in enumerate(summary["questions"], 1)
    ]
    return header, rows


def answers_overall(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("questions scored", f"{summary['questions_scored']} ({len(summary['skipped'])} skipped)"),
        ("fact coverage", f"{_percent(summary['fact_coverage'])} ({summary['facts_covered']}/{summary['facts']})"),
        ("questions with a fact", f"{summary['questions_with_a_fact']}/{summary['questions_scored']}"),
        ("violations", _violation_counts(summary)),
        (
            "first thesis p50 / p95",
            f"{_seconds(summary['first_thesis_s_p50'])} / {_seconds(summary['first_thesis_s_p95'])}",
        ),
    ]


def _turn_mode(outcome: dict[str, Any]) -> str:
    if outcome["cut_early"]:
        return f"CUT at {outcome['cut_at_s']:.2f} s"
    return "—" if outcome["to_end_s"] is None else f"+{outcome['to_end_s']:.2f} s"


def _pause(entry: dict[str, Any]) -> str:
    return "—" if entry["pause_s"] is None else f"{round(1000 * entry['pause_s'])} ms"


def _probabilities(entry: dict[str, Any]) -> str:
    return ", ".join(f"{call['probability']:.2f}" for call in entry["learned"]["calls"]) or "—"


def _call_ms(entry: dict[str, Any]) -> str:
    return ", ".join(f"{1000 * call['seconds']:.0f}" for call in entry["learned"]["calls"]) or "—"


def turn_line(entry: dict[str, Any]) -> str:
    """One progress line per case."""
    return (
        f"{entry['id']}  {entry['kind']} {_pause(entry)}  fixed {_turn_mode(entry['fixed'])}  "
        f"learned {_turn_mode(entry['learned'])}  P {_probabilities(entry)}"
    )


def turn_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["case", "kind", "voice", "pause", "fixed", "learned", "P(complete) at pauses", "model ms"]
    rows = [
        [
            e["id"],
            e["kind"],
            e["voice"],
            _pause(e),
            _turn_mode(e["fixed"]),
            _turn_mode(e["learned"]),
            _probabilities(e),
            _call_ms(e),
        ]
        for e in summary["cases"]
    ]
    return header, rows


def _cuts(group: dict[str, Any], mode: str) -> str:
    return f"{group[mode]['cut_early']}/{group['cases']}"


def _spread(group: dict[str, Any], mode: str) -> str:
    p50, p95 = group[mode]["to_end_s_p50"], group[mode]["to_end_s_p95"]
    return "—" if p50 is None else f"{p50:.2f} / {p95:.2f}"


def turn_group_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["group", "cases", "cut early: fixed", "learned", "to end p50 / p95 s: fixed", "learned"]
    groups: list[tuple[str, dict[str, Any]]] = [("paused, all", summary["paused"])]
    groups += [(f"paused, {int(ms)} ms", group) for ms, group in summary["paused"]["by_pause_ms"].items()]
    groups += [(f"paused, {voice}", group) for voice, group in summary["paused"]["by_voice"].items()]
    groups += [("finished, all", summary["finished"])]
    groups += [(f"finished, {voice}", group) for voice, group in summary["finished"]["by_voice"].items()]
    rows = [
        [name, str(g["cases"]), _cuts(g, "fixed"), _cuts(g, "learned"), _spread(g, "fixed"), _spread(g, "learned")]
        for name, g in groups
        if g["cases"]
    ]
    return header, rows


def turn_overall(summary: dict[str, Any]) -> list[tuple[str, str]]:
    paused, finished, calls, settings = summary["paused"], summary["finished"], summary["calls"], summary["settings"]

    def rate(group: dict[str, Any], mode: str) -> str:
        return f"{_cuts(group, mode)} ({_percent(group[mode]['cut_early_rate'])})" if group["cases"] else "—"

    return [
        ("cases scored", f"{summary['cases_scored']} ({len(summary['skipped'])} skipped)"),
        ("paused cut early: fixed window", rate(paused, "fixed")),
        ("paused cut early: turn model", rate(paused, "learned")),
        ("finished cut early: fixed window", rate(finished, "fixed")),
        ("finished cut early: turn model", rate(finished, "learned")),
        ("finished to end p50 / p95: fixed window", _spread(finished, "fixed") + " s"),
        ("finished to end p50 / p95: turn model", _spread(finished, "learned") + " s"),
        ("turn model calls", str(calls["count"])),
        ("turn model call p50 / p95", f"{_seconds(calls['seconds_p50'])} / {_seconds(calls['seconds_p95'])}"),
        (
            "settings",
            f"END_SILENCE_MS {settings['end_silence_ms']}, SPECULATIVE_ASR_MS {settings['speculative_asr_ms']}, "
            f"TURN_COMPLETE_AT {settings['turn_complete_at']}, "
            f"TURN_INCOMPLETE_BELOW {settings['turn_incomplete_below']}, TURN_HOLD_MS {settings['turn_hold_ms']}",
        ),
    ]


# --- the terminal ---------------------------------------------------------------------------------


def rows_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # text from outside is never markup
    return table


def overall_table(title: str, pairs: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in pairs:
        table.add_row(name, Text(value))
    return table


# --- Markdown -------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]


def asr_markdown(summary: dict[str, Any], source: str, engines: str) -> str:
    lines = [f"# ASR quality: {source}", "", f"Engines: {engines}", ""]
    lines += markdown_table(["measure", "value"], [list(pair) for pair in asr_overall(summary)])
    lines += ["", "## Per file", "", *markdown_table(*asr_rows(summary))]
    return "\n".join(lines + _skipped(summary)) + "\n"


def answers_markdown(summary: dict[str, Any], source: str, engines: str) -> str:
    lines = [f"# Answer quality: {source}", "", f"Engines: {engines}", ""]
    lines += markdown_table(["measure", "value"], [list(pair) for pair in answers_overall(summary)])
    lines += ["", "## Per question", "", *markdown_table(*answer_rows(summary)), "", "## Theses", ""]
    for number, entry in enumerate(summary["questions"], 1):
        lines += [f"### {number}. {_cell(entry['question'])}", ""]
        if entry["heard"] is not None:
            lines += [f"Heard ({entry['audio']}): «{_cell(entry['heard'])}»", ""]
        lines += [f"{index}. {_cell(thesis)}" for index, thesis in enumerate(entry["theses"], 1)] or ["(no theses)"]
        missed = [fact[0] for fact, c in zip(entry["facts"], entry["facts_covered"], strict=True) if c is None]
        lines += ["", f"Facts covered {_covered(entry)}" + (f"; missed: {', '.join(missed)}" if missed else "")]
        lines += [
            f"- {v['kind']}"
            + (f" (thesis {v['thesis']})" if v["thesis"] else "")
            + (f": {v['detail']}" if v["detail"] else "")
            for v in entry["violations"]
        ]
        lines.append("")
    return "\n".join(lines + _skipped(summary)) + "\n"


def turn_markdown(summary: dict[str, Any], source: str) -> str:
    lines = [f"# End of turn: {source}", "", f"Turn model: {summary['model']}. {summary['clock']}.", ""]
    lines += markdown_table(["measure", "value"], [list(pair) for pair in turn_overall(summary)])
    lines += ["", "## Per group", "", *markdown_table(*turn_group_rows(summary))]
    lines += ["", "## Per case", "", *markdown_table(*turn_rows(summary))]
    return "\n".join(lines + _skipped(summary)) + "\n"


def _skipped(summary: dict[str, Any]) -> list[str]:
    if not summary["skipped"]:
        return []
    return ["", "## Skipped", "", *(f"- {item['item']}: {item['reason']}" for item in summary["skipped"])]


def write_markdown(text: str, path: Path) -> None:
    """A private file: it holds what was heard and prompted."""
    with open_private(path, "w") as handle:
        handle.write(text)
