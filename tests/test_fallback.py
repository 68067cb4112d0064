"""The fallback chain's rules, on small engines written for the purpose (the real cloud engines
against real local servers are in test_cloud_llm.py and test_cloud_audio.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cluelypro import secrets
from cluelypro.pipeline.fallback import AllEnginesFailed, Output, Skipped, first_answering


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
    started = time.monotonic()
    items = collect([Engine("slow", delay=5.0), Engine("last", delay=0.6)], budget_s=0.3)
    assert items[0] == Skipped("slow", "no output within 0.3 s")
    assert items[1:] == [Output("last", "a"), Output("last", "b")], "the last engine is waited for"
    assert time.monotonic() - started < 5.0, "the slow engine was not waited for"


def test_a_stream_cut_mid_answer_is_marked_so_its_text_can_be_dropped() -> None:
    items = collect([Engine("cut", fail="after"), Engine("two")])
    assert items == [Output("cut", "a"), Skipped("cut", "ConnectionError: stream cut", after_output=True),
                     Output("two", "a"), Output("two", "b")]


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
