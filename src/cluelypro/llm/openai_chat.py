"""ThesisLLM over the OpenAI chat-completions protocol, with the official `openai` SDK.

Provider "openai" is api.openai.com (gpt-4o-mini); provider "compatible" is any server speaking
the same protocol at `base_url` (vLLM, Ollama, llama.cpp's server), which often needs no key.
Cerebras' SDK is generated from the same template (see cerebras.py), so the streaming code here
serves both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cluelypro.cloud import openai_client
from cluelypro.llm.cloud import TEMPERATURE, CloudLLM

NO_KEY = "no-key"
"""Sent to a compatible server configured without a key (the SDK refuses an empty one)."""


def delta_text(chunk: Any) -> str | None:
    """The text of a streamed chunk's first choice. Cerebras' SDK tells its response types apart
    by validation: a chunk without `system_fingerprint` (which llama.cpp's server and some other
    compatible servers leave out) is read as a whole-response model whose delta stays a dict."""
    choices = getattr(chunk, "choices", None)
    delta = getattr(choices[0], "delta", None) if choices else None
    return delta.get("content") if isinstance(delta, dict) else getattr(delta, "content", None)


class ChatCompletionsLLM(CloudLLM):
    """An SDK client of the OpenAI shape: `<sdk>.<client_class>(api_key, base_url, timeout,
    max_retries, ...)` with `client.chat.completions.create(..., stream=True)`."""

    sdk_module = "openai"
    client_class = "OpenAI"
    client_options: dict[str, Any] = {}
    request_options: dict[str, Any] = {}

    def _make_client(self) -> Any:
        return openai_client(
            self._api_key or NO_KEY,
            self.base_url,
            self.timeout_s,
            self.sdk_module,
            self.client_class,
            self.provider,
            **self.client_options,
        )

    def _generate(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        chunks = self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            stream=True,
            temperature=TEMPERATURE,
            max_tokens=max_tokens,
            **self.request_options,
        )
        try:
            for chunk in chunks:
                if piece := delta_text(chunk):
                    yield piece
        finally:
            chunks.close()  # closes the HTTP response: the server stops generating


class OpenAIChatLLM(ChatCompletionsLLM):
    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 1.5,
        provider: str = "openai",
    ) -> None:
        super().__init__(provider, api_key, model, base_url, timeout_s)
        self.key_required = provider != "compatible"
