"""What the fault proxy and the Gemini server share: relaying a streamed upstream answer, SSE
framing, and stopping work for a client that has gone.

`faulty(app, faults)` is `FaultMiddleware` (base.py) inside `CancelOnDisconnect`: a real server
stops working for a client that has gone, so a slow or hanging fault ends with its client
instead of sleeping on (a stale request reaching the shared llama.cpp server late would cut the
answer it is giving to a later test; a task sleeping for an hour would hold up the server's
shutdown).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .base import FaultMiddleware, Faults

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class ProxyStats:
    upstream_requests: int = 0
    open_streams: int = 0  # relayed streams not yet closed
    last_request: dict | None = None  # the body of the last request, parsed


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The byte stream re-cut into whole SSE events, each with its blank line."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while match := _EVENT_END.search(buffer):
            yield buffer[: match.end()]
            buffer = buffer[match.end() :]
    if buffer:
        yield buffer


def sse_data(event: bytes) -> str:
    """The data of one SSE event ("" if it has none, e.g. a ping comment)."""
    lines = event.decode("utf-8").splitlines()
    return "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))


class Upstream:
    """One request to the upstream, streamed; close() ends it even while being cancelled."""

    def __init__(self, stats: ProxyStats) -> None:
        self.stats = stats
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))
        self.response: httpx.Response | None = None

    async def send(self, method: str, url: str, **options) -> httpx.Response:
        self.stats.upstream_requests += 1
        try:
            self.response = await self.client.send(self.client.build_request(method, url, **options), stream=True)
        except BaseException:
            await self.close()
            raise
        return self.response

    async def relay(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks` (made from this upstream's response), closing the upstream at the end."""
        self.stats.open_streams += 1
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.stats.open_streams -= 1
            await self.close()

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.response is not None:
                await self.response.aclose()
            await self.client.aclose()


class CancelOnDisconnect:
    """Cancels the app's work on a request once its client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: list[Message] = []
        while not body or body[-1].get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.append(message)
        gone = asyncio.Event()

        async def replay() -> Message:
            if body:
                return body.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        work = asyncio.ensure_future(self.app(scope, replay, send))
        try:
            await asyncio.wait({watcher, work}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(watcher, work, return_exceptions=True)
        if not work.cancelled():
            work.result()  # the app's own exception, e.g. a dropped connection (reset fault)


def faulty(app: ASGIApp, faults: Faults) -> ASGIApp:
    return CancelOnDisconnect(FaultMiddleware(app, faults))
