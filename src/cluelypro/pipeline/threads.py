"""Run a blocking iterator (LLM tokens, TTS chunks) in a worker thread, consumed from asyncio.

Leaving the `async for` early (break, cancellation) asks the thread to stop; it closes the
iterator in its own thread after the item in hand, which is how a generation is cancelled.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    items: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def post(item: object) -> None:
        if not stop.is_set():  # nobody listens any more (and the loop may be closed)
            loop.call_soon_threadsafe(items.put_nowait, item)

    def produce() -> None:
        iterator = make_iterator()
        try:
            for item in iterator:
                if stop.is_set():
                    break
                post(item)
        except BaseException as error:  # handed to the consumer, raised there
            post(error)
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()
            post(_DONE)

    worker = threading.Thread(target=produce, name="engine-stream", daemon=True)
    worker.start()
    try:
        while (item := await items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
