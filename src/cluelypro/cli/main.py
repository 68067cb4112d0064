"""`cluelypro` command line: demo and run (SPEC §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.markup import escape

from cluelypro.audio.devices import DeviceError, check_device, parse_device
from cluelypro.audio.earpiece import DeviceEarpiece, TrackEarpiece
from cluelypro.audio.io import (
    MIXED_DOWN,
    AudioInputError,
    in_blocks,
    open_input,
    shown,
    stream_audio,
    to_mono_16k,
    write_audio,
)
from cluelypro.audio.sources import capture_microphone, replay_file
from cluelypro.cli import console as ui
from cluelypro.cli.bench import register_bench_command
from cluelypro.cli.doctor import register_doctor_command
from cluelypro.cli.eval import register_eval_command
from cluelypro.cli.models import register_models_command
from cluelypro.cli.profiles import register_profile_commands
from cluelypro.cli.serve import register_serve_command
from cluelypro.cli.session import Session
from cluelypro.config import SAMPLE_RATE, Settings, SettingsFileError, load_settings, validation_problems
from cluelypro.metrics.summary import QuestionChain
from cluelypro.packaged import ModelUnavailableError
from cluelypro.secrets import RedactingFilter
from cluelypro.speaker.profiles import ProfileError

app = typer.Typer(
    help="CluelyPro — a real-time voice prompter: hears a question, whispers short theses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEMO_QUESTION = "Расскажите, что такое фотосинтез?"
DEMO_ANSWER_SECONDS = 25  # room after the question: theses, their repeats and a deepening round
EXIT_USER_ERROR = 2  # bad input, missing model or device: the message says what to fix
EXIT_NO_ANSWER = 3  # the pipeline ran but produced no theses where some were required

Option = typer.Option


def _print_version(value: bool) -> None:
    if value:
        from cluelypro import __version__

        ui.console.print(f"cluelypro {__version__}")
        raise typer.Exit()


@app.callback()
def _common(
    version: Annotated[
        bool, Option("--version", callback=_print_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    """CluelyPro — a real-time voice prompter: hears a question, whispers short theses."""


def _guarded(action: Callable[[], int]) -> None:
    """Run a command body; user errors end in one line and exit code 2, never a traceback."""
    try:
        code = action()
    except (AudioInputError, ModelUnavailableError, DeviceError, ProfileError, SettingsFileError) as error:
        ui.fail(str(error))
        code = EXIT_USER_ERROR
    except ValidationError as error:
        ui.fail(f"invalid setting — {validation_problems(error)} (check the environment, .env and cluelypro.toml)")
        code = EXIT_USER_ERROR
    raise typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    return load_settings(**overrides)


def _replay(
    session: Session, blocks: Iterable[np.ndarray], length: int, output: Path | None, rate: int, keys: bool = False
) -> list[QuestionChain]:
    """Replay 16 kHz `blocks` (`length` samples) through the session; the earpiece track, aligned
    with them, is kept only when it is to be written to `output` at `rate`. `keys`: see Session.run."""
    with TrackEarpiece(session.clock, length, keep=output is not None) as earpiece:
        session.run(replay_file(blocks, session.clock), earpiece, keys=keys)
        if output is not None:
            earpiece.write(output, rate)
            ui.console.print(f"earpiece track written to {escape(shown(output))}")
    return session.summarize()


@app.command()
def demo(
    question: Annotated[str, Option(help="the examiner's question to synthesise")] = DEMO_QUESTION,
    output: Annotated[Path, Option(help="earpiece track to write")] = Path("earpiece.wav"),
    question_output: Annotated[Path, Option(help="where to save the synthesised question")] = Path("demo_question.wav"),
    events: Annotated[Path | None, Option(help="write the event timeline as JSON lines")] = None,
    fast: Annotated[bool, Option("--fast", help="process as fast as possible instead of in real time")] = False,
    examiner_voice: Annotated[str, Option(help="RHVoice voice of the examiner")] = "aleksandr",
) -> None:
    """Synthesise an examiner's question and run it through the whole offline pipeline."""

    def body() -> int:
        settings = _settings()
        session = Session(settings, fast, events)
        session.load()
        audio = _examiner_recording(question, examiner_voice)
        write_audio(question_output, audio)
        ui.console.print(
            f"examiner ({escape(examiner_voice)}) asks: «{escape(question)}»"
            f" — saved to {escape(shown(question_output))}"
        )
        chains = _replay(session, in_blocks(audio), len(audio), output, SAMPLE_RATE)
        if not any(chain.theses for chain in chains):
            ui.fail("the demo question got no theses; check LLM_MODEL and ASR_MODEL (cluelypro run --help)")
            return EXIT_NO_ANSWER
        return 0

    _guarded(body)


def _examiner_recording(question: str, voice: str) -> np.ndarray:
    """The question in another voice, with room before it and for the answer after it."""
    from cluelypro.engines import examiner_synthesizer

    examiner = examiner_synthesizer(voice)  # RHVoice on Linux, the system's Russian voice elsewhere
    examiner.load()
    speech = to_mono_16k(np.concatenate(list(examiner.synthesize(question))), examiner.sample_rate)
    getattr(examiner, "close", lambda: None)()
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    answer_room = np.zeros(DEMO_ANSWER_SECONDS * SAMPLE_RATE, dtype=np.float32)
    return np.concatenate([silence / 2, 0.8 * speech / max(1e-6, np.abs(speech).max()), answer_room])


@app.command()
def run(
    input: Annotated[
        Path | None, Option("--input", "-i", help="audio file to replay (wav/flac/ogg/mp3); none = microphone")
    ] = None,
    output: Annotated[
        Path | None, Option("--output", "-o", help="write the earpiece track, aligned with the input")
    ] = None,
    fast: Annotated[bool, Option("--fast", help="replay as fast as possible instead of in real time")] = False,
    events: Annotated[Path | None, Option(help="write the event timeline as JSON lines")] = None,
    input_device: Annotated[str | None, Option(help="microphone: index or name part (live)")] = None,
    output_device: Annotated[str | None, Option(help="earpiece: index or name part (live)")] = None,
    vad: Annotated[str | None, Option(help="VAD engine: silero or webrtc")] = None,
    end_silence_ms: Annotated[int | None, Option(help="silence that ends an utterance")] = None,
    asr_model: Annotated[str | None, Option(help="faster-whisper model name or path")] = None,
    llm_model: Annotated[str | None, Option(help="embedded LLM name or GGUF path")] = None,
    voice: Annotated[str | None, Option(help="RHVoice voice for the earpiece")] = None,
    call: Annotated[
        bool, Option("--call", help="online call: the other side from the system audio, you from the microphone")
    ] = False,
    system_audio: Annotated[
        str | None, Option(help="with --call: the call's source (Linux: a sink or its .monitor; default: the output's)")
    ] = None,
) -> None:
    """Replay a recording through the prompter, or listen live until Ctrl+C."""

    def body() -> int:
        settings = _settings(
            vad_engine=vad, end_silence_ms=end_silence_ms, asr_model=asr_model, llm_model=llm_model, tts_voice=voice
        )
        if call or system_audio is not None:
            if input is not None:
                raise DeviceError("--call listens to a live call; replay a recording of one without --call")
            from cluelypro.cli.call import run_call

            return run_call(settings, events, parse_device(input_device), parse_device(output_device), system_audio)
        if input is not None:
            audio = open_input(input)  # fail on a bad file before minutes of model loading
            if audio.channel is not MIXED_DOWN:
                ui.console.print(
                    f"input has {audio.channels} channels; "
                    f"using channel {audio.channel + 1}, the one with the most speech"
                )
            session = Session(settings, fast, events)
            session.load()
            _replay(session, stream_audio(audio), audio.samples, output, audio.rate, keys=True)
            if not session.chains.speech_heard:
                ui.console.print(
                    f"no speech found in {escape(shown(input))}; check the recording level, or lower VAD_THRESHOLD"
                )
            return 0
        return _run_live(settings, events, parse_device(input_device), parse_device(output_device))

    _guarded(body)


def _run_live(
    settings: Settings, events: Path | None, input_device: str | int | None, output_device: str | int | None
) -> int:
    check_device(input_device, "input")  # fail on a missing device before minutes of loading
    session = Session(settings, fast=False, events=events)
    earpiece = DeviceEarpiece(session.clock, output_device, on_device=session.on_device)
    session.load()
    ui.console.print("listening — press Ctrl+C to stop")
    try:
        microphone = capture_microphone(session.clock, input_device, on_device=session.on_device)
        session.run(microphone, earpiece, beside=earpiece.watch, keys=True)
    except KeyboardInterrupt:
        ui.console.print("stopped")
    session.summarize()
    return 0


register_profile_commands(app, _guarded, _settings)
register_bench_command(app, _guarded, _settings)
register_doctor_command(app, _guarded, _settings)
register_models_command(app, _guarded, _settings)
register_serve_command(app, _guarded, _settings)
register_eval_command(app, _guarded, _settings)


def main() -> None:
    app()
