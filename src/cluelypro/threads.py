"""Run a blocking iterator (LLM tokens, TTS chunks) in a worker thread, consumed from asyncio.

Leaving the `async for` early (break, cancellation) asks the thread to stop; it closes the
iterator in its own thread after the item in hand, which is how a generation is cancelled. The
consumer waits for that, so an engine is never driven by two threads at once — unless told not
to (`wait_on_exit=False`: a cloud client blocked in a read it will time out of by itself), or
unless the thread does not stop within `give_up_after_s` (a hung engine): the consumer then goes
on and `on_give_up` receives the future that completes when the thread finally ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(
    make_iterator: Callable[[], Iterator[T]],
    wait_on_exit: bool = True,
    give_up_after_s: float | None = None,
    on_give_up: Callable[[asyncio.Future], None] | None = None,
) -> AsyncGenerator[T, None]:
    loop = asyncio.get_running_loop()
    items: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    finished = loop.create_future()

    def post(item: object) -> None:
        if not stop.is_set():
            loop.call_soon_threadsafe(items.put_nowait, item)

    def mark_finished() -> None:
        if not finished.done():
            finished.set_result(None)

    def produce() -> None:
        try:
            iterator = make_iterator()
            for item in iterator:
                if stop.is_set():
                    break
                post(item)
            getattr(iterator, "close", lambda: None)()
        except BaseException as error:  # handed to the consumer, raised there
            post(error)
        finally:
            post(_DONE)
            try:
                loop.call_soon_threadsafe(mark_finished)
            except RuntimeError:  # the event loop is gone: nobody waits any more
                pass

    threading.Thread(target=produce, name="engine-stream", daemon=True).start()
    try:
        while (item := await items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if wait_on_exit:
            await outlast_cancellation(finished, give_up_after_s, on_give_up)


async def outlast_cancellation(
    finished: asyncio.Future,
    limit_s: float | None = None,
    on_give_up: Callable[[asyncio.Future], None] | None = None,
) -> None:
    """Wait for a worker thread to end even if cancelled again meanwhile (e.g. at loop shutdown):
    an engine must never be driven by two threads at once. It stops within one item, unless it
    is hung: after `limit_s` this gives up and tells `on_give_up`."""
    loop = asyncio.get_running_loop()
    deadline = None if limit_s is None else loop.time() + limit_s
    cancelled = False
    while not finished.done():
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        try:
            await asyncio.wait_for(asyncio.shield(finished), remaining)
        except asyncio.CancelledError:
            cancelled = True
        except asyncio.TimeoutError:
            break
    if not finished.done() and on_give_up is not None:
        on_give_up(finished)
    if cancelled:
        raise asyncio.CancelledError
