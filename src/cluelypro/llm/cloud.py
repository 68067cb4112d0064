"""What every cloud ThesisLLM adds to a cloud engine (cluelypro/cloud.py): streaming text."""

from __future__ import annotations

from collections.abc import Iterator

from cluelypro.cloud import CloudEngine

TEMPERATURE = 0.0  # greedy, as the embedded engine: the same question gets the same theses


class CloudLLM(CloudEngine):
    def __init__(self, provider: str, api_key: str, model: str, base_url: str | None, timeout_s: float) -> None:
        super().__init__(api_key, model, base_url, timeout_s)
        self.provider = provider
        self.name = f"{provider}:{model}"

    def warm_up(self) -> None:
        """Nothing to warm: the provider keeps its own prefix caches."""

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Text pieces as the provider streams them; the request is sent at the first next().
        Closing the generator closes the HTTP stream; any failure is raised (the chain hands over)."""
        if self._client is None:
            raise RuntimeError("call load() first")
        return self._generate(messages, max_tokens)

    def _generate(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        raise NotImplementedError
