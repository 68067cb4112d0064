"""`cluelypro models list|pull|use`: the embedded and the recommended stronger models, downloading
one from the Hugging Face hub (verified, atomic) and pointing the settings at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cluelypro.cli import console as ui
from cluelypro.config import Settings
from cluelypro.models import store
from cluelypro.models.catalogue import CATALOGUE, CatalogueModel, UnknownModelError, find
from cluelypro.packaged import ModelUnavailableError

EXIT_USER_ERROR = 2
LOCAL_ENGINES = ("local", "gigaam", "piper", "rhvoice", "sapi", "say")  # the engines that run models on this machine
WIDE = 200  # the catalogue table's columns, unwrapped, in a pipe too


def _model(name: str) -> CatalogueModel:
    try:
        return find(name)
    except UnknownModelError as error:
        raise ModelUnavailableError(str(error)) from None


def in_use(model: CatalogueModel, settings: Settings) -> bool:
    """Whether `run` would use this model before any other local one of its stage (cloud engines
    with a key may still come first in the chain)."""
    from cluelypro.engines import chain_names

    first_local = next(name for name in chain_names(settings, model.stage) if name in LOCAL_ENGINES)
    value = {
        ("asr", "local"): settings.asr_model,
        ("asr", "gigaam"): settings.gigaam_model,
        ("llm", "local"): settings.llm_model,
        ("tts", "rhvoice"): settings.tts_voice,
        ("tts", "piper"): settings.piper_voice,
    }[(model.stage, model.engine)]
    names = {model.name, str(store.local_path(model))}
    if model.embedded:
        names.add(model.setting)
    return first_local == model.engine and value in names


def status(model: CatalogueModel, settings: Settings | None) -> str:
    parts = []
    if model.embedded:
        parts.append("embedded")
    manifest = store.pulled(model) if model.pullable else None
    if manifest is not None:
        parts.append("pulled" + (" (digest recorded on first download)" if manifest.trusted_on_first_download else ""))
    if settings is not None and in_use(model, settings):
        parts.append("in use")
    return ", ".join(parts) or "not pulled"


def _size(mb: int) -> str:
    return "—" if mb == 0 else (f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb} MB")


def catalogue_table(settings: Settings | None) -> Table:
    table = Table(title="cluelypro models", title_justify="left", show_lines=False)
    for column in ("name", "stage", "size", "RAM", "speed (laptop CPU)", "licence", "languages", "hashes", "status"):
        table.add_column(column)
    for model in CATALOGUE:
        hashes = "—" if not model.pullable else ("pinned" if model.pinned else "not known: --trust-first-download")
        table.add_row(
            escape(model.name),
            f"{model.stage.upper()} {model.engine}",
            _size(model.size_mb),
            f"≈{_size(model.ram_mb)}",
            escape(model.speed),
            escape(model.licence),
            escape(model.languages),
            hashes,
            escape(status(model, settings)),
        )
    return table


def register_models_command(
    app: typer.Typer, guarded: Callable[[Callable[[], int]], None], settings_factory: Callable[..., Settings]
) -> None:
    models_app = typer.Typer(
        help="Embedded and stronger models: list them, pull one from the Hugging Face hub, use it.",
        no_args_is_help=True,
    )
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_models() -> None:
        """Every model with size, RAM, speed, licence, languages, and whether it is pulled or in use."""

        def body() -> int:
            wide = Console(file=ui.console.file, width=max(WIDE, ui.console.width), highlight=False, soft_wrap=True)
            wide.print(catalogue_table(settings_factory()))
            ui.console.print(
                f"[dim]pulled models live in {escape(str(store.models_dir()))}; speeds marked (measured) were "
                "measured on a 2-core machine, the others and all RAM figures are estimates; the quality of "
                "models that could not be downloaded here is not claimed[/]"
            )
            return 0

        guarded(body)

    @models_app.command()
    def pull(
        name: Annotated[str, typer.Argument(help="a name from `cluelypro models list`")],
        trust_first_download: Annotated[
            bool,
            typer.Option(
                "--trust-first-download",
                help="accept files whose SHA-256 this project does not know, and record their digest for later pulls",
            ),
        ] = False,
        force: Annotated[bool, typer.Option("--force", help="download again even if it is pulled")] = False,
    ) -> None:
        """Download a model from the Hugging Face hub (HF_ENDPOINT honoured), verify every file's SHA-256,
        and put it in place atomically."""

        def body() -> int:
            model = _model(name)
            if not force and model.pullable and store.pulled(model) is not None:
                ui.console.print(f"{escape(model.name)} is already pulled into {escape(str(store.model_dir(model)))}")
                ui.console.print(f"(`--force` downloads it again; `cluelypro models use {escape(model.name)}` uses it)")
                return 0
            folder = store.pull(model, trust_first_download, report=lambda line: ui.console.print(escape(line)))
            ui.console.print(f"[green]pulled {escape(model.name)}[/] into {escape(str(folder))}")
            ui.console.print(f"make `run` use it: cluelypro models use {escape(model.name)}")
            return 0

        guarded(body)

    @models_app.command()
    def use(name: Annotated[str, typer.Argument(help="a name from `cluelypro models list`")]) -> None:
        """Write the settings that make `run` use this model to cluelypro.toml (other keys are kept)."""

        def body() -> int:
            from cluelypro.models.settings_file import settings_for, write_settings

            model = _model(name)
            if not model.embedded and store.pulled(model) is None:
                raise ModelUnavailableError(f"{model.name} is not pulled; run `cluelypro models pull {model.name}`")
            updates = settings_for(model, settings_factory())
            path = write_settings(updates)
            written = ", ".join(f"{key} = {value!r}" for key, value in updates.items())
            ui.console.print(
                f"[green]{escape(model.name)} is in use[/]: wrote {escape(written)} to {escape(str(path))}"
            )
            if not in_use(model, settings_factory()):
                ui.errors.print(
                    "[yellow]warning:[/] the environment or .env sets these keys too and wins over cluelypro.toml; "
                    "unset them there for this to take effect"
                )
            return 0

        guarded(body)
