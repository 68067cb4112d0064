"""`cluelypro bench`: voice-to-voice latency and per-stage breakdown over a folder of recordings."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cluelypro.audio.io import shown
from cluelypro.bench import peer_pipecat
from cluelypro.bench.baseline import BaselineResult
from cluelypro.bench.corpus import Recording, load_corpus
from cluelypro.bench.runner import DEFAULT_TIMEOUT_S, RunResult, run_bench
from cluelypro.cli import console as ui
from cluelypro.config import Settings

Option = typer.Option
EXIT_PEER_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_NO_ANSWER = 3
WIDE = 150
WIDE_ENOUGH = 110  # columns the per-recording table needs with transcripts


class BaselineMode(str, Enum):
    sequential = "sequential"


class PeerMode(str, Enum):
    pipecat = "pipecat"


def register_bench_command(
    app: typer.Typer, guarded: Callable[[Callable[[], int]], None], settings_factory: Callable[..., Settings]
) -> None:
    @app.command()
    def bench(
        corpus: Annotated[
            Path | None,
            Option(help="folder of recordings (wav/flac/ogg/mp3); default: the exam questions + ../shared/audio/ru"),
        ] = None,
        baseline: Annotated[
            BaselineMode | None,
            Option(help="also run the same engines one after another, no streaming, and print the ratio"),
        ] = None,
        peer: Annotated[
            PeerMode | None,
            Option(
                help="then replay the same recordings through a Pipecat pipeline of the same engines and compare "
                "(needs the peer extra)"
            ),
        ] = None,
        repeat: Annotated[int, Option(min=1, help="replay each recording this many times")] = 1,
        json_path: Annotated[Path | None, Option("--json", help="write the results as JSON")] = None,
        plot: Annotated[Path | None, Option(help="write a latency waterfall PNG (needs matplotlib)")] = None,
        limit: Annotated[int | None, Option(min=1, help="only the first N recordings")] = None,
        timeout: Annotated[
            float, Option(min=1.0, help="give up on a recording this many seconds after its audio ends")
        ] = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Replay recordings in real time and report voice-to-voice latency, per stage, p50/p95."""

        def body() -> int:
            from cluelypro.bench import report

            settings = settings_factory()
            try:  # what is missing fails before minutes of benchmarking
                if plot is not None:
                    report.require_matplotlib()
                if peer is not None:
                    peer_pipecat.require_pipecat()
            except (report.PlotUnavailableError, peer_pipecat.PeerUnavailableError) as error:
                ui.fail(str(error))
                return EXIT_USER_ERROR
            recordings = load_corpus(corpus, limit)  # bad files fail before the models load
            ui.errors.print(
                f"corpus: {len(recordings)} recordings, {sum(r.duration_s for r in recordings):.0f} s of audio"
            )
            summary = _benchmark(settings, recordings, repeat, baseline, timeout)
            peer_failed = None
            if peer is not None:  # after ours, never beside it: two cores
                try:
                    summary["peer"] = _peer_benchmark(settings, recordings, repeat, timeout, summary)
                except peer_pipecat.PeerUnavailableError as error:
                    peer_failed = str(error)
                    summary["peer"] = {"system": peer.value, "error": peer_failed}
            out = _table_console()
            out.print(
                report.recordings_table(summary, heard=out.width >= WIDE_ENOUGH)
            )  # else only in the progress lines
            out.print(report.overall_table(summary))
            if peer is not None and peer_failed is None:
                out.print(peer_pipecat.peer_recordings_table(summary["peer"], repeat, heard=out.width >= WIDE_ENOUGH))
                out.print(peer_pipecat.peer_overall_table(summary["peer"], summary))
            if json_path is not None:
                report.write_json(summary, json_path)
                ui.console.print(f"results written to {escape(shown(json_path))}")
            if plot is not None:
                report.plot_waterfall(summary, plot)
                ui.console.print(f"latency waterfall written to {escape(shown(plot))}")
            if not summary["answered_runs"]:
                ui.fail("no recording got an answer; check that the corpus holds questions, and LLM_MODEL")
                return EXIT_NO_ANSWER
            if peer_failed is not None:
                ui.fail(peer_failed)
                return EXIT_PEER_FAILED
            return 0

        guarded(body)


def _table_console() -> Console:
    """The terminal's console; redirected to a file or a pipe, a wide one instead of 80 columns."""
    if ui.console.is_terminal:
        return ui.console
    return Console(file=ui.console.file, width=WIDE, highlight=False, soft_wrap=True)


def _benchmark(
    settings: Settings, recordings: list[Recording], repeat: int, baseline: BaselineMode | None, timeout: float
) -> dict:
    from cluelypro.bench import report
    from cluelypro.engines import build_engines, load_engines

    engines = build_engines(settings)
    try:
        with ui.loading_progress() as progress:
            startup_s = load_engines(engines, progress)
        ui.errors.print(f"[green]ready[/] in {startup_s:.1f} s")
        total = len(recordings) * repeat
        done = 0

        def show(recording: Recording, attempt: int, run: RunResult, sequential: BaselineResult | None) -> None:
            nonlocal done
            done += 1
            outcome = f"v2v {run.voice_to_voice:.2f} s" if run.answered else f"[yellow]no answer[/] ({run.stop})"
            if sequential is not None:
                outcome += (
                    f", sequential {sequential.voice_to_voice:.2f} s"
                    if sequential.answered
                    else ", sequential: no answer"
                )
            ui.errors.print(f"[{done}/{total}] {escape(recording.name)}  {outcome}  [dim]«{escape(run.heard)}»[/]")

        results = run_bench(recordings, engines, settings, repeat, baseline is not None, timeout, show)
    finally:
        engines.close()
    return report.summarize(
        results, startup_s, ui.peak_rss_mb(), settings, repeat, baseline.value if baseline is not None else None
    )


def _peer_benchmark(settings: Settings, recordings: list[Recording], repeat: int, timeout: float, ours: dict) -> dict:
    """The same recordings × repeat through Pipecat (in a child process), with progress lines."""
    total = len(recordings) * repeat
    done = 0
    ui.errors.print(
        f"peer: Pipecat {peer_pipecat.PIPECAT_VERSION} on the same engines (llama_cpp.server, Whisper, RHVoice)"
    )

    def ready(startup_s: float) -> None:
        ui.errors.print(f"[green]Pipecat ready[/] in {startup_s:.1f} s")

    def show(recording: Recording, attempt: int, run: peer_pipecat.PeerRun) -> None:
        nonlocal done
        done += 1
        outcome = f"v2v {run.voice_to_voice:.2f} s" if run.answered else f"[yellow]no answer[/] ({run.stop})"
        counter = escape(f"[pipecat {done}/{total}]")  # not a style
        ui.errors.print(f"{counter} {escape(recording.name)}  {outcome}  [dim]«{escape(run.heard)}»[/]")

    bench = peer_pipecat.run_peer(recordings, settings, repeat, timeout, ready, show)
    return peer_pipecat.summarize_peer(bench, recordings, ours)
