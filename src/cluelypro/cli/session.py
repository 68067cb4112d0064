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
from cluelypro.cli.keys import TerminalKeys, keys_available
from cluelypro.config import Settings
from cluelypro.engines import Engines, build_engines, load_engines
from cluelypro.metrics.events import Device
from cluelypro.metrics.summary import ChainCollector, QuestionChain
from cluelypro.metrics.timeline import Clock, Timeline
from cluelypro.pipeline.controls import ControlledEarpiece
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
        self.call = False  # call mode: the source decides the role, no profile is needed

    def load(self) -> None:
        with ui.loading_progress() as report:
            self.startup_s = load_engines(self.engines, report)
        ui.print_left_out(self.engines.left_out)
        if self.profile is not None:
            assert self.engines.embedder is not None, "built with the speaker gate"
            self.gate = SpeakerGate(self.engines.embedder, self.profile, self.settings.voice_threshold)
            ui.errors.print(f"voice profile [bold]{escape(self.profile.name)}[/], threshold {self.gate.threshold:.2f}")
        elif self.call:
            ui.errors.print("no voice profile: the call is the other side, the microphone is you")
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
        self,
        source: AsyncIterator[np.ndarray],
        earpiece: Earpiece,
        beside: Callable[[], Awaitable[None]] | None = None,
        keys: bool = False,
        system: AsyncIterator[np.ndarray] | None = None,
    ) -> None:
        """Run the pipeline on `source`; `beside` (a device's watch) runs along until it ends. With
        `keys`, in real time, keypresses on the terminal mute, repeat and skip (cli.keys). With
        `system` (call mode), `source` is the microphone and `system` the other side of the call."""
        controlled = ControlledEarpiece(earpiece) if keys and not self.clock.fast and keys_available() else None
        pipeline = Pipeline(self.settings, self.engines, self.clock, self.timeline, controlled or earpiece, self.gate)
        companions = [beside] if beside else []
        if controlled is not None:
            companions.append(TerminalKeys(pipeline, controlled, self.clock.input_now).listen)
        try:
            main = pipeline.run(source, system)
            asyncio.run(_alongside(main, *companions) if companions else main)
        finally:
            earpiece.close()
            self.timeline.close()
            self.engines.close()

    def summarize(self) -> list[QuestionChain]:
        chains = self.chains.chains
        ui.print_summary(chains, ui.peak_rss_mb(), self.startup_s)
        return chains


async def _alongside(main: Awaitable[None], *companions: Callable[[], Awaitable[None]]) -> None:
    """Await `main` with `companions` running beside it; a companion that fails ends them all."""
    tasks = [asyncio.ensure_future(main), *(asyncio.ensure_future(companion()) for companion in companions)]
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
