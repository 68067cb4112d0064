"""OpenAI's audio API, backed by the embedded engines:

    POST /v1/audio/transcriptions  multipart (file, model, language, response_format) → {"text"}
                                   by Whisper; the JSON is sent in pieces so that a stream fault
                                   can cut it (reset) or spoil it (malformed)
    POST /v1/audio/speech          JSON (model, input, voice, response_format "pcm", speed) → s16le
                                   mono 24 kHz by RHVoice, streamed as it is synthesised; reset
                                   drops the connection mid-audio

Every request needs `Authorization: Bearer <api_key>`; a wrong key gets OpenAI's 401 body, which
echoes the key back in full (as some OpenAI-compatible providers do) so that redaction is tested.
Faults (tests/servers/base.py) are taken per request before the key is checked.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from .base import FaultMiddleware, Faults, stream_fault, with_stream_fault
from .embedded import EmbeddedEars, EmbeddedVoice, pcm16, pieces, run_to_end

MALFORMED = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def unauthorized(request: Request, api_key: str) -> JSONResponse | None:
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if sent == api_key:
        return None
    return openai_error(
        401,
        f"Incorrect API key provided: {sent}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )


def create_app(api_key: str, ears: EmbeddedEars, voice: EmbeddedVoice, faults: Faults) -> ASGIApp:
    app = FastAPI()
    app.state.transcriptions = []  # what each /audio/transcriptions request sent, for tests to inspect
    app.state.speech_requests = []  # the JSON bodies of /audio/speech

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        request: Request,
        file: UploadFile = File(...),
        model: str = Form(...),
        language: str | None = Form(None),
        response_format: str = Form("json"),
    ) -> Response:
        if (refused := unauthorized(request, api_key)) is not None:
            return refused
        if response_format not in ("json", "text"):
            return openai_error(
                400, f"response_format {response_format!r} is not supported here", "invalid_request_error"
            )
        app.state.transcriptions.append(
            {
                "model": model,
                "language": language,
                "response_format": response_format,
                "filename": file.filename,
                "content_type": file.content_type,
            }
        )
        text = await run_in_threadpool(ears.transcribe_file, await file.read())
        if response_format == "text":
            body, media_type = text.encode(), "text/plain"
        else:
            # ASCII-escaped, so that a cut never splits a character: malformed means bad JSON
            body, media_type = json.dumps({"text": text}).encode(), "application/json"
        return StreamingResponse(
            with_stream_fault(pieces(body), stream_fault(request), MALFORMED), media_type=media_type
        )

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        if (refused := unauthorized(request, api_key)) is not None:
            return refused
        body = await request.json()
        app.state.speech_requests.append(body)
        if body.get("response_format") != "pcm":
            return openai_error(400, "this server streams response_format 'pcm' only", "invalid_request_error")
        audio = (pcm16(chunk) for chunk in voice.stream(body["input"], float(body.get("speed", 1.0))))
        return StreamingResponse(
            with_stream_fault(run_to_end(audio), stream_fault(request), MALFORMED),
            media_type="application/octet-stream",
        )

    return FaultMiddleware(app, faults)
