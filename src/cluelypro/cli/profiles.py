"""`cluelypro enroll` and `cluelypro profiles list|delete|use`: the user's voice profiles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.panel import Panel
from rich.table import Table

from cluelypro.audio.devices import parse_device
from cluelypro.audio.io import read_audio
from cluelypro.audio.sources import record_microphone
from cluelypro.cli import console as ui
from cluelypro.engines import make_embedder
from cluelypro.speaker import profiles
from cluelypro.speaker.enroll import ENROLL_TEXT, build_profile, enrollment_warning
from cluelypro.vad.engines import make_detector

Option = typer.Option


def register_profile_commands(app: typer.Typer, guarded: Callable, settings_factory: Callable) -> None:
    profiles_app = typer.Typer(help="List, delete or choose voice profiles.", no_args_is_help=True)
    app.add_typer(profiles_app, name="profiles")

    @app.command()
    def enroll(
        input: Annotated[
            Path | None, Option("--input", "-i", help="a recording of you reading (instead of the microphone)")
        ] = None,
        seconds: Annotated[float, Option(help="how long to record from the microphone")] = 25.0,
        name: Annotated[str, Option(help="profile name")] = "me",
        input_device: Annotated[str | None, Option(help="microphone: index or name part")] = None,
    ) -> None:
        """Record (or read) your voice and save it as the active voice profile."""

        def body() -> int:
            settings = settings_factory()
            profiles.validate_name(name)
            audio = read_audio(input) if input else _record(seconds, parse_device(input_device))
            embedder = make_embedder(settings.speaker_engine)
            embedder.load()
            profile = build_profile(name, audio, embedder, make_detector(settings.vad_engine))
            path = profiles.save_profile(profile)
            profiles.set_active(name)
            ui.console.print(
                f"profile [bold]{name}[/] saved to {path} and made active: {profile.voiced_seconds:.1f} s of speech; "
                f"own cuts score min {profile.score_min:.2f}, p5 {profile.score_p5:.2f}, "
                f"median {profile.score_median:.2f}; suggested VOICE_THRESHOLD {profile.suggested_threshold:.2f}"
            )
            if warning := enrollment_warning(profile):
                ui.console.print(f"[yellow]warning:[/] {warning}")
            return 0

        guarded(body)

    @profiles_app.command("list")
    def list_profiles() -> None:
        """Show the saved voice profiles; * marks the active one."""

        def body() -> int:
            active = profiles.active_profile_name()
            table = Table(title=f"Voice profiles in {profiles.profiles_dir()}", title_justify="left")
            for column in ("", "name", "embedder", "speech (s)", "threshold", "created"):
                table.add_column(column)
            for profile in profiles.list_profiles():
                table.add_row(
                    "*" if profile.name == active else "",
                    profile.name,
                    profile.embedder,
                    f"{profile.voiced_seconds:.1f}",
                    f"{profile.suggested_threshold:.2f}",
                    profile.created,
                )
            ui.console.print(table if table.row_count else "no voice profiles yet; record one with `cluelypro enroll`")
            return 0

        guarded(body)

    @profiles_app.command("delete")
    def delete(name: str) -> None:
        """Delete a voice profile."""
        guarded(lambda: _then_say(profiles.delete_profile, name, f"profile {name} deleted"))

    @profiles_app.command("use")
    def use(name: str) -> None:
        """Make a voice profile the active one."""
        guarded(lambda: _then_say(profiles.set_active, name, f"profile {name} is now active"))


def _then_say(action: Callable[[str], None], name: str, message: str) -> int:
    action(name)
    ui.console.print(message)
    return 0


def _record(seconds: float, device: str | int | None) -> np.ndarray:
    ui.console.print(Panel(ENROLL_TEXT, title="Read this aloud, at your normal pace"))
    with ui.loading_progress() as report:
        progress = report("recording your voice")
        return asyncio.run(record_microphone(seconds, device, progress))
