"""A server speaking Gemini's REST protocol, answering with an OpenAI-protocol upstream.

    with serve(gemini_server(llama_base_url, faults, api_key="test-key")) as url:
        GeminiLLM(key, "gemini-2.5-flash", base_url=url)

POST /{v1,v1beta}/models/{model}:streamGenerateContent?alt=sse (what google-genai's
generate_content_stream sends; since 3.x its default API version is v1, v1beta before) and
:generateContent. The request's systemInstruction, contents
(roles user/model) and generationConfig (maxOutputTokens, temperature) become a streamed chat
request to the upstream; its tokens come back as Gemini SSE events, separated by CRLF CRLF as
Google's are:

    data: {"candidates": [{"content": {"parts": [{"text": "…"}], "role": "model"}, "index": 0}],
           "usageMetadata": {…}, "modelVersion": "…", "responseId": "…"}

and a last event with finishReason (STOP or MAX_TOKENS). The key goes in x-goog-api-key (or
?key=); a wrong one is answered 401 UNAUTHENTICATED in Google's error shape, echoing the key.
(Google itself answers an invalid key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID; the
SDK raises a ClientError for both.) Faults come from base.py: FaultMiddleware's 429 and 503
bodies are in OpenAI's shape, which google-genai reads as well (error.code, error.message).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from .base import Faults, stream_fault, with_stream_fault
from .relay import ProxyStats, Upstream, faulty, sse_data, sse_events

GEMINI_MALFORMED = b'data: {"candidates": [{"content": {"parts": [{"text": "\xd0\xbe\xd0\xb1\r\n\r\n'
_SEPARATOR = b"\r\n\r\n"
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}


def google_error(code: int, status: str, message: str, reason: str | None = None) -> JSONResponse:
    error: dict = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
    return JSONResponse({"error": error}, status_code=code)


def _text(content: dict) -> str:
    return "".join(part.get("text", "") for part in content.get("parts", []))


def chat_request(body: dict) -> dict:
    """The OpenAI chat-completions request for a Gemini generateContent body."""
    messages = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for content in body.get("contents", []):
        messages.append({"role": "assistant" if content.get("role") == "model" else "user", "content": _text(content)})
    config = body.get("generationConfig", {})
    request = {"model": "default", "messages": messages, "stream": True, "temperature": config.get("temperature", 1.0)}
    if "maxOutputTokens" in config:
        request["max_tokens"] = config["maxOutputTokens"]
    return request


async def gemini_chunks(upstream_events: AsyncIterator[bytes], model: str) -> AsyncIterator[dict]:
    """GenerateContentResponse dicts for the upstream's chat-completion events."""
    response_id = uuid.uuid4().hex[:20]
    pieces = 0
    finish = "STOP"

    def chunk(text: str, finish_reason: str | None = None) -> dict:
        candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish_reason:
            candidate["finishReason"] = finish_reason
        usage = {"candidatesTokenCount": pieces, "totalTokenCount": pieces}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}

    async for event in upstream_events:
        data = sse_data(event)
        if not data:
            continue
        if data == "[DONE]":
            break
        choice = json.loads(data)["choices"][0]
        finish = _FINISH.get(choice.get("finish_reason") or "stop", "OTHER")
        text = (choice.get("delta") or {}).get("content")
        if text:
            pieces += 1
            yield chunk(text)
    yield chunk("", finish)


async def _sse(chunks: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode("utf-8") + _SEPARATOR


def gemini_server(upstream: str, faults: Faults, api_key: str, stats: ProxyStats | None = None) -> ASGIApp:
    """An app answering Gemini requests from `upstream` (an OpenAI-protocol base URL with "/v1")."""
    stats = stats if stats is not None else ProxyStats()
    app = FastAPI()

    @app.post("/{version}/models/{target}")
    async def generate(version: str, target: str, request: Request) -> Response:
        model, _, method = target.partition(":")
        if version not in ("v1", "v1beta") or method not in ("streamGenerateContent", "generateContent"):
            return google_error(404, "NOT_FOUND", f"{version}/models/{model}:{method} is not found.")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key", "")
        if key != api_key:
            return google_error(
                401, "UNAUTHENTICATED", f"API key not valid: {key}. Please pass a valid API key.", "API_KEY_INVALID"
            )
        body = await request.json()
        stats.last_request = body
        upstream_call = Upstream(stats)
        response = await upstream_call.send("POST", f"{upstream}/chat/completions", json=chat_request(body))
        if response.status_code != 200:
            await response.aread()
            await upstream_call.close()
            return google_error(500, "INTERNAL", f"upstream answered {response.status_code}: {response.text}")
        chunks = gemini_chunks(sse_events(response.aiter_raw()), model)
        if method == "generateContent":
            return JSONResponse(await _whole(upstream_call.relay(_sse(chunks))))
        events = with_stream_fault(_sse(chunks), stream_fault(request), GEMINI_MALFORMED)
        return StreamingResponse(upstream_call.relay(events), media_type="text/event-stream")

    return faulty(app, faults)


async def _whole(events: AsyncIterator[bytes]) -> dict:
    """One GenerateContentResponse from a stream of them: the texts joined, the last metadata."""
    text, last = "", {}
    async for event in events:
        last = json.loads(sse_data(event))
        text += _text(last["candidates"][0]["content"])
    last["candidates"][0]["content"]["parts"] = [{"text": text}]
    return last
