"""The fallback chain's rules, on small engines written for the purpose (the real cloud engines
against real local servers are in test_cloud_llm.py and test_cloud_audio.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cluelypro import secrets
from cluelypro.pipeline.fallback import (
    COOLING_DOWN,
    EMPTY,
    AllEnginesFailed,
    Breaker,
    ChainPolicy,
    EngineChain,
    Output,
    Skipped,
    first_answering,
)


class Engine:
    """Yields "a", "b" after `delay` seconds; or fails before or after its first item."""

    def __init__(self, name: str, delay: float = 0.0, fail: str | None = None, remote: bool = True) -> None:
        self.name, self.delay, self.fail, self.remote = name, delay, fail, remote
        self.running = threading.Event()

    def stream(self):
        self.running.set()
        try:
            time.sleep(self.delay)
            if self.fail == "before":
                raise ConnectionError(f"{self.name} refused")
            yield "a"
            if self.fail == "after":
                raise ConnectionError("stream cut")
            yield "b"
        finally:
            self.running.clear()


def collect(engines, budget_s: float | None = 0.3) -> list:
    async def run() -> list:
        return [item async for item in first_answering("llm", engines, lambda e: e.stream(), budget_s)]

    return asyncio.run(run())


def test_the_first_engine_that_answers_is_used() -> None:
    assert collect([Engine("one"), Engine("two")]) == [Output("one", "a"), Output("one", "b")]


def test_a_failing_engine_hands_over_with_its_reason() -> None:
    items = collect([Engine("one", fail="before"), Engine("two")])
    assert items == [Skipped("one", "ConnectionError: one refused"), Output("two", "a"), Output("two", "b")]


def test_a_slow_first_output_hands_over_after_the_budget_but_the_last_engine_has_none() -> None:
    slow = Engine("slow", delay=5.0)
    items = collect([slow, Engine("last", delay=0.6)], budget_s=0.3)
    assert items[0] == Skipped("slow", "no output within 0.3 s")
    assert items[1:] == [Output("last", "a"), Output("last", "b")], "the last engine is waited for"
    assert slow.running.is_set(), "the slow engine was waited for: it has finished"


def test_a_stream_cut_mid_answer_is_marked_so_its_text_can_be_dropped() -> None:
    items = collect([Engine("cut", fail="after"), Engine("two")])
    assert items == [
        Output("cut", "a"),
        Skipped("cut", "ConnectionError: stream cut", after_output=True),
        Output("two", "a"),
        Output("two", "b"),
    ]


def test_when_every_engine_fails_the_error_says_why() -> None:
    with pytest.raises(AllEnginesFailed, match="every llm engine failed .one: ConnectionError: one refused; two"):
        collect([Engine("one", fail="before"), Engine("two", fail="before")])


def test_a_local_engine_is_waited_for_before_anything_else_may_use_it() -> None:
    local = Engine("local", delay=0.5, remote=False)
    collect([local, Engine("two")], budget_s=0.1)
    assert not local.running.is_set(), "the skipped local engine had stopped when the chain moved on"


def test_reasons_never_carry_a_key() -> None:
    secrets.register("sk-test-0123456789abcdef")

    class Leaky(Engine):
        def stream(self):
            raise PermissionError("401: Incorrect API key provided: sk-test-0123456789abcdef")
            yield  # a generator

    items = collect([Leaky("leaky"), Engine("two")])
    assert "sk-test" not in items[0].reason and "***" in items[0].reason


# --- circuit breaker and watchdog (issue 9: F5, F7) ----------------------------------------------


def chain(engines, **policy) -> EngineChain:
    return EngineChain("tts", engines, ChainPolicy(**{"budget_s": 0.3, **policy}))


def run_calls(engine_chain: EngineChain, calls: int, concurrent: bool = False) -> list[list]:
    async def one() -> list:
        items = []
        try:
            async for item in engine_chain.stream(lambda e: e.stream()):
                items.append(item)
        except AllEnginesFailed as error:
            items.append(error)
        return items

    async def run() -> list[list]:
        if concurrent:
            return list(await asyncio.gather(*(one() for _ in range(calls))))
        return [await one() for _ in range(calls)]

    return asyncio.run(run())


def test_a_failed_engine_is_rested_with_one_cooling_down_per_cool_down() -> None:
    broken, healthy = Engine("broken", fail="before"), Engine("healthy")
    results = run_calls(chain([broken, healthy]), 4)
    assert results[0][0] == Skipped("broken", "ConnectionError: broken refused")
    assert results[1][0] == Skipped("broken", COOLING_DOWN)
    assert all(isinstance(first, Output) for first, *_ in results[2:]), "later calls skip it silently"


def test_calls_in_flight_hand_over_at_once_when_the_engine_fails_elsewhere() -> None:
    def seconds_for(calls: int) -> float:
        started = time.monotonic()
        results = run_calls(chain([Engine("slow", delay=5.0), Engine("healthy")], budget_s=0.5), calls, True)
        assert all(isinstance(items[-1], Output) for items in results)
        return time.monotonic() - started

    one_call = seconds_for(1)  # one budget, measured in this run on this machine
    assert seconds_for(3) < 2 * one_call, "three calls paid one budget each, in a row"


def test_the_cool_down_doubles_with_each_failure_in_a_row_and_resets_on_success() -> None:
    now = [0.0]
    breaker = Breaker(30, 300, clock=lambda: now[0])

    def rest_after_failure() -> float:
        breaker.failed()
        started = now[0]
        while breaker.open:
            now[0] += 1
        return now[0] - started

    assert [rest_after_failure() for _ in range(6)] == [30, 60, 120, 240, 300, 300]
    breaker.succeeded()
    assert rest_after_failure() == 30


def test_the_last_engine_is_never_rested() -> None:
    only = Engine("only", fail="before")
    results = run_calls(chain([only]), 3)
    assert all(isinstance(items[-1], AllEnginesFailed) and "refused" in str(items[-1]) for items in results)


def test_a_hung_last_engine_is_dropped_by_the_watchdog() -> None:
    hung = Engine("hung", delay=3.0, remote=False)
    (items,) = run_calls(chain([hung], watchdog_s=0.3, exit_wait_s=0.2), 1)
    assert isinstance(items[-1], AllEnginesFailed) and "no output for 0.3 s (hung)" in str(items[-1])
    assert hung.running.is_set(), "the hung local thread was waited for: it has finished"


def test_a_local_engine_given_up_on_is_not_driven_by_a_second_thread() -> None:
    hung = Engine("hung", delay=1.0, remote=False)
    engine_chain = chain([hung], watchdog_s=0.2, exit_wait_s=0.1)
    first, second = run_calls(engine_chain, 2)
    assert isinstance(first[-1], AllEnginesFailed)
    assert "still stuck in an earlier call" in str(second[-1]), "the second call waited, then refused"


def test_an_empty_stream_is_a_failure_where_the_policy_says_so() -> None:
    class Empty(Engine):
        def stream(self):
            return iter(())

    results = run_calls(chain([Empty("empty"), Engine("next")], empty_is_failure=True), 1)
    assert results[0][0] == Skipped("empty", EMPTY) and results[0][-1] == Output("next", "b")


def test_a_call_queued_behind_others_on_a_one_thread_engine_is_not_taken_for_hung() -> None:
    """The embedded LLM serves one generation at a time: a call waiting its turn gets no output
    for longer than the watchdog while the engine is busy with another; that is not a hang."""

    class OneThread(Engine):
        turn = threading.Lock()

        def stream(self):
            with self.turn:
                for item in ("a", "b", "c", "d", "e", "f"):
                    time.sleep(0.1)
                    yield item

    results = run_calls(chain([OneThread("local", remote=False)], watchdog_s=0.3), 2, concurrent=True)
    assert all([item.item for item in items] == list("abcdef") for items in results), results
