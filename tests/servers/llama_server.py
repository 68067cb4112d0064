"""llama-cpp-python's OpenAI-compatible server, run as a subprocess on the embedded GGUF.

    with llama_server() as base_url:      # "http://127.0.0.1:<port>/v1"
        ...

It stands in for every cloud provider in the tests: OpenAI-protocol clients talk to it directly
or through `fault_proxy`, Gemini's through `gemini_server`. Its output (both streams) goes to a
log file, so a full pipe never stalls it; the file's tail is in the error if it fails to start.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx

from cluelypro.llm.models import resolve_gguf

from .base import free_port

STARTUP_TIMEOUT_S = 120.0
LOG_TAIL_CHARS = 3000


class LlamaServerError(RuntimeError):
    pass


@contextlib.contextmanager
def llama_server(
    model: str = "qwen2.5-coder-1.5b",
    threads: int = 1,
    context_tokens: int = 2048,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Run the server until the block ends; yields its base URL (with "/v1")."""
    path = resolve_gguf(model)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),  # its default is every core
        "--n_ctx",
        str(context_tokens),
        "--verbose",
        "False",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until_ready(process, base_url, log, startup_timeout_s)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen, base_url: str, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise LlamaServerError(f"llama.cpp server exited with code {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise LlamaServerError(f"llama.cpp server did not answer within {timeout_s:g} s:\n{_tail(log)}")
        time.sleep(0.25)


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", errors="replace")[-LOG_TAIL_CHARS:] or "(no output)"
