"""ThesisLLM on Cerebras Inference, with the official `cerebras-cloud-sdk`.

The SDK is generated from the same template as OpenAI's, so OpenAIChatLLM's streaming code is
used as it is. Differences: the base URL has no "/v1" (the SDK adds it to every path), and the
client would open a TCP connection at construction (`warm_tcp_connection`), which is turned off:
load() makes no network call. Cerebras' current models reason before they answer; the
reasoning comes apart from the text, and `reasoning_effort` keeps it short (the text's first
token waits for it).
"""

from __future__ import annotations

from cluelypro.llm.openai_chat import ChatCompletionsLLM


class CerebrasLLM(ChatCompletionsLLM):
    sdk_module = "cerebras.cloud.sdk"
    client_class = "Cerebras"
    client_options = {"warm_tcp_connection": False}

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 1.5,
        reasoning_effort: str | None = "low",
    ) -> None:
        super().__init__("cerebras", api_key, model, base_url, timeout_s)
        self.request_options = {"reasoning_effort": reasoning_effort} if reasoning_effort else {}
