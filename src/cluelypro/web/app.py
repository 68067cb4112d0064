"""The HTTP and WebSocket API of `cluelypro serve`, and the page (static/, no build step).

The contract with the page (README "Web" tells users the same):

- GET /            the page (static/index.html); its modules, styles and worklets at /NAME
                   (relative links) and /static/NAME
- GET /api/events  JSON array of the kept timeline lines (SPEC §3a, exactly `Record.line()`)
- WS  /ws/events   every kept line, then each new one; one JSON text message per event.
                   A client too slow to keep up is closed with 1013 (it reconnects).
- GET /api/status  mode, listening, muted, audio_client, read_only, profile, devices, chains,
                   keys, settings, plan, latency (see WebPrompter.status)
- GET/PATCH /api/settings  advance_policy, commentary_mode, question_filter_mode, tts_voice,
                   tts_speed; validated by the real Settings model (422 with a message);
                   GET also lists the installed RHVoice `voices` (read-only, ignored in PATCH)
- POST /api/control/{start|stop|mute|unmute|repeat|skip} → {"ok": true, ...status}; 409 if not
                   applicable (repeat with nothing said, skip with nothing left). start/stop
                   and mute/unmute are idempotent.
- POST /api/mode {"audio": "local"|"browser"} switches the route, the pipeline goes on
                   (409 from input mode, or when local audio cannot start)
- GET /api/profiles, GET /api/enrol/text, POST /api/profiles/{name}/enrol (a WAV body ≤ 8 MB,
                   else 413), POST /api/profiles/{name}/use, DELETE /api/profiles/{name};
                   a bad name 422, an unknown one 404
- WS  /ws/audio    browser mode only (else closed 4400): hello → ready, PCM both ways, flush
                   (web/browser_audio.py); a second page 4409
- While a page holds the audio (browser mode), POST/PATCH/DELETE from any other client id
  (header X-CluelyPro-Client) → 409 "read-only: another page holds the audio"; its status has
  "read_only": true (the contract's field, computed for the asking client).
- Security: web/security.py (403 Host, 401/4401 token, 4403 Origin, no CORS).
Changes from the shared contract: status.read_only is computed per client (it was always false),
GET /api/settings has the extra read-only `voices`, and POST /api/mode exists.
"""

from __future__ import annotations

import asyncio
import json
import socket as sockets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect, WebSocketState

from cluelypro.secrets import redact
from cluelypro.speaker.enroll import ENROLL_TEXT
from cluelypro.web.browser_audio import Refused
from cluelypro.web.fanout import FanoutClosed, TooSlow
from cluelypro.web.runtime import Invalid, NotApplicable, QuietServer, Unknown, WebPrompter, server_config, wav_to_16k
from cluelypro.web.security import Guard, Policy

STATIC = Path(__file__).parent / "static"
MAX_ENROL_BYTES = 8 * 1024 * 1024
MAX_SETTINGS_BYTES = 16 * 1024
ENROL_SECONDS = 25
CLIENT_HEADER = "x-cluelypro-client"
MUTATING = {"POST", "PATCH", "DELETE", "PUT"}


class _TooLarge(Exception):
    pass


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": redact(message)}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, or _TooLarge as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


async def _json_object(request: Request, what: str) -> dict[str, Any]:
    """The body as a JSON object (at most MAX_SETTINGS_BYTES), or Invalid saying what it must be."""
    try:
        body = json.loads(await _body(request, MAX_SETTINGS_BYTES) or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Invalid(f"the body must be a JSON object {what}")
    return body


def _handler(status: int) -> Any:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        return _detail(status, str(error) or "the request body is too large")

    return handle


def create_app(prompter: WebPrompter, policy: Policy) -> Any:
    """The ASGI app: FastAPI routes behind the security guard."""
    api = FastAPI(title="cluelypro serve", docs_url=None, redoc_url=None, openapi_url=None)

    @api.middleware("http")
    async def read_only(request: Request, call_next: Any) -> Response:
        if request.method in MUTATING and prompter.holds_audio_elsewhere(request.headers.get(CLIENT_HEADER)):
            return _detail(409, "read-only: another page holds the audio")
        return await call_next(request)

    for error_type, code in ((_TooLarge, 413), (Invalid, 422), (NotApplicable, 409), (Unknown, 404)):
        api.add_exception_handler(error_type, _handler(code))

    def client_of(request: Request) -> str | None:
        return request.headers.get(CLIENT_HEADER)

    def done(request: Request) -> JSONResponse:
        """A control's answer: ok, and the status as the asking page sees it."""
        return JSONResponse({"ok": True, **prompter.status(client_of(request))})

    @api.get("/", include_in_schema=False)
    async def page() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            return _detail(404, "the page is not installed")
        return FileResponse(index, media_type="text/html")

    @api.get("/api/events")
    async def events() -> JSONResponse:
        return JSONResponse(prompter.fanout.lines())

    @api.get("/api/status")
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(prompter.status(client_of(request)))

    @api.get("/api/settings")
    async def settings() -> JSONResponse:
        return JSONResponse(prompter.editable_settings())

    @api.patch("/api/settings")
    async def patch_settings(request: Request) -> JSONResponse:
        return JSONResponse(prompter.patch_settings(await _json_object(request, "of settings")))

    @api.post("/api/control/{action}")
    async def control(action: str, request: Request) -> JSONResponse:
        prompter.control(action)
        return done(request)

    @api.post("/api/mode")
    async def mode(request: Request) -> JSONResponse:
        wanted = await _json_object(request, '{"audio": "local" | "browser"}')
        if not isinstance(wanted.get("audio"), str):
            raise Invalid('the body must be {"audio": "local" | "browser"}')
        await prompter.set_mode(wanted["audio"])
        return done(request)

    @api.get("/api/profiles")
    async def list_profiles() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(prompter.profiles))

    @api.get("/api/enrol/text")
    async def enrol_text() -> JSONResponse:
        return JSONResponse({"text": ENROLL_TEXT, "seconds": ENROL_SECONDS})

    @api.post("/api/profiles/{name}/enrol")
    async def enrol(name: str, request: Request) -> JSONResponse:
        audio = wav_to_16k(await _body(request, MAX_ENROL_BYTES))
        return JSONResponse(await prompter.enrol(name, audio))

    @api.post("/api/profiles/{name}/use")
    async def use(name: str, request: Request) -> JSONResponse:
        prompter.use_profile(name)
        return done(request)

    @api.delete("/api/profiles/{name}")
    async def delete(name: str) -> JSONResponse:
        prompter.delete_profile(name)
        return JSONResponse({"ok": True})

    @api.websocket("/ws/events")
    async def events_socket(socket: WebSocket) -> None:
        await socket.accept()
        client = prompter.fanout.join()

        async def send_all() -> None:
            for line in client.backlog:
                await socket.send_text(line)
            client.backlog = []
            while True:
                message, emitted = await client.next()
                await socket.send_text(message)
                client.delays.append(time.monotonic() - emitted)

        try:
            await _until_disconnected(socket, send_all())
        except TooSlow:
            await _close(socket, 1013, "too slow: events were dropped; reconnect")
        except FanoutClosed:
            await _close(socket, 1001, "the server is shutting down")
        finally:
            prompter.fanout.leave(client)

    @api.websocket("/ws/audio")
    async def audio_socket(socket: WebSocket) -> None:
        await socket.accept()
        try:
            if prompter.route.mode != "browser":
                raise Refused(4400, "not in browser mode")
            await prompter.browser.serve(socket)
        except Refused as refused:
            await _close(socket, refused.code, refused.reason)
        except WebSocketDisconnect:
            pass

    # The page's files, at /static/NAME and at /NAME (what relative links from / resolve to);
    # mounted last, so that no file can shadow the API.
    api.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    api.mount("/", StaticFiles(directory=STATIC, check_dir=False), name="page")
    return Guard(api, policy)


async def _until_disconnected(socket: WebSocket, work: Any) -> None:
    """Run `work` (a coroutine that sends) until it ends or the client goes."""
    sending = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass  # nothing is expected from the client

    watching = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
        if sending in done:
            sending.result()
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        for task in (sending, watching):
            task.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    if socket.application_state == WebSocketState.CONNECTED:
        try:
            await socket.close(code, reason)
        except (RuntimeError, OSError):
            pass


@contextmanager
def serve_in_thread(prompter: WebPrompter, policy: Policy | None = None) -> Iterator[str]:
    """The server on 127.0.0.1:<a free port> in a thread of its own (tests, measurements);
    yields its base URL and stops it, every task awaited, on leaving."""
    policy = policy or Policy(loopback=True)
    listener = sockets.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    server = QuietServer(server_config(create_app(prompter, policy), "127.0.0.1", port, policy.certificate))
    thread = threading.Thread(target=asyncio.run, args=(prompter.run(server, [listener]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        yield f"{policy.scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
        if thread.is_alive():
            raise RuntimeError("the server did not stop")
