"""Engines in a fallback chain (SPEC §2.6, §5): each in turn until one answers.

An engine is skipped when it raises (an HTTP 429 or 5xx, a reset connection, malformed JSON, a
missing key), when its first output does not come within the budget, or — where the chain's
policy says so — when it ends without any output; the next engine is then asked the same thing,
so nothing is lost. The last engine of a chain has no budget, only a generous watchdog: past it
the work is dropped and the stage reports an error instead of stalling for good.

An engine that failed is rested for a cool-down (circuit breaker, as LiveKit's FallbackAdapter
does): it is skipped at once, with one `provider_skipped` "cooling down" per cool-down, until it
is re-admitted; the cool-down doubles with each failure in a row, up to a limit, and resets on
success. Calls already waiting for it when it fails hand over at once too. The last engine is
never rested: there is nothing left to hand over to.

Engines marked `remote` (cloud clients) are not waited for once skipped — their worker thread
ends on its own at the client's read timeout — while a local engine is waited for, so that it is
never driven by two threads at once; if it does not stop (hung), it is given up on, and a later
call waits for that thread to end (within the watchdog) before using the engine again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Generic, TypeVar

from cluelypro.metrics.events import ProviderSkipped
from cluelypro.secrets import redact
from cluelypro.threads import iterate_in_thread

E = TypeVar("E")
T = TypeVar("T")

REASON_CHARS = 300
COOLING_DOWN = "cooling down"
STILL_STUCK = "still stuck in an earlier call"
EMPTY = "ended without any output"


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

    def event(self, stage: str) -> ProviderSkipped:
        """Its `provider_skipped` event (SPEC §3a)."""
        return ProviderSkipped(stage, self.engine, self.reason, self.after_output)


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


@dataclass(frozen=True)
class ChainPolicy:
    budget_s: float | None  # first output of every engine but the last
    watchdog_s: float | None = None  # any other wait for output: past it the engine counts as hung
    cooldown_s: float = 30.0  # rest after a failure, doubling with each failure in a row
    max_cooldown_s: float = 300.0
    empty_is_failure: bool = False  # an engine that ends with no output has failed (LLM, TTS)
    exit_wait_s: float = 5.0  # how long a local engine's thread may take to stop before it is given up on


class Breaker:
    """The circuit breaker of one engine: closed (used), or open (skipped) until a time."""

    def __init__(self, cooldown_s: float, max_cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._announced = True
        self._waiters: set[asyncio.Future] = set()

    @property
    def open(self) -> bool:
        return self._clock() < self._open_until

    def announce(self) -> bool:
        """True the first time it is asked during a cool-down: that skip is reported, later ones not."""
        first, self._announced = not self._announced, True
        return first

    def failed(self) -> None:
        """A failure opens the breaker; failures while it is already open (calls that were in
        flight together) do not lengthen the rest."""
        if self.open:
            return
        self._failures += 1
        rest = min(self.max_cooldown_s, self.cooldown_s * 2 ** (self._failures - 1))
        self._open_until = self._clock() + rest
        self._announced = False
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def succeeded(self) -> None:
        self._failures = 0

    def tripped(self) -> asyncio.Future:
        """A future that completes when the breaker next opens."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return waiter


class _EngineHealth:
    def __init__(self, policy: ChainPolicy) -> None:
        self.breaker = Breaker(policy.cooldown_s, policy.max_cooldown_s)
        self._abandoned: set[asyncio.Future] = set()  # worker threads that were given up on
        self._last_output = -math.inf  # monotonic time of the engine's last output, to any call

    def produced(self) -> None:
        self._last_output = time.monotonic()

    def busy_elsewhere(self, within_s: float) -> bool:
        """The engine gave some call output within `within_s`: it is working, not hung (a call
        queued behind others on a one-thread engine waits its turn)."""
        return time.monotonic() - self._last_output < within_s

    def abandon(self, finished: asyncio.Future) -> None:
        self._abandoned.add(finished)
        finished.add_done_callback(self._abandoned.discard)

    async def settled(self, limit_s: float | None) -> bool:
        """Whether no worker thread given up on is still running (waiting up to `limit_s`)."""
        if not self._abandoned:
            return True
        await asyncio.wait(set(self._abandoned), timeout=limit_s)
        return not self._abandoned


class EngineChain(Generic[E]):
    """The engines of one stage, in order of preference, with their breakers."""

    def __init__(self, stage: str, engines: Sequence[E], policy: ChainPolicy) -> None:
        self.stage = stage
        self.engines = list(engines)
        self.policy = policy
        self._health = {id(engine): _EngineHealth(policy) for engine in self.engines}

    def breaker(self, engine: E) -> Breaker:
        return self._health[id(engine)].breaker

    async def stream(self, open_stream: Callable[[E], Iterator[T]]) -> AsyncGenerator[Output[T] | Skipped, None]:
        """The items of the first engine that answers, as `Output`s, after a `Skipped` for each
        engine that did not (a resting engine only once per cool-down). `open_stream(engine)`
        runs in a worker thread. Raises AllEnginesFailed when none answers."""
        skipped: list[Skipped] = []
        for position, engine in enumerate(self.engines):
            last = position == len(self.engines) - 1
            health = self._health[id(engine)]
            if not last and health.breaker.open:
                resting = Skipped(engine_name(engine), COOLING_DOWN)
                skipped.append(resting)
                if health.breaker.announce():
                    yield resting
                continue
            skip: Skipped | None = None
            async with aclosing(self._engine_stream(engine, health, last, open_stream)) as items:
                async for item in items:
                    if isinstance(item, Skipped):
                        skip = item
                    else:
                        yield item
            if skip is None:
                return
            skipped.append(skip)
            if skip.reason != COOLING_DOWN or health.breaker.announce():
                yield skip
        raise AllEnginesFailed(self.stage, skipped)

    async def _engine_stream(
        self, engine: E, health: _EngineHealth, last: bool, open_stream: Callable[[E], Iterator[T]]
    ) -> AsyncGenerator[Output[T] | Skipped, None]:
        """One engine's items; a failure ends it with one `Skipped` (and opens its breaker)."""
        name, policy, produced = engine_name(engine), self.policy, False
        if not await health.settled(policy.watchdog_s):
            health.breaker.failed()
            yield Skipped(name, STILL_STUCK)
            return
        remote = getattr(engine, "remote", False)
        stream = iterate_in_thread(
            lambda: open_stream(engine),
            wait_on_exit=not remote,
            give_up_after_s=policy.exit_wait_s,
            on_give_up=health.abandon,
        )
        try:
            async with aclosing(stream) as items:
                while True:
                    first_with_budget = not produced and not last and policy.budget_s is not None
                    if first_with_budget:
                        limit, tripped, working = policy.budget_s, health.breaker.tripped(), None
                    else:
                        limit, tripped, working = policy.watchdog_s, None, health.busy_elsewhere
                    try:
                        item = await _next_within(items, limit, tripped, working)
                    except StopAsyncIteration:
                        break
                    health.produced()
                    if not produced:
                        health.breaker.succeeded()
                    produced = True
                    yield Output(name, item)
            if produced or not policy.empty_is_failure:
                return
            skip = Skipped(name, EMPTY)
        except _TooSlow as slow:
            skip = Skipped(name, slow.reason(limit, first_with_budget), produced)
        except _Tripped:
            skip = Skipped(name, COOLING_DOWN)
        except Exception as error:  # any failure of an engine hands over to the next one
            skip = Skipped(name, describe(error), produced)
        health.breaker.failed()
        yield skip


def first_answering(
    stage: str,
    engines: Sequence[E],
    open_stream: Callable[[E], Iterator[T]],
    budget_s: float | None,
) -> AsyncGenerator[Output[T] | Skipped, None]:
    """One request through a fresh chain of `engines` (no breaker memory between calls)."""
    return EngineChain(stage, engines, ChainPolicy(budget_s)).stream(open_stream)


class _TooSlow(Exception):
    @staticmethod
    def reason(limit: float | None, within_budget: bool) -> str:
        return f"no output within {limit:g} s" if within_budget else f"no output for {limit:g} s (hung)"


class _Tripped(Exception):
    """The engine failed in another call meanwhile: it is resting, hand over now."""


def _observed(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def _next_within(
    items: AsyncIterator[T],
    seconds: float | None,
    tripped: asyncio.Future | None,
    working: Callable[[float], bool] | None = None,
) -> T:
    """The next item; _TooSlow once `seconds` pass — unless `working(seconds)` says the engine
    is busy with other calls, which extends the wait — or _Tripped if `tripped` completes first
    (the engine's own timeouts stay its errors)."""
    if seconds is None and tripped is None:
        return await anext(items)
    waiting = asyncio.ensure_future(anext(items))
    waiting.add_done_callback(_observed)  # even if we are cancelled again before we look at it
    try:
        while True:
            await asyncio.wait(
                {waiting} | ({tripped} if tripped else set()), timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting.done() or (tripped is not None and tripped.done()):
                break
            if working is None or seconds is None or not working(seconds):
                break
    finally:
        if tripped is not None:
            tripped.cancel()  # a no-op if it has fired
        if not waiting.done():
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
    if not waiting.cancelled():  # the item (or the engine's error) came, perhaps just as time ran out
        return waiting.result()
    raise _Tripped if tripped is not None and not tripped.cancelled() else _TooSlow
