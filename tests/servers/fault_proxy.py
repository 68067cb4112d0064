"""A reverse proxy for the OpenAI chat-completions protocol that commits faults on demand.

    faults, stats = Faults(), ProxyStats()
    with serve(fault_proxy(llama_base_url, faults, api_key="test-key", stats=stats)) as url:
        OpenAIChatLLM(key, model, base_url=url + "/v1")   # the OpenAI SDK wants "/v1" in it
        CerebrasLLM(key, model, base_url=url)             # Cerebras' SDK adds "/v1" itself
        faults.arm("reset")

Every /v1/... request goes to the upstream (llama.cpp's server) with httpx.AsyncClient, and a
streamed (SSE) answer comes back event by event, so `with_stream_fault` cuts it after exactly
two events (the role, then the first token). Cerebras speaks the same protocol, so this proxy
serves both paths. With `api_key`, a request with another Bearer key is answered 401 in the
provider's error shape, echoing the key back as some providers do (what redaction must catch).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp

from .base import Faults, stream_fault, with_stream_fault
from .relay import ProxyStats, Upstream, faulty, sse_events

# The third event of a stream, cut off inside a JSON string
OPENAI_MALFORMED = (
    b'data: {"id": "chatcmpl-cut", "object": "chat.completion.chunk", "choices": '
    b'[{"index": 0, "delta": {"content": "\xd0\xbe\xd0\xb1\n\n'
)
_RESPONSE_HEADERS = ("content-type", "x-request-id")


def openai_key_error(key: str) -> dict:
    return {
        "error": {
            "message": f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def cerebras_key_error(key: str) -> dict:
    return {
        "message": f"Wrong API Key: {key}",
        "type": "invalid_request_error",
        "param": "api_key",
        "code": "wrong_api_key",
    }


def fault_proxy(
    upstream: str,
    faults: Faults,
    api_key: str | None = None,
    key_error: Callable[[str], dict] = openai_key_error,
    stats: ProxyStats | None = None,
) -> ASGIApp:
    """An app forwarding /v1/<path> to `upstream`/<path> (`upstream` ends in "/v1")."""
    stats = stats if stats is not None else ProxyStats()
    app = FastAPI()

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if api_key is not None and authorization != f"Bearer {api_key}":
            return JSONResponse(key_error(authorization.removeprefix("Bearer ")), status_code=401)
        body = await request.body()
        stats.last_request = json.loads(body) if body else None
        upstream_call = Upstream(stats)
        response = await upstream_call.send(
            request.method,
            f"{upstream}/{path}",
            params=request.query_params,
            content=body,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        headers = {name: response.headers[name] for name in _RESPONSE_HEADERS if name in response.headers}
        chunks = response.aiter_raw()
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            chunks = with_stream_fault(sse_events(chunks), stream_fault(request), OPENAI_MALFORMED)
        return StreamingResponse(upstream_call.relay(chunks), status_code=response.status_code, headers=headers)

    return faulty(app, faults)
