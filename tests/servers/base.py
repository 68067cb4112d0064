"""Running a test server, and the faults it can be told to commit.

`serve(app)` runs an ASGI app with uvicorn on 127.0.0.1 in a background thread. `Faults` is what
the next requests do wrong, in order: a test arms them, the server's endpoints (or
`FaultMiddleware`, for the ones that need no knowledge of the wire format) take them.

    slow     wait `seconds` before answering at all (no headers, no bytes)
    429/503  answer with that status and a provider-style JSON error body
    reset    start a streamed answer, then drop the connection mid-stream
    malformed  start a streamed answer, then send a chunk that is not valid JSON
    hang     answer nothing, ever (until the client gives up)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

STATUS_FAULTS = {"429": 429, "503": 503}
STREAM_FAULTS = ("reset", "malformed")


@dataclass(frozen=True)
class Fault:
    kind: str  # slow, 429, 503, reset, malformed, hang
    seconds: float = 0.0


class Faults:
    """Faults armed for the next requests (thread-safe); `requests` counts what was served."""

    def __init__(self) -> None:
        self._armed: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests = 0

    def arm(self, kind: str, seconds: float = 0.0, times: int = 1) -> None:
        with self._lock:
            self._armed.extend(Fault(kind, seconds) for _ in range(times))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self._armed.popleft() if self._armed else None


class ConnectionDropped(Exception):
    """Raised inside a streaming response: uvicorn drops the connection mid-stream."""


class FaultMiddleware:
    """Applies a request's fault when it needs no knowledge of the wire format (slow, 429, 503,
    hang); stream faults are left in `request.state.fault` for the endpoint's stream."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.faults.take()
        scope.setdefault("state", {})["fault"] = fault
        if fault is not None and fault.kind in ("slow", "hang"):
            await asyncio.sleep(fault.seconds if fault.kind == "slow" else 3600)
        if fault is not None and fault.kind in STATUS_FAULTS:
            await error_response(STATUS_FAULTS[fault.kind])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def error_response(status: int) -> Response:
    messages = {429: "Rate limit reached, try again later", 503: "The server is overloaded"}
    body = {"error": {"message": messages.get(status, "error"), "type": "server_error", "code": status}}
    return JSONResponse(body, status_code=status)


def stream_fault(request: Request) -> Fault | None:
    fault = getattr(request.state, "fault", None)
    return fault if fault is not None and fault.kind in STREAM_FAULTS else None


async def with_stream_fault(
    chunks: AsyncIterator[bytes], fault: Fault | None, malformed: bytes
) -> AsyncIterator[bytes]:
    """`chunks` as they are, or cut after the first two (reset), or with `malformed` in their place."""
    sent = 0
    async for chunk in chunks:
        if fault is not None and sent == 2:
            if fault.kind == "malformed":
                yield malformed
                return
            raise ConnectionDropped("fault injected: connection dropped mid-stream")
        yield chunk
        sent += 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Run `app` on 127.0.0.1 until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
