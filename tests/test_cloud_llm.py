"""Cloud LLM engines through their real SDKs, against real local servers that speak the
providers' wire protocols (tests/servers), with the embedded model answering behind them.

One llama.cpp server (1 thread) stands in for every provider:

    openai      OpenAIChatLLM(provider="openai")      -> fault_proxy (OpenAI 401 shape)   -> llama
    cerebras    CerebrasLLM                           -> fault_proxy (Cerebras 401 shape) -> llama
    gemini      GeminiLLM                             -> gemini_server (Gemini REST)      -> llama
    compatible  OpenAIChatLLM(provider="compatible")  -> llama, directly (the healthy fallback)

Fault tests arm a fault on the first request to the failing path's server. Chain tests run the
pipeline's fallback chain (`first_answering`) over [failing engine, healthy engine] and measure
the hand-over delay: time from the request to the healthy engine's first output, minus that
engine's own time to first token when asked directly. The table is printed at the end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from cluelypro import secrets
from cluelypro.llm.cerebras import CerebrasLLM
from cluelypro.llm.cloud import CloudLLM
from cluelypro.llm.gemini import GeminiLLM, gemini_request
from cluelypro.llm.openai_chat import OpenAIChatLLM
from cluelypro.llm.prompts import thesis_messages
from cluelypro.llm.thesis_parser import ThesisStreamParser
from cluelypro.packaged import ModelUnavailableError
from cluelypro.pipeline.fallback import Output, Skipped, describe, first_answering
from servers.base import ConnectionDropped, Faults, serve
from servers.fault_proxy import cerebras_key_error, fault_proxy, openai_key_error
from servers.gemini_server import gemini_server
from servers.llama_server import llama_server
from servers.relay import ProxyStats

QUESTION = "Что такое фотосинтез?"
MESSAGES = thesis_messages(QUESTION)
MAX_TOKENS = 120
TIMEOUT_S = 1.0  # the failing engines' own connect/read timeout in the engine-level tests
BUDGET_S = 1.0  # the chain's budget for a first output; the engines there keep the default 1.5 s
SLOW_S = 10.0  # the slow fault's delay, far beyond both
HEALTHY_TIMEOUT_S = 30.0  # the fallback is the chain's last engine: nothing to hand over to
# Not shaped like real keys, so that only secrets.register (not its key pattern) can mask them
KEYS = {
    "openai": "test-openai-key-4f9c2a7e",
    "cerebras": "test-cerebras-key-8b1d3f6a",
    "gemini": "test-gemini-key-2e7a9c4d",
}
WRONG_KEY = "test-wrong-key-c3e8a1f5"
FAULTS = ("slow", "hang", "429", "503", "reset", "malformed", "401")
PATHS = ("openai", "cerebras", "gemini")
REASONS = {  # what the chain's Skipped.reason says, per fault
    "slow": r"no output within 1 s",
    "hang": r"no output within 1 s",
    "429": r"429",
    "503": r"503",
    "401": r"401",
    "reset": r"Connection error|RemoteProtocolError|incomplete chunked read",
    "malformed": r"JSONDecodeError|Failed to parse response as JSON",
}
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


class _DropInjectedResets(logging.Filter):
    """uvicorn logs the reset fault's deliberate exception with a traceback: keep the output readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionDropped)


logging.getLogger("uvicorn.error").addFilter(_DropInjectedResets())


@dataclass
class ProviderPath:
    name: str
    url: str
    faults: Faults
    stats: ProxyStats
    make: Callable[..., CloudLLM]  # make(key, timeout_s)

    @contextmanager
    def engine(self, key: str | None = None, timeout_s: float = TIMEOUT_S) -> Iterator[CloudLLM]:
        engine = self.make(key if key is not None else KEYS[self.name], timeout_s)
        engine.load()
        try:
            yield engine
        finally:
            engine.close()

    def arm(self, fault: str) -> str | None:
        """Arm `fault` on the next request; returns the key to use (the wrong one for 401)."""
        if fault == "401":
            return WRONG_KEY
        self.faults.arm(fault, seconds=SLOW_S if fault == "slow" else 0.0)
        return None


@pytest.fixture(autouse=True, scope="module")
def registered_keys() -> None:
    secrets.register(*KEYS.values(), WRONG_KEY)  # as the app does with every configured key


# --- no server needed ----------------------------------------------------------------------------


def test_gemini_request_splits_system_instruction_and_contents() -> None:
    system, contents = gemini_request(MESSAGES)
    assert system == MESSAGES[0]["content"]
    assert [c["role"] for c in contents[:2]] == ["user", "model"]
    assert contents[-1] == {"role": "user", "parts": [{"text": QUESTION}]}
    assert len(contents) == len(MESSAGES) - 1


def test_no_key_in_repr_and_a_missing_key_or_sdk_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    engines = [
        OpenAIChatLLM(KEYS["openai"], "gpt-4o-mini"),
        CerebrasLLM(KEYS["cerebras"], "gpt-oss-120b"),
        GeminiLLM(KEYS["gemini"]),
    ]
    for engine in engines:
        assert engine.remote is True
        assert engine._api_key not in repr(engine)
    assert [e.name for e in engines] == ["openai:gpt-4o-mini", "cerebras:gpt-oss-120b", "gemini:gemini-2.5-flash"]
    with pytest.raises(ModelUnavailableError, match="no API key"):
        OpenAIChatLLM("", "gpt-4o-mini").load()
    OpenAIChatLLM("", "local", base_url="http://127.0.0.1:9/v1", provider="compatible").load()  # keyless is fine
    for module, engine in [
        ("openai", OpenAIChatLLM("k" * 8, "m")),
        ("cerebras.cloud.sdk", CerebrasLLM("k" * 8, "m")),
        ("google.genai", GeminiLLM("k" * 8)),
    ]:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
        with pytest.raises(ModelUnavailableError, match=r"pip install 'cluelypro\[cloud\]'"):
            engine.load()


def test_load_and_warm_up_make_no_network_call() -> None:
    faults = Faults()
    with serve(fault_proxy("http://127.0.0.1:9/v1", faults)) as url:  # counts whatever reaches it
        for engine in (
            OpenAIChatLLM("k" * 8, "m", base_url=url + "/v1"),
            CerebrasLLM("k" * 8, "m", base_url=url),
            GeminiLLM("k" * 8, base_url=url),
        ):
            engine.load()
            engine.warm_up()
            engine.close()
    assert faults.requests == 0  # Cerebras' SDK would have warmed a TCP connection at construction


# --- the servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama() -> Iterator[str]:
    with llama_server() as base_url:
        # The first request evaluates the shared prompt prefix (~12 s on one thread); every
        # later one reuses it from llama.cpp's KV cache, as a cloud provider's prefix cache does.
        warm = OpenAIChatLLM("", "warm-up", base_url=base_url, provider="compatible", timeout_s=120)
        warm.load()
        for _ in warm.stream(MESSAGES, 1):
            pass
        warm.close()
        yield base_url


@pytest.fixture(scope="module")
def paths(llama: str) -> Iterator[dict[str, ProviderPath]]:
    faults = {name: Faults() for name in PATHS}
    stats = {name: ProxyStats() for name in PATHS}
    apps = {
        "openai": fault_proxy(llama, faults["openai"], KEYS["openai"], openai_key_error, stats["openai"]),
        "cerebras": fault_proxy(llama, faults["cerebras"], KEYS["cerebras"], cerebras_key_error, stats["cerebras"]),
        "gemini": gemini_server(llama, faults["gemini"], KEYS["gemini"], stats["gemini"]),
    }
    makers = {
        "openai": lambda url: lambda key, t: OpenAIChatLLM(key, "gpt-4o-mini", base_url=url + "/v1", timeout_s=t),
        "cerebras": lambda url: lambda key, t: CerebrasLLM(key, "gpt-oss-120b", base_url=url, timeout_s=t),
        "gemini": lambda url: lambda key, t: GeminiLLM(key, "gemini-2.5-flash", base_url=url, timeout_s=t),
    }
    with (
        serve(apps["openai"]) as openai_url,
        serve(apps["cerebras"]) as cerebras_url,
        serve(apps["gemini"]) as gemini_url,
    ):
        urls = {"openai": openai_url, "cerebras": cerebras_url, "gemini": gemini_url}
        yield {
            name: ProviderPath(name, urls[name], faults[name], stats[name], makers[name](urls[name])) for name in PATHS
        }


@pytest.fixture(autouse=True)
def no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fault a failed test did not use is not left for the next one."""
    yield
    for path in request.node.funcargs.get("paths", {}).values():
        path.faults.clear()


@pytest.fixture(scope="module")
def healthy(llama: str) -> Iterator[CloudLLM]:
    engine = OpenAIChatLLM("", "qwen2.5-coder-1.5b", base_url=llama, provider="compatible", timeout_s=HEALTHY_TIMEOUT_S)
    engine.load()
    yield engine
    engine.close()


def theses_of(pieces: list[str]) -> list[str]:
    parser = ThesisStreamParser()
    theses = [thesis for piece in pieces for thesis in parser.feed(piece)]
    return theses + parser.finish()


# --- each engine answers through its SDK ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "compatible", "cerebras", "gemini"])
def test_engine_streams_russian_theses(provider: str, llama: str, paths: dict[str, ProviderPath]) -> None:
    if provider in ("openai", "compatible"):  # straight to the llama.cpp server, which checks no key
        key, model = (KEYS["openai"], "gpt-4o-mini") if provider == "openai" else ("", "qwen2.5-coder-1.5b")
        path = ProviderPath(
            provider,
            llama,
            Faults(),
            ProxyStats(),
            lambda key, t: OpenAIChatLLM(key, model, base_url=llama, provider=provider, timeout_s=t),
        )
    else:
        key, path = None, paths[provider]
    with path.engine(key, timeout_s=HEALTHY_TIMEOUT_S) as engine:
        pieces = list(engine.stream(MESSAGES, MAX_TOKENS))
    theses = theses_of(pieces)
    assert len(pieces) >= 5, pieces  # streamed, not one block
    assert theses and CYRILLIC.search(theses[0]), pieces
    assert engine.name.startswith(f"{provider}:")


@pytest.mark.slow
def test_requests_on_the_wire(paths: dict[str, ProviderPath]) -> None:
    """What the SDKs sent: greedy, bounded, streamed; Gemini with a system instruction and no thinking."""
    for name in PATHS:
        with paths[name].engine(timeout_s=HEALTHY_TIMEOUT_S) as engine:
            assert list(engine.stream(MESSAGES, 7))
    for name in ("openai", "cerebras"):
        sent = paths[name].stats.last_request
        assert sent["stream"] is True and sent["temperature"] == 0 and sent["max_tokens"] == 7
        assert sent["messages"] == MESSAGES
    assert paths["cerebras"].stats.last_request["reasoning_effort"] == "low"  # reasoning kept short
    assert "reasoning_effort" not in paths["openai"].stats.last_request
    sent = paths["gemini"].stats.last_request
    assert sent["systemInstruction"]["parts"][0]["text"] == MESSAGES[0]["content"]
    assert sent["contents"][-1] == {"role": "user", "parts": [{"text": QUESTION}]}
    config = sent["generationConfig"]
    assert config["maxOutputTokens"] == 7 and config["temperature"] == 0
    thinking = config["thinkingConfig"]
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0


@pytest.mark.slow
def test_gemini_server_answers_generate_content_too(paths: dict[str, ProviderPath]) -> None:
    system, contents = gemini_request(MESSAGES)
    body = {
        "systemInstruction": {"parts": [{"text": system}]},
        "contents": contents,
        "generationConfig": {"maxOutputTokens": 7, "temperature": 0},
    }
    url = f"{paths['gemini'].url}/v1beta/models/gemini-2.5-flash:generateContent"
    answer = httpx.post(url, json=body, headers={"x-goog-api-key": KEYS["gemini"]}, timeout=HEALTHY_TIMEOUT_S).json()
    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS" and CYRILLIC.search(candidate["content"]["parts"][0]["text"])
    wrong = httpx.post(url, json=body, headers={"x-goog-api-key": WRONG_KEY}, timeout=HEALTHY_TIMEOUT_S)
    assert wrong.status_code == 401 and wrong.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.slow
@pytest.mark.parametrize("name", PATHS)
def test_closing_the_stream_closes_the_http_stream(name: str, paths: dict[str, ProviderPath]) -> None:
    path = paths[name]
    with path.engine(timeout_s=HEALTHY_TIMEOUT_S) as engine:
        stream = engine.stream(MESSAGES, MAX_TOKENS)
        next(stream)
        assert path.stats.open_streams == 1
        stream.close()
        deadline = time.monotonic() + 5
        while path.stats.open_streams and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stats.open_streams == 0  # the server saw the client go and closed its upstream


# --- each fault makes the engine raise -----------------------------------------------------------


@dataclass
class FaultResult:
    pieces: list[str] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0


def run_faulty(engine: CloudLLM) -> FaultResult:
    result, started = FaultResult(), time.monotonic()
    try:
        for piece in engine.stream(MESSAGES, MAX_TOKENS):
            result.pieces.append(piece)
    except Exception as error:  # what the chain would catch
        result.error = error
    result.seconds = time.monotonic() - started
    return result


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", PATHS)
def test_fault_makes_the_engine_raise(name: str, fault: str, paths: dict[str, ProviderPath]) -> None:
    path = paths[name]
    with path.engine(key=path.arm(fault), timeout_s=TIMEOUT_S) as engine:
        result = run_faulty(engine)
    assert result.error is not None, f"{name} did not raise on {fault}: {''.join(result.pieces)!r}"
    message = f"{type(result.error).__name__}: {result.error}"
    if fault in ("slow", "hang"):
        # given up at its own read timeout (1 s), well before the server's delay (10 s / never)
        assert TIMEOUT_S * 0.8 <= result.seconds < SLOW_S / 2, (result.seconds, message)
        assert re.search(r"[Tt]ime(d )?out", message), message
    elif fault in ("reset", "malformed"):
        assert result.pieces, message  # it failed mid-answer, after its first output
    else:
        assert fault in message, message
        assert result.seconds < SLOW_S / 2
    if fault == "401":
        assert WRONG_KEY in message  # the server echoed the key: the SDK's message carries it ...
        assert WRONG_KEY not in describe(result.error)  # ... and the chain's reason does not


# --- the fallback chain hands over ---------------------------------------------------------------


@dataclass
class ChainRun:
    skipped: list[tuple[Skipped, float]] = field(default_factory=list)
    answered_by: str | None = None
    first_output_s: float | None = None  # of the engine that answered
    theses: list[str] = field(default_factory=list)


def run_chain(engines: list[CloudLLM], budget_s: float = BUDGET_S) -> ChainRun:
    """The chain over `engines`, read until the answering engine's first thesis."""

    async def main() -> ChainRun:
        run, parser, started = ChainRun(), ThesisStreamParser(), time.monotonic()
        chain = first_answering("llm", engines, lambda engine: engine.stream(MESSAGES, MAX_TOKENS), budget_s)
        async with aclosing(chain) as items:
            async for item in items:
                now = time.monotonic() - started
                if isinstance(item, Skipped):
                    run.skipped.append((item, now))
                    continue
                assert isinstance(item, Output)
                if run.answered_by != item.engine:  # outputs of an engine skipped later are void
                    run.answered_by, run.first_output_s, run.theses = item.engine, now, []
                    parser = ThesisStreamParser()
                run.theses += parser.feed(item.item)
                if run.theses:
                    break  # closing the chain stops the generation
            else:
                run.theses += parser.finish()
        return run

    return asyncio.run(main())


@pytest.fixture(scope="module")
def healthy_ttft(healthy: CloudLLM) -> float:
    """The fallback engine's own time to first output, through the same chain, when asked first."""
    return statistics.median(run_chain([healthy]).first_output_s for _ in range(3))


HandoverRow = tuple[float, float, float, str]  # skipped at, first output, hand-over delay, reason


@pytest.fixture(scope="module")
def handover_table(request: pytest.FixtureRequest, healthy_ttft: float) -> Iterator[dict[tuple[str, str], HandoverRow]]:
    """The hand-over tests' figures, printed as one table once they have all run. Only written
    by the tests, never read by one: no test's result depends on which others ran before it."""
    rows: dict[tuple[str, str], HandoverRow] = {}
    yield rows
    if rows:
        with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
            print("\n" + "\n".join(handover_lines(rows, healthy_ttft)))


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", PATHS)
def test_chain_hands_over_to_the_next_engine(
    name: str,
    fault: str,
    paths: dict[str, ProviderPath],
    healthy: CloudLLM,
    healthy_ttft: float,
    handover_table: dict[tuple[str, str], HandoverRow],
) -> None:
    """Every fault on the first provider: the next one answers. A wrong key's 401, whose body
    echoes the key, leaves a reason with the key masked (the key was registered, as the app does)."""
    path = paths[name]
    with path.engine(key=path.arm(fault), timeout_s=1.5) as failing:  # the app's default timeout
        run = run_chain([failing, healthy])
    assert len(run.skipped) == 1, run.skipped
    skip, skipped_at = run.skipped[0]
    assert skip.engine == failing.name and skip.engine.startswith(f"{name}:")
    assert re.search(REASONS[fault], skip.reason), skip.reason
    assert skip.after_output == (fault in ("reset", "malformed")), skip
    assert run.answered_by == healthy.name
    assert run.theses and CYRILLIC.search(run.theses[0]), run.theses
    assert WRONG_KEY not in skip.reason and not any(key in skip.reason for key in KEYS.values())
    if fault == "401":
        assert secrets.MASK in skip.reason, skip.reason  # the echoed key was there, masked
    handover_table[name, fault] = (skipped_at, run.first_output_s, run.first_output_s - healthy_ttft, skip.reason)


def handover_lines(rows: dict[tuple[str, str], HandoverRow], healthy_ttft: float) -> list[str]:
    lines = [
        f"hand-over delay = next engine's first output - its own TTFT ({healthy_ttft * 1000:.0f} ms, median of 3); "
        f"budget {BUDGET_S:g} s, failing engine timeout 1.5 s",
        "(after skip: the part of it after the failing engine was skipped, i.e. minus the time it took to fail)",
        f"{'path':9} {'fault':10} {'skipped at':>10} {'1st output':>10} {'hand-over':>10} {'after skip':>10}  reason",
    ]
    for (name, fault), (skipped_at, first, delay, reason) in rows.items():
        lines.append(
            f"{name:9} {fault:10} {skipped_at * 1000:8.0f}ms {first * 1000:8.0f}ms {delay * 1000:8.0f}ms "
            f"{(delay - skipped_at) * 1000:8.0f}ms  {reason[:80]}"
        )
    return lines
