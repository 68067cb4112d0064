"""`cluelypro serve`: the prompter with its web dashboard, and the browser as microphone and
earpiece (SPEC §4; the API and the security model are in cluelypro/web)."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from cluelypro.audio.devices import DeviceError, check_device, parse_device
from cluelypro.audio.io import MIXED_DOWN, open_input, shown
from cluelypro.cli import console as ui
from cluelypro.cli.session import Session
from cluelypro.config import Settings

if TYPE_CHECKING:
    from cluelypro.audio.earpiece import TrackEarpiece
    from cluelypro.audio.loopback import SystemDevice
    from cluelypro.web.runtime import Route

Option = typer.Option
AUDIO_MODES = ("local", "browser")


def register_serve_command(
    app: typer.Typer, guarded: Callable[[Callable[[], int]], None], settings_factory: Callable[..., Settings]
) -> None:
    @app.command()
    def serve(
        host: Annotated[
            str, Option(help="address to listen on; any but loopback needs the printed token")
        ] = "127.0.0.1",
        port: Annotated[int, Option(help="TCP port")] = 8765,
        audio: Annotated[
            str, Option(help="local: this computer's microphone and earpiece; browser: the page's")
        ] = "local",
        input: Annotated[
            Path | None, Option("--input", "-i", help="replay this recording in real time as the audio source")
        ] = None,
        output: Annotated[Path | None, Option("--output", "-o", help="with --input: write the earpiece track")] = None,
        events: Annotated[Path | None, Option(help="also write the event timeline as JSON lines")] = None,
        voice_profile: Annotated[str | None, Option(help="voice profile to use instead of the active one")] = None,
        input_device: Annotated[str | None, Option(help="microphone (local mode): index or name part")] = None,
        output_device: Annotated[str | None, Option(help="earpiece (local mode): index or name part")] = None,
        call: Annotated[
            bool, Option("--call", help="online call (local mode): the other side from the system audio")
        ] = False,
        system_audio: Annotated[
            str | None, Option(help="with --call: the call's source (Linux: a sink or its .monitor)")
        ] = None,
    ) -> None:
        """Serve the live dashboard (and the browser client) while the prompter listens; Ctrl+C stops."""

        def body() -> int:
            from cluelypro.web.app import create_app
            from cluelypro.web.runtime import (
                QuietServer,
                WebPrompter,
                input_route,
                local_route,
                serve_until_interrupted,
                server_config,
            )
            from cluelypro.web.security import Policy

            if audio not in AUDIO_MODES:
                ui.fail(f"--audio must be local or browser, not {audio!r}")
                return 2
            settings = settings_factory(voice_profile=voice_profile)
            recording = open_input(input) if input is not None else None  # fail before loading
            if recording is not None and recording.channel is not MIXED_DOWN:
                ui.console.print(f"input has {recording.channels} channels; using channel {recording.channel + 1}")
            devices = parse_device(input_device), parse_device(output_device)
            system = None
            if call or system_audio is not None:
                if recording is not None or audio != "local":
                    raise DeviceError("--call listens to a live call with this computer's devices: --audio local")
                devices, system = _call_devices(*devices, system_audio)
            if recording is None and audio == "local":
                try:
                    check_device(devices[0], "input")
                    check_device(devices[1], "output")
                except DeviceError as error:
                    raise DeviceError(f"{error}; or use the page's microphone: --audio browser") from None
            listener = _bind(host, port)  # a port in use fails now, not after minutes of loading
            policy = Policy.for_host(host)
            session = Session(settings, fast=False, events=events, embedder=True)
            session.call = system is not None

            def local() -> Route:
                return local_route(session.clock, session.on_device, *devices, system=system)

            track: TrackEarpiece | None = None
            try:
                session.load()
                route: Route | None = None  # browser
                if recording is not None:
                    route = input_route(recording, session.clock, output)
                    track = route.earpiece  # type: ignore[assignment]
                elif audio == "local":
                    route = local()
                prompter = WebPrompter(
                    settings,
                    session.engines,
                    session.clock,
                    session.timeline,
                    route,
                    chains=session.chains,
                    gate=session.gate,
                    local=local,
                )
                server = QuietServer(server_config(create_app(prompter, policy), host, port, policy.certificate))
                _announce(policy.url(host, port), policy.token is not None, recording is not None)
                asyncio.run(serve_until_interrupted(prompter, server, [listener]))
            except KeyboardInterrupt:
                pass
            finally:
                listener.close()
                session.timeline.close()
                session.engines.close()
            ui.console.print("stopped")
            if track is not None and recording is not None and output is not None:
                track.write(output, recording.rate)
                ui.console.print(f"earpiece track written to {escape(shown(output))}")
            session.summarize()
            return 0

        guarded(body)


def _call_devices(
    input_device: str | int | None, output_device: str | int | None, system_audio: str | None
) -> tuple[tuple[str | int | None, str | int | None], SystemDevice]:
    """Call mode's devices, checked before loading: Pulse names on Linux, the call's source, and
    no earpiece that plays into the call (as `run --call`)."""
    from cluelypro.audio.loopback import pulse_device, refuse_own_output, system_device

    devices = pulse_device(input_device, "input"), pulse_device(output_device, "output")
    system = system_device(system_audio)
    refuse_own_output(system, devices[1])
    return devices, system


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise DeviceError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port") from None
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


def _announce(url: str, with_token: bool, replaying: bool) -> None:
    ui.console.print(f"open [bold]{escape(url)}[/]")
    if with_token:
        import segno

        ui.console.print("the token in this address is the key to the microphone: share it with no one")
        segno.make(url, error="m").terminal(out=sys.stdout, compact=True)
    ui.console.print("replaying the recording — press Ctrl+C to stop" if replaying else "press Ctrl+C to stop")
