"""`cluelypro doctor`: which devices, models, keys and engines are usable here, and what to fix."""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
                *platform_checks(settings),
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


# --- what this platform needs besides the Python packages ---------------------------------------

COMPILER_FIX = {
    "linux": "a C/C++ compiler: sudo apt-get install build-essential",
    "win32": "Visual Studio Build Tools with the “Desktop development with C++” workload "
    "(https://visualstudio.microsoft.com/visual-cpp-build-tools/); pip fetches CMake itself",
    "darwin": "the Command Line Tools: xcode-select --install",
}
PORTAUDIO_FIX = {
    "linux": "sudo apt-get install libportaudio2 (scripts/setup.sh does)",
    "win32": "PortAudio ships in sounddevice's wheel: pip install --force-reinstall sounddevice",
    "darwin": "PortAudio ships in sounddevice's wheel: pip install --force-reinstall sounddevice",
}
PULSE_FIX = (
    "call mode (`run --call`) captures the output's monitor source through a PulseAudio or "
    "PipeWire-pulse server: sudo apt-get install pulseaudio-utils, and pipewire-pulse (or pulseaudio)"
)
BLACKHOLE_FIX = (
    "call mode (`run --call`) before macOS 14.2 needs a loopback device: brew install blackhole-2ch, then in "
    "Audio MIDI Setup make a Multi-Output Device of your speakers and BlackHole 2ch, and "
    "`run --call --system-audio BlackHole` (macOS 14.2 or newer records a Core Audio process tap instead)"
)
CATAP_FIX = "pip install catap (Python 3.11+)"


def current_platform() -> str:
    """ "linux", "win32" or "darwin" (another Unix counts as Linux)."""
    return next((name for name in ("win32", "darwin") if sys.platform.startswith(name)), "linux")


@dataclass
class SystemProbe:
    """The operating system calls doctor's platform checks make; tests replace them."""

    which: Callable[[str], str | None] = shutil.which
    has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None
    run: Callable[[list[str]], tuple[int, str]] = lambda command: _run(command)
    path_exists: Callable[[Path], bool] = Path.exists
    import_sounddevice: Callable[[], Any] = lambda: importlib.import_module("sounddevice")
    mac_version: Callable[[], str] = lambda: platform.mac_ver()[0]


def _run(command: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as error:
        return -1, str(error)
    return done.returncode, done.stdout + done.stderr


def platform_checks(settings: Settings, probe: SystemProbe | None = None) -> list[Check]:
    """What this platform needs outside pip — each missing piece with the exact fix."""
    probe = probe or SystemProbe()
    system = current_platform()
    checks = [_portaudio_check(system, probe), *_llama_checks(system, probe)]
    if system == "linux":
        checks += [_rhvoice_libraries_check(probe), _pulse_check(probe)]
    elif system == "win32":
        checks += [_system_voice_check(settings, system), Check("system", "call mode", True, _WASAPI)]
    else:
        checks += [_system_voice_check(settings, system), _macos_capture_check(probe)]
    return checks


_WASAPI = "captures the output through WASAPI loopback: nothing to install"


def _portaudio_check(system: str, probe: SystemProbe) -> Check:
    try:
        probe.import_sounddevice()
    except OSError as error:  # sounddevice raises OSError when it finds no PortAudio library
        return Check("system", "PortAudio", False, f"{error}; {PORTAUDIO_FIX[system]}")
    except ImportError:
        return Check("system", "PortAudio", False, "sounddevice is not installed; pip install sounddevice")
    return Check("system", "PortAudio", True, "found (sounddevice)")


def _llama_checks(system: str, probe: SystemProbe) -> list[Check]:
    """llama-cpp-python runs the embedded LLM; where it is missing, the compiler its build needs."""
    if probe.has_module("llama_cpp"):
        return []
    compiler = _compiler(system, probe)
    state = f"a compiler is here ({compiler})" if compiler else f"needs {COMPILER_FIX[system]}"
    return [
        Check(
            "system",
            "llama-cpp-python",
            False,
            "not installed: `python scripts/dev.py setup` installs a prebuilt wheel where pip finds one, "
            f"else builds it from source, which {state}",
        )
    ]


def _compiler(system: str, probe: SystemProbe) -> str | None:
    if system == "win32":
        installer = Path(os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)"))
        vswhere = installer / "Microsoft Visual Studio" / "Installer" / "vswhere.exe"
        if not probe.path_exists(vswhere):
            return None
        code, output = probe.run(
            [str(vswhere), "-latest", "-products", "*", "-requires",
             "Microsoft.VisualStudio.Component.VC.Tools.x86.x64", "-property", "displayName"]
        )  # fmt: skip
        return (output.strip() or None) if code == 0 else None
    if system == "darwin":
        code, output = probe.run(["xcode-select", "-p"])
        return output.strip() if code == 0 else None
    return next((found for name in ("c++", "g++", "clang++") if (found := probe.which(name))), None)


def _rhvoice_libraries_check(probe: SystemProbe) -> Check:
    from cluelypro.tts.rhvoice import bundled_library_dir

    override = os.environ.get("RHVOICELIBPATH")
    bundled = bundled_library_dir() / "libRHVoice.so.5"
    if override:
        found = probe.path_exists(Path(override))
        where = f"RHVOICELIBPATH={override}"
    elif probe.path_exists(bundled):
        found, where = True, str(bundled.parent)
    else:
        system_copy = ctypes.util.find_library("RHVoice")
        found, where = system_copy is not None, system_copy or ""
    if found:
        return Check("system", "RHVoice libraries", True, where)
    return Check(
        "system",
        "RHVoice libraries",
        False,
        f"not found ({where or bundled.parent}): `make setup` (scripts/setup.sh) unpacks Debian's librhvoice5, "
        "librhvoice-core7 and libsonic0 into .venv/opt/rhvoice/lib; or apt-get install librhvoice5 (non-free)",
    )


def _pulse_check(probe: SystemProbe) -> Check:
    if probe.which("pactl") is None:
        return Check("system", "call mode", None, f"pactl is missing; {PULSE_FIX}")
    code, output = probe.run(["pactl", "info"])
    if code != 0:
        reason = " ".join(output.split())[:120] or f"exit code {code}"
        return Check("system", "call mode", None, f"no sound server answers `pactl info` ({reason}); {PULSE_FIX}")
    fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    server = fields.get("Server Name", "a sound server").strip()
    sink = fields.get("Default Sink", "").strip()
    detail = f"{server} answers" + (f"; the system source is {sink}.monitor" if sink else "")
    return Check("system", "call mode", True, detail)


def _system_voice_check(settings: Settings, system: str) -> Check:
    """The Russian voice of the operating system that the embedded TTS engine speaks with."""
    from cluelypro.packaged import ModelUnavailableError

    engine: Any
    if system == "win32":
        from cluelypro.tts.sapi_tts import SapiSynthesizer

        engine = SapiSynthesizer(settings.sapi_voice)
    else:
        from cluelypro.tts.say_tts import SaySynthesizer

        engine = SaySynthesizer(settings.say_voice)
    try:
        engine.load()
    except ModelUnavailableError as error:
        return Check("system", "Russian system voice", False, str(error))
    except Exception as error:  # the OS call itself failed: its own words
        return Check("system", "Russian system voice", False, describe(error))
    return Check("system", "Russian system voice", True, engine.name)


def _macos_capture_check(probe: SystemProbe) -> Check:
    """14.2 or newer: the process tap (catap installed; the permission cannot be read, so it is
    explained). Older: a BlackHole device, found by name."""
    from cluelypro.audio.process_tap import PERMISSION, tap_supported

    version = probe.mac_version()
    try:
        names = [device["name"] for device in probe.import_sounddevice().query_devices()]
    except Exception:  # no PortAudio: its own line says so
        names = []
    blackhole = next((name for name in names if "blackhole" in name.lower()), None)
    if tap_supported(version):
        permission = f"the tap needs the System Audio Recording permission: {PERMISSION}"
        if not probe.has_module("catap"):
            detail = f"records a Core Audio process tap through catap, which is not installed: {CATAP_FIX}"
            return Check("system", "call mode", None, f"macOS {version}: call mode {detail}; {permission}")
        tap = "call mode records a Core Audio process tap of every app's sound but the prompter's"
        also = f"; {blackhole} is here too (--system-audio BlackHole)" if blackhole else ""
        return Check("system", "call mode", True, f"macOS {version}: {tap}; {permission}{also}")
    if blackhole:
        return Check("system", "call mode", True, f"macOS {version}: loopback device {blackhole}")
    return Check("system", "call mode", None, f"macOS {version or '?'}: {BLACKHOLE_FIX}")


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
    from cluelypro.engine_names import STAGES, embedded_engine
    from cluelypro.engines import LeftOut, chain_members

    checks = []
    for stage in STAGES:
        for name, member in chain_members(settings, stage):
            label = f"embedded ({name})" if name == embedded_engine(stage) else name
            if isinstance(member, LeftOut):
                optional = "not set" in member.reason or "not pulled" in member.reason
                checks.append(Check(stage.upper(), label, None if optional else False, member.reason))
            else:
                checks.append(_engine_check(stage, label, member, probe))
    return checks + _turn_check(settings)


def _turn_check(settings: Settings) -> list[Check]:
    """The learned end of turn, where TURN_MODEL asks for it (off: nothing to check)."""
    from cluelypro.engines import make_turn_model

    model = make_turn_model(settings)
    if model is None:
        return []
    check = _engine_check("turn", "embedded (smart-turn)", model, probe=False)
    if check.ok is False:  # not fatal: the fixed END_SILENCE_MS window ends questions instead
        return [Check(check.area, check.name, None, f"{check.detail}; until then END_SILENCE_MS ends questions")]
    return [check]


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
