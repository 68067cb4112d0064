"""What the terminal shows: loading progress, what is heard and prompted, the latency table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cluelypro.audio.devices import LABELS, RETRY_EVERY_S
from cluelypro.metrics.events import Asr, Device, Error, Interrupted, PlaybackStart, ProviderSkipped, Thesis
from cluelypro.metrics.summary import MILESTONES, QuestionChain, percentiles, stage_summary
from cluelypro.metrics.timeline import Record
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
def loading_progress() -> Iterator[Callable[[str], ProgressCallback]]:
    """Yields a reporter: label → progress callback, one bar per loaded engine."""
    columns = [TextColumn("{task.description:<34}"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=errors, transient=False) as progress:

        def report(label: str) -> ProgressCallback:
            task = progress.add_task(f"loading {label}", total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return update

        yield report


def print_event(record: Record) -> None:
    """Live view of the conversation as the timeline records it. Every text from outside (what
    was heard, theses, engine names, reasons, messages) is printed as it is, never as markup."""
    line = _event_line(record)
    if line is not None:
        console.print(Text.assemble((f"{record.t:7.2f}s", "dim"), " ", *line))


def _event_line(record: Record) -> list[str | tuple[str, str]] | None:
    match record.event:
        case Asr(text=text, ms=ms) if text:
            return ["heard   «", text, "»  ", (f"({ms} ms)", "dim")]
        case Thesis(index=index, text=text):
            return [(f"thesis {index}", "bold green"), " ", text]
        case PlaybackStart(index=1):
            return [("speaking", "cyan"), f" the answer to question {record.q}"]
        case Interrupted(old_q=old_q, new_q=new_q):
            return [(f"new question {new_q} interrupts question {old_q}", "yellow")]
        case Error(stage=stage, message=message):
            return [(f"{stage} error:", "red"), " ", message]
        case ProviderSkipped(stage=stage, provider=provider, reason=reason):
            return [(f"{stage} {provider} skipped", "yellow"), f" ({reason}); the next engine answers"]
        case Device() as device:
            return _device_line(device)
    return None


def _device_line(event: Device) -> list[str | tuple[str, str]]:
    device = f'{LABELS[event.which]} "{event.name}"'
    if event.state == "back":
        return [(f"{device} is back", "green")]
    unheard = "; theses go unheard meanwhile" if event.which == "output" else ""
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
