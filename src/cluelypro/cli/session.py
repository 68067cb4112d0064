"""One run of the prompter for the commands that run it (`demo`, `run`, `serve`): settings,
engines loaded once with progress, the voice profile, one clock and one timeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
from rich.markup import escape

from cluelypro.audio.earpiece import Earpiece
from cluelypro.cli import console as ui
from cluelypro.config import Settings
from cluelypro.engines import Engines, build_engines, load_engines
from cluelypro.metrics.events import Device
from cluelypro.metrics.summary import ChainCollector, QuestionChain
from cluelypro.metrics.timeline import Clock, Timeline
from cluelypro.pipeline.pipeline import Pipeline
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.speaker.profiles import VoiceProfile, active_profile_name, check_compatible, load_profile


class Session:
    """One run of the pipeline: engines loaded once, one clock, one timeline."""

    def __init__(self, settings: Settings, fast: bool, events: Path | None, embedder: bool = False) -> None:
        """`embedder`: load the speaker embedder even without a voice profile (to enrol one)."""
        self.settings = settings
        self.clock = Clock(fast=fast)
        self.profile = _voice_profile(settings)
        self.engines: Engines = build_engines(settings, speaker_gate=embedder or self.profile is not None)
        if self.profile is not None:  # refuse another embedder's profile before minutes of loading
            check_compatible(self.profile, self.engines.embedder)
        self.timeline = Timeline(events)
        self.timeline.subscribe(ui.print_event)
        self.chains = ChainCollector()
        self.timeline.subscribe(self.chains)
        self.startup_s: float | None = None
        self.gate: SpeakerGate | None = None

    def load(self) -> None:
        with ui.loading_progress() as report:
            self.startup_s = load_engines(self.engines, report)
        ui.print_left_out(self.engines.left_out)
        if self.profile is not None:
            assert self.engines.embedder is not None, "built with the speaker gate"
            self.gate = SpeakerGate(self.engines.embedder, self.profile, self.settings.voice_threshold)
            ui.errors.print(f"voice profile [bold]{escape(self.profile.name)}[/], threshold {self.gate.threshold:.2f}")
        else:
            ui.errors.print(
                "[yellow]warning:[/] no voice profile — every voice counts as the other speaker; "
                "record yours with `cluelypro enroll`"
            )
        ui.errors.print(f"[green]ready[/] in {self.startup_s:.1f} s")

    def on_device(self, which: str, state: str, name: str) -> None:
        """A sound device was lost or is back: an event on the timeline (and a console line)."""
        self.timeline.emit(Device(which, state, name), self.clock.input_now())

    def run(
        self, source: AsyncIterator[np.ndarray], earpiece: Earpiece, beside: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Run the pipeline on `source`; `beside` (a device's watch) runs along until it ends."""
        pipeline = Pipeline(self.settings, self.engines, self.clock, self.timeline, earpiece, self.gate)
        try:
            asyncio.run(_alongside(pipeline.run(source), beside) if beside else pipeline.run(source))
        finally:
            earpiece.close()
            self.timeline.close()
            self.engines.close()

    def summarize(self) -> list[QuestionChain]:
        chains = self.chains.chains
        ui.print_summary(chains, ui.peak_rss_mb(), self.startup_s)
        return chains


async def _alongside(main: Awaitable[None], companion: Callable[[], Awaitable[None]]) -> None:
    """Await `main` with `companion` running beside it; a companion that fails ends both."""
    tasks = [asyncio.ensure_future(main), asyncio.ensure_future(companion())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _voice_profile(settings: Settings) -> VoiceProfile | None:
    name = settings.voice_profile or active_profile_name()
    return load_profile(name) if name else None
