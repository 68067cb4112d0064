"""ThesisLLM on Google's Gemini API, with the official `google-genai` SDK.

The system message becomes the `system_instruction`; the worked examples and the question become
`contents` with roles user/model. Thinking is off (thinking_budget=0): a thinking model would
spend the latency budget before its first visible token. The SDK's retries and its automatic
stream continuation (a second request resuming a cut stream) are both off: a failed stream
raises, and the fallback chain hands over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cluelypro.cloud import import_sdk
from cluelypro.llm.cloud import TEMPERATURE, CloudLLM

ROLES = {"user": "user", "assistant": "model"}


def gemini_request(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instruction, contents) for chat `messages`; system messages are joined."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    contents = [
        {"role": ROLES[m["role"]], "parts": [{"text": m["content"]}]} for m in messages if m["role"] != "system"
    ]
    return system, contents


class GeminiLLM(CloudLLM):
    def __init__(
        self, api_key: str, model: str = "gemini-2.5-flash", base_url: str | None = None, timeout_s: float = 1.5
    ) -> None:
        super().__init__("gemini", api_key, model, base_url, timeout_s)
        self._types: Any = None

    def _make_client(self) -> Any:
        genai = import_sdk("google.genai", "Gemini")
        self._types = types = genai.types
        return genai.Client(
            vertexai=False,  # the Gemini Developer API, whatever GOOGLE_GENAI_USE_VERTEXAI says
            api_key=self._api_key,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                # milliseconds; the SDK applies it to connect, each read, write and pool
                timeout=round(self.timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),  # no retries
            ),
        )

    def _generate(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        types = self._types
        system, contents = gemini_request(messages)
        config = types.GenerateContentConfig(
            system_instruction=system,
            max_output_tokens=max_tokens,
            temperature=TEMPERATURE,
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            automatic_continuation=False,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        responses = self._client.models.generate_content_stream(model=self.model, contents=contents, config=config)
        try:
            for response in responses:
                candidate = response.candidates[0] if response.candidates else None
                for part in (candidate.content.parts or []) if candidate and candidate.content else []:
                    if part.text and not part.thought:
                        yield part.text
        finally:
            responses.close()  # closes the SDK's generators down to the HTTP response
