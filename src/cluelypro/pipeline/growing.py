"""A list that grows while its consumers read it: an LLM's items running ahead of their
question, a thesis's audio growing while TTS runs (and replayed for repeats)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar

T = TypeVar("T")


class GrowingList(Generic[T]):
    """Items that arrive over time; `stream()` replays those already there, then waits for more."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self.complete = False
        self._grew = asyncio.Event()

    def add(self, item: T) -> None:
        self.items.append(item)
        self._grew.set()

    def finish(self) -> None:
        self.complete = True
        self._grew.set()

    async def stream(self) -> AsyncGenerator[T, None]:
        position = 0
        while True:
            while position < len(self.items):
                yield self.items[position]
                position += 1
            if self.complete:
                return
            self._grew.clear()
            if position == len(self.items) and not self.complete:
                await self._grew.wait()
