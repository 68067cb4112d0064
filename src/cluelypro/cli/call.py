"""`cluelypro run --call`: an online call — the other side from the system output, the user
from the microphone (audio/call.py), one pipeline with a lane for each (pipeline/pipeline.py)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from cluelypro.audio.call import CallSources
from cluelypro.audio.devices import check_device
from cluelypro.audio.earpiece import DeviceEarpiece
from cluelypro.audio.loopback import pulse_device, refuse_own_output, system_device
from cluelypro.cli import console as ui
from cluelypro.cli.session import Session
from cluelypro.config import Settings


def run_call(
    settings: Settings,
    events: Path | None,
    input_device: str | int | None,
    output_device: str | int | None,
    system_audio: str | None,
) -> int:
    """Listen to a call until Ctrl+C. Every device is checked — and an earpiece that would play
    into the call's own loopback refused — before minutes of model loading."""
    named = input_device  # as the user named it (Linux: a Pulse source opened through PortAudio's `pulse`)
    input_device = pulse_device(input_device, "input")
    output_device = pulse_device(output_device, "output")
    check_device(input_device, "input")
    system = system_device(system_audio)
    refuse_own_output(system, output_device)
    session = Session(settings, fast=False, events=events)
    session.call = True
    earpiece = DeviceEarpiece(session.clock, output_device, on_device=session.on_device)
    session.load()
    sources = CallSources(session.clock, input_device, system, session.on_device)
    microphone, call = (escape(str(name)) for name in sources.names)
    if named != input_device:
        microphone = escape(str(named))
    ui.console.print(f'call mode: the other side from "{call}", you from the microphone "{microphone}"')
    ui.console.print("listening — press Ctrl+C to stop")
    try:
        session.run(sources.microphone(), earpiece, beside=earpiece.watch, keys=True, system=sources.system())
    except KeyboardInterrupt:
        ui.console.print("stopped")
    finally:
        sources.close()
    session.summarize()
    return 0
