"""What the pipeline needs from a thesis-writing LLM."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from cluelypro.packaged import ProgressCallback


class ThesisLLM(Protocol):
    name: str
    """Provider name for the timeline, e.g. "local:qwen2.5-coder-1.5b"."""

    def load(self, progress: ProgressCallback | None = None) -> None:
        """Find (assemble on first use) and load the model; progress reports the assembly."""

    def warm_up(self) -> None:
        """Evaluate the system prompt so it sits in the prefix (KV) cache."""

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yield text pieces as they are generated; closing the generator stops generation."""
