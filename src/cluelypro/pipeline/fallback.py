"""Engines in a fallback chain (SPEC §2.6, §5): each in turn until one answers.

An engine is skipped when it raises (an HTTP 429 or 5xx, a reset connection, malformed JSON, a
missing key) or when its first output does not come within the budget; the next engine is then
asked the same thing, so nothing is lost. The last engine of a chain has no budget: there is
nothing left to hand over to. Engines marked `remote` (cloud clients) are not waited for once
skipped — their worker thread ends on its own at the client's read timeout — while a local
engine is always waited for, so that it is never driven by two threads at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Generic, TypeVar

from cluelypro.secrets import redact
from cluelypro.threads import iterate_in_thread

E = TypeVar("E")
T = TypeVar("T")

REASON_CHARS = 300


@dataclass(frozen=True)
class Output(Generic[T]):
    """An item from the engine that is answering."""

    engine: str
    item: T


@dataclass(frozen=True)
class Skipped:
    """An engine failed; the next one is asked. `after_output`: it had already produced output,
    which is void (a stream cut mid-answer)."""

    engine: str
    reason: str
    after_output: bool = False

    def event_fields(self, stage: str) -> dict[str, object]:
        """The fields of its `provider_skipped` event (SPEC §3a)."""
        return {"stage": stage, "provider": self.engine, "reason": self.reason, "after_output": self.after_output}


class AllEnginesFailed(RuntimeError):
    def __init__(self, stage: str, skipped: list[Skipped]) -> None:
        reasons = "; ".join(f"{s.engine}: {s.reason}" for s in skipped) or "no engine configured"
        super().__init__(f"every {stage} engine failed ({reasons})")
        self.skipped = skipped


def engine_name(engine: object) -> str:
    return getattr(engine, "name", type(engine).__name__)


def describe(error: BaseException) -> str:
    """A one-line reason with no secret in it."""
    text = " ".join(str(error).split()) or "no message"
    return redact(f"{type(error).__name__}: {text}")[:REASON_CHARS]


async def first_answering(
    stage: str,
    engines: Sequence[E],
    open_stream: Callable[[E], Iterator[T]],
    budget_s: float | None,
) -> AsyncIterator[Output[T] | Skipped]:
    """The items of the first engine that answers, as `Output`s, after a `Skipped` for each engine
    that did not. `open_stream(engine)` runs in a worker thread; an engine that ends its stream
    without an item has answered (with nothing: small talk, silence)."""
    skipped: list[Skipped] = []
    for position, engine in enumerate(engines):
        name = engine_name(engine)
        budget = budget_s if position < len(engines) - 1 else None
        produced = False
        stream = iterate_in_thread(lambda: open_stream(engine), wait_on_exit=not getattr(engine, "remote", False))
        try:
            async with aclosing(stream) as items:
                while True:
                    try:
                        item = await (anext(items) if produced or budget is None else _next_within(items, budget))
                    except StopAsyncIteration:
                        return
                    produced = True
                    yield Output(name, item)
        except _TooSlow:
            skip = Skipped(name, f"no output within {budget:g} s")
        except Exception as error:  # any failure of an engine hands over to the next one
            skip = Skipped(name, describe(error), produced)
        skipped.append(skip)
        yield skip
    raise AllEnginesFailed(stage, skipped)


class _TooSlow(Exception):
    pass


async def _next_within(items: AsyncIterator[T], seconds: float) -> T:
    """The next item, or _TooSlow once `seconds` pass (the engine's own timeouts stay its errors)."""
    waiting = asyncio.ensure_future(anext(items))
    done, _ = await asyncio.wait({waiting}, timeout=seconds)
    if not done:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        raise _TooSlow
    return waiting.result()
