"""What the terminal shows: loading progress, what is heard and prompted, the latency table."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cluelypro.audio.devices import LABELS, RETRY_EVERY_S
from cluelypro.metrics.summary import MILESTONES, QuestionChain, percentiles, stage_summary
from cluelypro.metrics.timeline import Event
from cluelypro.packaged import ProgressCallback
from cluelypro.secrets import redact

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(redact(message))}")


def print_left_out(left_out) -> None:
    """One line per configured engine that cannot be used here, and why."""
    for item in left_out:
        errors.print(f"[dim]{item.stage.upper()} engine {escape(item.engine)} skipped: {escape(item.reason)}[/]")


@contextmanager
def loading_progress() -> Iterator[callable]:
    """Yields a reporter: label → progress callback, one bar per loaded engine."""
    columns = [TextColumn("{task.description:<34}"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=errors, transient=False) as progress:

        def report(label: str) -> ProgressCallback:
            task = progress.add_task(f"loading {label}", total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return update

        yield report


def print_event(event: Event) -> None:
    """Live view of the conversation as the timeline records it. Every text from outside (what
    was heard, theses, engine names, reasons, messages) is printed as it is, never as markup."""
    line = _event_line(event)
    if line is not None:
        console.print(Text.assemble((f"{event['t']:7.2f}s", "dim"), " ", *line))


def _event_line(event: Event) -> list[str | tuple[str, str]] | None:
    name = event["event"]
    if name == "asr" and event["text"]:
        return ["heard   «", str(event["text"]), "»  ", (f"({event['ms']} ms)", "dim")]
    if name == "thesis":
        return [(f"thesis {event['index']}", "bold green"), " ", str(event["text"])]
    if name == "playback_start" and event["index"] == 1:
        return [("speaking", "cyan"), f" the answer to question {event['q']}"]
    if name == "interrupted":
        return [(f"new question {event['new_q']} interrupts question {event['old_q']}", "yellow")]
    if name == "error":
        return [(f"{event['stage']} error:", "red"), " ", str(event["message"])]
    if name == "provider_skipped":
        return [
            (f"{event['stage']} {event['provider']} skipped", "yellow"),
            f" ({event['reason']}); the next engine answers",
        ]
    if name == "device":
        return _device_line(event)
    return None


def _device_line(event: Event) -> list[str | tuple[str, str]]:
    device = f'{LABELS[event["which"]]} "{event["name"]}"'
    if event["state"] == "back":
        return [(f"{device} is back", "green")]
    unheard = "; theses go unheard meanwhile" if event["which"] == "output" else ""
    return [(f"{device} lost", "bold red"), f" — retrying every {RETRY_EVERY_S:g} s{unheard}"]


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def latency_table(chains: list[QuestionChain]) -> Table:
    table = Table(title="Latency after end of speech (s)", title_justify="left")
    table.add_column("stage")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    summary = stage_summary(chains)
    for name, label, _ in MILESTONES:
        table.add_row(label, _seconds(summary[name].get("p50")), _seconds(summary[name].get("p95")))
    return table


def print_summary(chains: list[QuestionChain], rss_peak_mb: float | None, startup_s: float | None) -> None:
    if not chains:
        console.print("no question was heard")
        return
    per_question = Table(title="Questions", title_justify="left")
    for column in ("q", "question", "theses", "voice-to-voice (s)"):
        per_question.add_column(column)
    for chain in chains:
        per_question.add_row(str(chain.q), Text(chain.text), str(len(chain.theses)), _seconds(chain.voice_to_voice))
    console.print(per_question)
    console.print(latency_table(chains))
    v2v = percentiles([chain.voice_to_voice for chain in chains if chain.voice_to_voice is not None])
    if v2v:
        console.print(f"voice-to-voice p50 {v2v['p50']:.3f} s, p95 {v2v['p95']:.3f} s")
    extras = []
    if startup_s is not None:
        extras.append(f"start-up {startup_s:.1f} s")
    if rss_peak_mb is not None:
        extras.append(f"peak RSS {rss_peak_mb:.0f} MB")
    if extras:
        console.print(", ".join(extras))


def peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)
