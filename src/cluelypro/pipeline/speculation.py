"""Work started on a pause in speech, before END_SILENCE_MS confirms that the utterance is over.

At a short pause (SPECULATIVE_ASR_MS) the speaker gate decides whose voice it is (≈40 ms); only
then is the utterance transcribed (the other speaker's always, the user's own only when the
until-said policy needs it) and, if the other speaker asked a question, the LLM starts answering
it. Own speech never reaches an LLM. When the silence window closes on the same utterance the
pipeline adopts the speculation; if the speaker goes on, it is dropped: its ASR and LLM work are
cancelled (a local generation stops within one token, a cloud stream is closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from cluelypro.metrics.timeline import milliseconds_since
from cluelypro.pipeline.fallback import Output, Skipped
from cluelypro.pipeline.frames import Heard
from cluelypro.pipeline.growing import GrowingList
from cluelypro.pipeline.tasks import TaskOwner

LlmItem = Output[str] | Skipped  # what the LLM chain yields: text pieces and hand-overs


class LlmPrefetch:
    """An LLM answer to `text`, running ahead of its question; adopted, or cancelled. Its items
    are what the LLM chain yields (text pieces and hand-overs); `error` is why it ended early."""

    def __init__(self, text: str, items: Callable[[], AsyncGenerator[LlmItem, None]], owner: TaskOwner) -> None:
        self.text = text
        self.started = time.monotonic()
        self.items: GrowingList[LlmItem] = GrowingList()
        self.error: Exception | None = None
        self.first_output_ms: dict[str, int] = {}  # engine → its time to first token
        self._task = owner.spawn(self._collect(items), on_failure=_never_raised, name="llm-prefetch")

    async def _collect(self, items: Callable[[], AsyncGenerator[LlmItem, None]]) -> None:
        try:
            # aclosing: a cancelled prefetch must wait for its generation thread to stop before
            # anything else may use the model
            async with aclosing(items()) as stream:
                async for item in stream:
                    if isinstance(item, Output):
                        self.first_output_ms.setdefault(item.engine, milliseconds_since(self.started))
                    self.items.add(item)
        except Exception as error:  # handed to whoever adopts the prefetch
            self.error = error
        finally:
            self.items.finish()

    def cancel(self) -> None:
        self._task.cancel()


def _never_raised(error: BaseException) -> None:
    raise AssertionError("LlmPrefetch._collect keeps its errors") from error


@dataclass
class Speculation:
    utt: int
    end: float
    task: asyncio.Task[Heard] | None = None
    prefetch: LlmPrefetch | None = None
    dropped: bool = False

    def drop(self) -> None:
        """The guess was wrong (or not needed): cancel its gate, ASR and LLM work."""
        self.dropped = True
        if self.task is not None:
            self.task.cancel()
        if self.prefetch is not None:
            self.prefetch.cancel()
