"""Every task has an owner (SPEC §5): it is awaited, or its failure is reported — never lost.

Unlike asyncio.TaskGroup, one failing task does not cancel its siblings: a prompter whose
synthesis of one thesis failed must go on speaking the others. The owner turns the exception
into a report (an `error` event and a console line, by the caller's `on_failure`) the moment
the task ends, and `aclose()` cancels and awaits whatever is still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
FailureReport = Callable[[BaseException], None]


class TaskOwner:
    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, coroutine: Coroutine[Any, Any, T], on_failure: FailureReport, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run `coroutine` as a task owned here; if it raises, `on_failure` gets the exception."""
        task = asyncio.create_task(coroutine, name=name or f"{self.name}:{getattr(coroutine, '__qualname__', 'task')}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, on_failure))
        return task

    def _finished(self, task: asyncio.Task, on_failure: FailureReport) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        try:
            on_failure(error)
        except Exception:  # a report that fails must not hide the first failure
            log.exception("reporting the failure of %s failed", task.get_name())
            log.error("%s failed", task.get_name(), exc_info=error)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
