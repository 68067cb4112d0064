"""`cluelypro doctor`: which devices, models, keys and engines are usable here, and what to fix."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from cluelypro.cli import console as ui
from cluelypro.config import SAMPLE_RATE, Settings
from cluelypro.pipeline.fallback import describe

PROBE_QUESTION = "Что такое фотосинтез?"
EXIT_NOT_USABLE = 2


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    ok: bool | None  # None: not configured, which is fine (a cloud engine without its key)
    detail: str


MARKS = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]–[/]"}


def register_doctor_command(
    app: typer.Typer, guarded: Callable[[Callable[[], int]], None], settings_factory: Callable[..., Settings]
) -> None:
    @app.command()
    def doctor(
        probe: Annotated[
            bool, typer.Option("--probe", help="also send each cloud engine one small real request")
        ] = False,
    ) -> None:
        """Check sound devices, embedded models, API keys and every configured engine; say what to fix."""

        def body() -> int:
            settings = settings_factory()
            checks = [
                *_device_checks(),
                *_voice_checks(settings),
                *_key_checks(settings),
                *model_checks(settings),
                *_engine_checks(settings, probe),
            ]
            ui.console.print(_table(checks))
            embedded_ok = all(c.ok for c in checks if c.name.startswith("embedded"))
            if not embedded_ok:
                ui.fail("an embedded engine cannot run: fix the lines marked ✗ (`make setup` installs them)")
                return EXIT_NOT_USABLE
            ui.console.print("[green]the offline prompter can run[/]; engines marked – or ✗ are skipped at start")
            return 0

        guarded(body)


def _table(checks: list[Check]) -> Table:
    table = Table(title="cluelypro doctor", title_justify="left")
    for column in ("", "area", "what", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(MARKS[check.ok], check.area, escape(check.name), escape(check.detail))
    return table


def _device_checks() -> list[Check]:
    from cluelypro.audio.devices import DeviceError, check_device

    checks = []
    for kind, use in (("input", "live `run` listens to it"), ("output", "live `run` speaks into it")):
        try:
            check_device(None, kind)
            checks.append(Check("audio", f"default {kind} device", True, use))
        except DeviceError as error:
            checks.append(
                Check("audio", f"default {kind} device", False, f"{error}; `run --input FILE` works without one")
            )
    return checks


def _voice_checks(settings: Settings) -> list[Check]:
    """The speaker gate: an active voice profile, and the embedder it needs."""
    from cluelypro.engines import make_embedder
    from cluelypro.speaker.profiles import ProfileError, active_profile_name, load_profile

    name = settings.voice_profile or active_profile_name()
    if name is None:
        return [
            Check("voice", "voice profile", None, "none: every voice counts as the other speaker; `cluelypro enroll`")
        ]
    try:
        profile = load_profile(name)
    except ProfileError as error:
        return [Check("voice", f"voice profile {name}", False, str(error))]
    embedder = make_embedder(settings.speaker_engine)
    check = _engine_check("voice", f"embedded ({settings.speaker_engine})", embedder, probe=False)
    return [Check("voice", f"voice profile {profile.name}", True, f"made by {profile.embedder}"), check]


def _key_checks(settings: Settings) -> list[Check]:
    """Whether each key is set — never its value."""
    checks = [
        Check("key", name, True, "set") if value else Check("key", name, None, "not set: its engines are skipped")
        for name, value in settings.api_keys().items()
    ]
    path = settings.google_application_credentials
    if path is None:
        checks.append(Check("key", "GOOGLE_APPLICATION_CREDENTIALS", None, "not set: Google TTS is skipped"))
    else:
        checks.append(
            Check(
                "key",
                "GOOGLE_APPLICATION_CREDENTIALS",
                path.is_file(),
                "file found" if path.is_file() else f"no file {path}",
            )
        )
    return checks


def model_checks(settings: Settings) -> list[Check]:
    """The models pulled with `cluelypro models pull`: where each is, and whether `run` uses it."""
    from cluelypro.cli.models import in_use
    from cluelypro.models import store
    from cluelypro.models.catalogue import CATALOGUE

    checks = []
    for model in CATALOGUE:
        manifest = store.pulled(model) if model.pullable else None
        if manifest is None:
            continue
        use = "in use" if in_use(model, settings) else f"not in use (`cluelypro models use {model.name}`)"
        trust = "; digest recorded on first download" if manifest.trusted_on_first_download else ""
        checks.append(Check("model", f"pulled {model.name}", True, f"{store.model_dir(model)}; {use}{trust}"))
    if not checks:
        checks.append(Check("model", "pulled models", None, "none: `cluelypro models list` shows stronger ones"))
    return checks


def _engine_checks(settings: Settings, probe: bool) -> list[Check]:
    from cluelypro.engine_names import EMBEDDED, STAGES
    from cluelypro.engines import LeftOut, chain_members

    checks = []
    for stage in STAGES:
        for name, member in chain_members(settings, stage):
            label = f"embedded ({name})" if name == EMBEDDED[stage] else name
            if isinstance(member, LeftOut):
                checks.append(Check(stage.upper(), label, None if "not set" in member.reason else False, member.reason))
            else:
                checks.append(_engine_check(stage, label, member, probe))
    return checks


def _engine_check(stage: str, label: str, engine: Any, probe: bool) -> Check:
    started = time.monotonic()
    try:
        engine.load()
        detail = f"{engine.name}: loaded in {time.monotonic() - started:.1f} s"
        if probe and getattr(engine, "remote", False):
            detail = f"{engine.name}: answered in {_probe(stage, engine):.2f} s"
        return Check(stage.upper(), label, True, detail)
    except Exception as error:  # any reason an engine cannot run is a line of the report
        return Check(stage.upper(), label, False, describe(error))
    finally:
        close = getattr(engine, "close", None)
        if close:
            close()


def _probe(stage: str, engine) -> float:
    """One small real request; seconds to the first output."""
    from cluelypro.llm.prompts import thesis_messages

    started = time.monotonic()
    if stage == "llm":
        next(iter(engine.stream(thesis_messages(PROBE_QUESTION), 8)))
    elif stage == "tts":
        next(iter(engine.synthesize("Проверка связи.")))
    else:
        tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
        engine.transcribe(tone)
    return time.monotonic() - started
