"""The browser as microphone and earpiece (browser mode): one page at a time over /ws/audio.

In: after `{"type": "hello", "rate": 16000, "client": ID}`, binary frames of little-endian int16
mono PCM at 16 kHz, 20–200 ms each (at most MAX_FRAME_BYTES). Out: `{"type": "ready"}`, then
binary frames of the same format as each earpiece chunk becomes due — sent at most LEAD_S ahead
of its time, so the page never holds more than that — and `{"type": "flush"}` when the earpiece
is stopped (an interruption): the page drops what it has buffered at once.

Limits close only the offending socket: a frame over MAX_FRAME_BYTES → 1009, a frame of odd byte
length or text that is not JSON → 1007, no hello within HELLO_WITHIN_S → 1008, a second page →
4409. The prompter goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from cluelypro.audio.echo import EchoGate
from cluelypro.config import SAMPLE_RATE
from cluelypro.metrics.timeline import Clock

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024
LEAD_S = 0.15
"""How far ahead of its time an earpiece chunk is sent (the page's buffer; ≤ 200 ms)."""
BACKLOG_S = 10.0
"""Microphone audio kept waiting for the pipeline before the oldest is dropped."""
MAX_CLIENT_ID = 64
HELLO_WITHIN_S = 10.0  # a socket that says nothing does not hold the audio for long

FLUSH = json.dumps({"type": "flush"})
READY = json.dumps({"type": "ready"})


class Refused(Exception):
    """Close the audio socket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def to_pcm16(chunk: np.ndarray) -> bytes:
    return (np.clip(chunk, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def from_pcm16(frame: bytes) -> np.ndarray:
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0


class BrowserAudio:
    """The page holding the audio, its microphone frames and its outgoing earpiece audio."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.client: str | None = None  # the holder's id (from its hello)
        self.attached = False  # a socket holds the audio (hello may still be awaited)
        self._frames: asyncio.Queue[np.ndarray] | None = None
        self._outgoing: asyncio.Queue[tuple[bytes | str, float]] | None = None
        self.earpiece = BrowserEarpiece(self)
        self.sent_delays: deque[float] = deque(maxlen=10_000)  # PCM due → sent (s)
        self.flush_delays: deque[float] = deque(maxlen=1_000)  # stop() → flush sent (s)

    @property
    def connected(self) -> bool:
        return self.attached and self.client is not None

    def _queues(self) -> tuple[asyncio.Queue[np.ndarray], asyncio.Queue[tuple[bytes | str, float]]]:
        if self._frames is None or self._outgoing is None:  # made on the loop that uses them
            self._frames = asyncio.Queue(round(BACKLOG_S * SAMPLE_RATE / 320))
            self._outgoing = asyncio.Queue()
        return self._frames, self._outgoing

    async def blocks(self) -> AsyncGenerator[np.ndarray, None]:
        """The page's microphone audio, 16 kHz float32, as it arrives (never ends)."""
        frames, _ = self._queues()
        while True:
            yield await frames.get()

    def send(self, message: bytes | str, due: float | None = None) -> None:
        """Queue a message for the page (dropped when no page holds the audio); `due`: the
        monotonic time it was due (for the measurement of what sending adds)."""
        if self.connected:
            self._queues()[1].put_nowait((message, time.monotonic() if due is None else due))

    def flush(self) -> None:
        """Drop the earpiece audio not yet sent, and tell the page to drop what it holds."""
        if not self.connected:
            return
        _, outgoing = self._queues()
        while not outgoing.empty():
            outgoing.get_nowait()
        self.send(FLUSH)

    async def serve(self, socket: WebSocket) -> None:
        """Hold the audio for this socket (accepted) until it goes; raises Refused to close it."""
        if self.attached:
            raise Refused(4409, "another audio client is connected")
        self.attached = True
        frames, outgoing = self._queues()
        sender: asyncio.Task | None = None
        try:
            try:
                self.client = _hello(await asyncio.wait_for(socket.receive(), HELLO_WITHIN_S))
            except asyncio.TimeoutError:
                raise Refused(1008, f"no hello within {HELLO_WITHIN_S:g} s") from None
            while not outgoing.empty():
                outgoing.get_nowait()
            await socket.send_text(READY)
            sender = asyncio.create_task(self._send_all(socket, outgoing))
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = _frame(message)
                if frame is None:
                    continue
                if frames.full():
                    frames.get_nowait()
                    log.warning("the page's audio is %.0f s ahead of processing; dropping old audio", BACKLOG_S)
                frames.put_nowait(from_pcm16(frame))
        finally:
            self.attached, self.client = False, None
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    async def _send_all(self, socket: WebSocket, outgoing: asyncio.Queue[tuple[bytes | str, float]]) -> None:
        try:
            while True:
                message, due = await outgoing.get()
                if isinstance(message, bytes):
                    await socket.send_bytes(message)
                    self.sent_delays.append(time.monotonic() - due)
                else:
                    await socket.send_text(message)
                    if message == FLUSH:
                        self.flush_delays.append(time.monotonic() - due)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the page went: the receive side ends the session


def _hello(message: MutableMapping[str, Any]) -> str:
    """The client id from the first message, which must be the hello."""
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise Refused(1007, "the first message must be the hello (JSON text)")
    try:
        hello = json.loads(text)
    except ValueError:
        raise Refused(1007, "the hello is not valid JSON") from None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        raise Refused(1007, 'the first message must be {"type": "hello", ...}')
    if hello.get("rate") != SAMPLE_RATE:
        raise Refused(1007, f"the audio must be {SAMPLE_RATE} Hz int16 mono PCM")
    client = hello.get("client")
    if not isinstance(client, str) or not 0 < len(client) <= MAX_CLIENT_ID:
        raise Refused(1007, f"the hello needs a client id (a string of 1–{MAX_CLIENT_ID} characters)")
    return client


def _frame(message: MutableMapping[str, Any]) -> bytes | None:
    """The PCM of a binary frame; None for a (valid JSON) text message; Refused otherwise."""
    data = message.get("bytes")
    if data is not None:
        if len(data) > MAX_FRAME_BYTES:
            raise Refused(1009, "frame too large")
        if len(data) % 2:
            raise Refused(1007, "a PCM frame must have an even number of bytes")
        return data
    try:
        json.loads(message.get("text") or "")
    except ValueError:
        raise Refused(1007, "a text message must be JSON") from None
    return None


class BrowserEarpiece:
    """The earpiece of browser mode (audio/earpiece.Earpiece): each chunk goes to the page when
    it is due (LEAD_S ahead); `stop` flushes the page. With no page connected, a chunk is dropped
    but takes its time, as DeviceEarpiece does for a lost device: the plan runs on."""

    def __init__(self, audio: BrowserAudio) -> None:
        self._audio = audio
        self._busy_until = 0.0
        self._epoch = 0  # bumped by stop(): a chunk waiting to be sent from before is not sent
        self.echo: EchoGate | None = None

    async def play(self, chunk: np.ndarray, at: float) -> tuple[float, float]:
        clock, epoch = self._audio.clock, self._epoch
        now = clock.input_now()
        start = max(now, at, self._busy_until)
        end = self._busy_until = start + len(chunk) / SAMPLE_RATE
        if self.echo is not None:
            self.echo.playing(end)
        wait = max(0.0, start - LEAD_S - now)
        due = time.monotonic() + wait
        await asyncio.sleep(wait)
        if epoch == self._epoch:
            self._audio.send(to_pcm16(chunk), due)
        await asyncio.sleep(max(0.0, start - clock.input_now()))
        return start, end  # not _busy_until: a stop() meanwhile resets it

    def stop(self) -> None:
        self._epoch += 1
        self._busy_until = 0.0
        self._audio.flush()
        if self.echo is not None:
            self.echo.stopped()

    def close(self) -> None:
        pass
