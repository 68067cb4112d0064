"""The timeline, live, to every /ws/events client — without ever holding up the pipeline.

`EventFanout` is a timeline observer: each record's JSON line (SPEC §3a, `Record.line()`) is
serialised once and put on every client's bounded queue. A client that lets its queue fill up
(a stalled browser tab) is dropped from the fan-out and its socket closed with 1013; the emitting
task never waits on a socket.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque

from cluelypro.metrics.timeline import Record, Timeline

CLIENT_QUEUE = 2_000
"""Messages a client may lag behind (about the timeline's whole ring) before it is dropped."""


class TooSlow(Exception):
    """The client's queue overflowed: it missed events and must reconnect."""


class FanoutClosed(Exception):
    """The server is shutting down."""


class EventClient:
    def __init__(self, backlog: list[str], size: int, delays: deque[float]) -> None:
        self.backlog = backlog  # the lines kept when it joined, sent first
        self._queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue(size)
        self.overflowed = False
        self.delays = delays  # emit → sent (s), the fan-out's measurement

    def offer(self, message: str, emitted: float) -> bool:
        try:
            self._queue.put_nowait((message, emitted))
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            self._end()
            return False

    def _end(self) -> None:
        while True:  # make room for the end mark: what is queued will not be sent anyway
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        self._queue.put_nowait(None)

    async def next(self) -> tuple[str, float]:
        """The next message and when it was emitted (monotonic); TooSlow after an overflow, or
        FanoutClosed when the fan-out has closed."""
        item = await self._queue.get()
        if item is None:
            if self.overflowed:
                raise TooSlow
            raise FanoutClosed
        return item


class EventFanout:
    def __init__(self, timeline: Timeline, queue_size: int = CLIENT_QUEUE) -> None:
        self.timeline = timeline
        self.queue_size = queue_size
        self._clients: set[EventClient] = set()
        self.sent_delays: deque[float] = deque(maxlen=10_000)  # emit → on a client's socket (s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        timeline.subscribe(self)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the sockets live on (events emitted from another thread are handed to it)."""
        self._loop, self._loop_thread = loop, threading.get_ident()

    def lines(self) -> list[dict]:
        """Every kept line, oldest first (GET /api/events)."""
        return [record.line() for record in list(self.timeline.events)]

    def join(self) -> EventClient:
        """A new client: the kept lines now, then every line from now on (nothing lost between)."""
        backlog = [_encode(record) for record in list(self.timeline.events)]
        client = EventClient(backlog, self.queue_size, self.sent_delays)
        self._clients.add(client)
        return client

    def leave(self, client: EventClient) -> None:
        self._clients.discard(client)

    def close(self) -> None:
        for client in list(self._clients):
            client._end()
        self._clients.clear()

    def __call__(self, record: Record) -> None:
        if not self._clients:
            return
        message, emitted = _encode(record), time.monotonic()
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._deliver, message, emitted)
        else:
            self._deliver(message, emitted)

    def _deliver(self, message: str, emitted: float) -> None:
        for client in list(self._clients):
            if not client.offer(message, emitted):
                self._clients.discard(client)


def _encode(record: Record) -> str:
    return json.dumps(record.line(), ensure_ascii=False)
