"""The prompter running inside `cluelypro serve`: one asyncio loop runs uvicorn's server and
the pipeline together, and the dashboard's controls act on that pipeline.

One `Pipeline` serves the whole session (utterance and question ids, the timeline's `t`, the
engines' cool-downs all run on), fed by `Listening`: the audio of the current route (microphone,
browser page or replayed file), or silence while there is none — input time always runs with the
clock, as a microphone's does. Stopped, the route's audio is replaced by silence (it still runs:
a file replay goes on in real time, a microphone stays open but is not heard) and nothing new is
answered; muted, the earpiece plays silence while the prompter goes on. The earpiece the pipeline
holds is `ControlledEarpiece` (pipeline/controls.py, shared with `run`'s terminal keys), in front of
the route's own, so that routes can be switched (`set_mode`) without a new pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import uvicorn
from pydantic import ValidationError

from cluelypro.audio.call import CallSources
from cluelypro.audio.earpiece import DeviceEarpiece, Earpiece, TrackEarpiece
from cluelypro.audio.io import AudioInput, shown, stream_audio, to_mono_16k
from cluelypro.audio.loopback import SystemDevice
from cluelypro.audio.sources import capture_microphone, get_within, replay_file
from cluelypro.config import SAMPLE_RATE, Settings, validation_problems
from cluelypro.engines import Engines
from cluelypro.metrics.events import Device, Error
from cluelypro.metrics.summary import ChainCollector
from cluelypro.metrics.timeline import Clock, Timeline
from cluelypro.pipeline.controls import USER_CONTROLS, ControlledEarpiece, NotApplicable, control
from cluelypro.pipeline.fallback import describe
from cluelypro.pipeline.pipeline import Pipeline, StageChains
from cluelypro.speaker import profiles
from cluelypro.speaker.enroll import build_profile, enrollment_warning
from cluelypro.speaker.gate import SpeakerGate
from cluelypro.speaker.profiles import ProfileError, VoiceProfile
from cluelypro.tts.rhvoice import RhVoiceSynthesizer
from cluelypro.vad.engines import SpeechDetector, make_detector
from cluelypro.web import status
from cluelypro.web.browser_audio import BrowserAudio
from cluelypro.web.fanout import EventFanout

log = logging.getLogger(__name__)

Mode = Literal["local", "browser", "input"]
MODES: tuple[Mode, ...] = ("local", "browser", "input")
EDITABLE = ("advance_policy", "commentary_mode", "question_filter_mode", "tts_voice", "tts_speed")
"""The settings the dashboard may change while running."""
TICK_S = 0.1  # how often silence stands in for a route that delivers nothing
GAP_S = 0.5  # a route this far behind the clock has stopped delivering: silence fills the gap
JITTER_S = 0.1  # a block arriving this much later than its place on the clock: silence before it
BACKLOG_BLOCKS = 1_000


class Invalid(Exception):
    """A request with a bad value (HTTP 422); the message says which."""


class Unknown(Exception):
    """No such thing (HTTP 404)."""


# --- the audio source and the earpiece the pipeline holds ----------------------------------------


class Listening:
    """The pipeline's one source: the current route's audio, silence while listening is stopped
    (or no route delivers), and input time that keeps up with the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.on = True
        self._blocks: asyncio.Queue[np.ndarray] | None = None
        self._pump: asyncio.Task | None = None
        self.failure: Callable[[BaseException], None] = lambda error: None

    def _queue(self) -> asyncio.Queue[np.ndarray]:
        if self._blocks is None:
            self._blocks = asyncio.Queue(BACKLOG_BLOCKS)
        return self._blocks

    async def feed_from(self, source: AsyncIterator[np.ndarray] | None) -> None:
        """Listen to `source` from now on (the previous one is closed)."""
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if source is not None:
            self._pump = asyncio.create_task(self._pumped(source), name="listening")

    async def _pumped(self, source: AsyncIterator[np.ndarray]) -> None:
        blocks = self._queue()
        try:
            async with aclosing(source) as audio:  # type: ignore[type-var]
                async for block in audio:
                    if blocks.full():
                        blocks.get_nowait()
                    blocks.put_nowait(block)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a microphone that cannot be opened: reported, silence follows
            self.failure(error)

    async def blocks(self) -> AsyncIterator[np.ndarray]:
        """The audio, with silence where the route delivered none (it stopped, or it started
        late): input time is the clock's, as with a microphone."""
        blocks, yielded = self._queue(), 0
        self.clock.restart()
        while True:
            waited = blocks.empty()  # a block taken from a backlog is not late: no silence before it
            block = await get_within(blocks, TICK_S)
            behind = round(self.clock.input_now() * SAMPLE_RATE) - yielded - (0 if block is None else len(block))
            if waited and behind > (GAP_S if block is None else JITTER_S) * SAMPLE_RATE:  # the route was silent
                yielded += behind
                yield np.zeros(behind, np.float32)
            if block is not None:
                yielded += len(block)
                yield block if self.on else np.zeros(len(block), np.float32)

    async def close(self) -> None:
        await self.feed_from(None)


@dataclass
class Route:
    """Where audio comes from and goes to in one mode."""

    mode: Mode
    source: Callable[[], AsyncIterator[np.ndarray]]
    earpiece: Earpiece
    beside: Callable[[], Awaitable[None]] | None = None  # a device's watch, run along
    devices: dict[str, str | None] = field(default_factory=lambda: {"input": None, "output": None})
    system: Callable[[], AsyncIterator[np.ndarray]] | None = None  # call mode: the other side of the call


def browser_route(browser: BrowserAudio) -> Route:
    return Route("browser", browser.blocks, browser.earpiece)


def input_route(audio: AudioInput, clock: Clock, output: Path | None) -> Route:
    earpiece = TrackEarpiece(clock, audio.samples, keep=output is not None)
    devices = {"input": shown(audio.path), "output": shown(output) if output is not None else None}
    return Route("input", lambda: replay_file(stream_audio(audio), Clock()), earpiece, devices=devices)


def local_route(
    clock: Clock,
    on_device: Callable[[str, str, str], None],
    input_device: str | int | None,
    output_device: str | int | None,
    system: SystemDevice | None = None,
) -> Route:
    """The microphone and the earpiece device, as `run` uses them (DeviceError if missing); with
    `system`, call mode: the other side from the system output (audio/call.py)."""
    devices: dict[str, str | None] = {"input": None, "output": None}

    def named(name: str) -> None:
        devices["input"] = name

    def on_any_device(which: str, state: str, name: str) -> None:
        devices[which if which in ("input", "system") else "output"] = name
        on_device(which, state, name)

    earpiece = DeviceEarpiece(clock, output_device, on_device=on_any_device)
    devices["output"] = earpiece.device_name

    def microphone() -> AsyncIterator[np.ndarray]:
        return capture_microphone(Clock(), input_device, on_device=on_any_device, named=named)

    if system is not None:
        call = CallSources(Clock(), input_device, system, on_any_device)
        devices["input"], devices["system"] = call.names
        return Route("local", call.microphone, earpiece, earpiece.watch, devices, system=call.system)
    return Route("local", microphone, earpiece, beside=earpiece.watch, devices=devices)


# --- the prompter --------------------------------------------------------------------------------


class WebPrompter:
    """The session the server drives: pipeline, route, controls, settings, profiles, status."""

    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        clock: Clock,
        timeline: Timeline,
        route: Route | None,
        *,
        chains: ChainCollector | None = None,
        gate: SpeakerGate | None = None,
        browser: BrowserAudio | None = None,
        local: Callable[[], Route] | None = None,
        detector: Callable[[], SpeechDetector] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.clock = clock
        self.timeline = timeline
        self.browser = browser or BrowserAudio(clock)
        self.route = route or browser_route(self.browser)
        self._local = local  # makes the local route (mode switch), None when it cannot be
        self._detector = detector or (lambda: make_detector(settings.vad_engine, settings.webrtc_aggressiveness))
        self._on_exit = on_exit
        self.collector = chains or ChainCollector()
        if chains is None:
            timeline.subscribe(self.collector)
        self.plan = status.PlanView()
        timeline.subscribe(self.plan)
        self.fanout = EventFanout(timeline)
        self.gate = gate
        self.listening = Listening(clock)
        self.listening.failure = lambda error: self._report("audio", error)
        self.call = Listening(clock) if self.route.system is not None else None  # call mode: the other side
        if self.call is not None:
            self.call.failure = lambda error: self._report("audio", error)
        self.earpiece = ControlledEarpiece(self.route.earpiece)
        self.stage_chains = StageChains(settings, engines)
        self.pipeline = Pipeline(settings, engines, clock, timeline, self.earpiece, gate, chains=self.stage_chains)
        self._beside: asyncio.Task | None = None
        self._switching = asyncio.Lock()

    # --- running -------------------------------------------------------------------------------

    async def run(self, server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        """Serve (on `sockets`, already bound, if given) and prompt until the server is told to
        exit (Ctrl+C); then every task ends."""
        self.fanout.bind(asyncio.get_running_loop())
        await self.listening.feed_from(self.route.source())
        if self.call is not None:
            await self.call.feed_from(self.route.system() if self.route.system else None)
        self._start_beside()
        call = self.call.blocks() if self.call is not None else None
        prompting = asyncio.create_task(self.pipeline.run(self.listening.blocks(), call), name="pipeline")
        prompting.add_done_callback(lambda task: self._pipeline_ended(task, server))
        try:
            await server.serve(sockets=sockets)
        finally:
            self.fanout.close()
            prompting.cancel()
            await asyncio.gather(prompting, return_exceptions=True)
            await self.listening.close()
            if self.call is not None:
                await self.call.close()
            await self._stop_beside()
            self.earpiece.close()

    def _pipeline_ended(self, task: asyncio.Task, server: uvicorn.Server) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the pipeline stopped: %s", describe(task.exception() or RuntimeError()))
            server.should_exit = True

    def _start_beside(self) -> None:
        if self.route.beside is not None:
            self._beside = asyncio.ensure_future(self.route.beside())

    async def _stop_beside(self) -> None:
        if self._beside is not None:
            self._beside.cancel()
            await asyncio.gather(self._beside, return_exceptions=True)
            self._beside = None

    def _report(self, stage: str, error: BaseException) -> None:
        self.timeline.emit(Error(stage, describe(error)), self.clock.input_now())

    def on_device(self, which: str, state: str, name: str) -> None:
        self.timeline.emit(Device(which, state, name), self.clock.input_now())

    # --- controls --------------------------------------------------------------------------------

    def control(self, action: str) -> None:
        """start, stop, mute, unmute, repeat or skip; NotApplicable when it cannot be done now."""
        if action in ("start", "stop"):
            self._listen(action == "start")
        elif action in USER_CONTROLS:
            control(action, self.pipeline, self.earpiece)  # NotApplicable (HTTP 409) when it cannot be done now
        else:
            raise Unknown(f"no control {action!r}; use start, stop, mute, unmute, repeat or skip")

    def _listen(self, on: bool) -> None:
        """Listening on or off: off, the sources are replaced by silence and the answer ends."""
        self.listening.on = on
        if self.call is not None:
            self.call.on = on
        if on:
            self.pipeline.answering = True
        else:
            self.pipeline.hush()

    async def set_mode(self, mode: str) -> None:
        """Switch between the local and browser routes (the pipeline goes on)."""
        if mode not in ("local", "browser"):
            raise Invalid('mode must be "local" or "browser"')
        if self.route.mode == "input":
            raise NotApplicable("a replayed recording cannot switch mode; restart without --input")
        if mode == self.route.mode:
            return
        async with self._switching:
            if mode == "local":
                if self._local is None:
                    raise NotApplicable("local audio is not available in this server")
                try:
                    route = self._local()
                except Exception as error:  # no such device
                    raise NotApplicable(f"local audio cannot start: {describe(error)}") from None
            else:
                route = browser_route(self.browser)
            answering = self.pipeline.answering
            self.pipeline.hush()  # the answer under way was for the other earpiece
            self.pipeline.answering = answering
            await self._stop_beside()
            old = self.earpiece.switch(route.earpiece)
            if old is not self.browser.earpiece:
                old.close()
            self.route = route
            await self.listening.feed_from(route.source())
            if self.call is not None:  # the browser route has no call: silence stands in
                await self.call.feed_from(route.system() if route.system else None)
            self._start_beside()

    # --- settings ----------------------------------------------------------------------------------

    def editable_settings(self) -> dict[str, Any]:
        values = {name: getattr(self.settings, name) for name in EDITABLE}
        return {**values, "voices": self.voices()}

    def voices(self) -> list[str]:
        for engine in self.engines.synthesizers:
            if isinstance(engine, RhVoiceSynthesizer):
                return engine.installed_voices()
        return [self.settings.tts_voice]

    def patch_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate `changes` with the real Settings model and apply them (Invalid if not)."""
        changes = {name: value for name, value in changes.items() if name != "voices"}  # read-only
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise Invalid(f"not an editable setting: {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
        try:
            updated = Settings.model_validate({**self.settings.model_dump(), **changes})
        except ValidationError as error:
            raise Invalid(validation_problems(error)) from None
        if updated.tts_voice not in self.voices():
            raise Invalid(f"tts_voice: no installed voice {updated.tts_voice!r}; installed: {', '.join(self.voices())}")
        for engine in self.engines.synthesizers:  # from the next thesis
            if isinstance(engine, RhVoiceSynthesizer):
                engine.use(updated.tts_voice, updated.tts_speed)
            elif hasattr(engine, "speed"):
                engine.speed = updated.tts_speed
        self.settings = updated
        self.pipeline.apply_settings(updated)  # from the next question
        return self.editable_settings()

    # --- voice profiles ----------------------------------------------------------------------------

    @property
    def profile(self) -> VoiceProfile | None:
        return self.gate.profile if self.gate is not None else None

    def profiles(self) -> list[dict[str, Any]]:
        active = self.profile.name if self.profile is not None else None
        return [
            {"name": p.name, "active": p.name == active, "threshold": p.suggested_threshold, "created": p.created}
            for p in profiles.list_profiles()
        ]

    def use_profile(self, name: str) -> dict[str, Any]:
        _check_name(name)
        if name not in profiles.profile_names():
            raise Unknown(f"no voice profile named {name!r}")
        embedder = self.engines.embedder
        if embedder is None:
            raise NotApplicable("no speaker embedder is loaded")
        try:
            profile = profiles.load_profile(name, embedder)
        except ProfileError as error:
            raise NotApplicable(str(error)) from None
        profiles.set_active(name)
        self._use(profile)
        return self.profile_status() or {}

    def delete_profile(self, name: str) -> None:
        _check_name(name)
        if name not in profiles.profile_names():
            raise Unknown(f"no voice profile named {name!r}")
        profiles.delete_profile(name)
        if self.profile is not None and self.profile.name == name:
            self._use(None)

    async def enrol(self, name: str, audio: np.ndarray) -> dict[str, Any]:
        """A profile from the user's recording (16 kHz mono), made in a thread with the loaded
        embedder, saved, and used from the next utterance."""
        _check_name(name)
        embedder = self.engines.embedder
        if embedder is None:
            raise NotApplicable("no speaker embedder is loaded")
        try:
            profile = await asyncio.to_thread(build_profile, name, audio, embedder, self._detector())
        except ProfileError as error:
            raise Invalid(str(error)) from None
        await asyncio.to_thread(profiles.save_profile, profile)
        profiles.set_active(name)
        self._use(profile)
        return {
            "name": profile.name,
            "threshold": self.gate.threshold if self.gate is not None else profile.suggested_threshold,
            "spread": {
                "min": round(profile.score_min, 4),
                "p5": round(profile.score_p5, 4),
                "median": round(profile.score_median, 4),
                "pieces": profile.score_pieces,
                "voiced_seconds": profile.voiced_seconds,
            },
            "warning": enrollment_warning(profile),
        }

    def _use(self, profile: VoiceProfile | None) -> None:
        embedder = self.engines.embedder
        self.gate = (
            None
            if profile is None or embedder is None
            else SpeakerGate(embedder, profile, self.settings.voice_threshold)
        )
        self.pipeline.gate = self.gate

    def profile_status(self) -> dict[str, Any] | None:
        if self.gate is None or self.gate.profile is None:
            return None
        return {"name": self.gate.profile.name, "threshold": round(self.gate.threshold, 4)}

    # --- status ------------------------------------------------------------------------------------

    def holds_audio_elsewhere(self, client: str | None) -> bool:
        """Whether another page holds the audio (browser mode): this client is read-only."""
        return self.route.mode == "browser" and self.browser.attached and client != self.browser.client

    def status(self, client: str | None = None) -> dict[str, Any]:
        devices = dict(self.route.devices)
        if self.route.mode == "browser":
            page = "browser page" if self.browser.connected else None
            devices = {"input": page, "output": page}
        return {
            "mode": self.route.mode,
            "listening": self.listening.on,
            "muted": self.earpiece.muted,
            "audio_client": self.browser.connected,
            "read_only": self.holds_audio_elsewhere(client),
            "profile": self.profile_status(),
            "devices": devices,
            "chains": status.chain_states(self.settings, self.engines, self.stage_chains),
            "keys": status.key_states(self.settings),
            "settings": self.editable_settings(),
            "plan": self.plan.snapshot(),
            "latency": status.latency(self.collector),
        }


def _check_name(name: str) -> None:
    try:
        profiles.validate_name(name)
    except ProfileError as error:
        raise Invalid(str(error)) from None


def wav_to_16k(data: bytes) -> np.ndarray:
    """An uploaded recording (WAV, any rate, mono or stereo) as 16 kHz mono float32; Invalid if
    it is not one."""
    import io

    import soundfile as sf

    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile's own errors, whatever the fault
        raise Invalid(f"the body is not a readable WAV file ({describe(error)})") from None
    if not len(samples):
        raise Invalid("the WAV file holds no samples")
    return to_mono_16k(samples.mean(axis=1), rate)


# --- the server ----------------------------------------------------------------------------------


class QuietServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: `serve_until_interrupted` owns Ctrl+C,
    so that the pipeline's tasks are awaited before the process ends."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_config(app: Any, host: str, port: int, certificate: tuple[Path, Path] | None) -> uvicorn.Config:
    cert, key = certificate if certificate is not None else (None, None)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        ws_max_size=1024 * 1024,  # our own limit (16 KiB, 1009) is checked per frame
        timeout_graceful_shutdown=2,
        server_header=False,
    )


async def serve_until_interrupted(
    prompter: WebPrompter, server: uvicorn.Server, sockets: list[socket.socket] | None = None
) -> None:
    """Run until Ctrl+C (or SIGTERM); then stop serving and await every task."""
    loop = asyncio.get_running_loop()

    def exit_now() -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, exit_now)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        await prompter.run(server, sockets)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
