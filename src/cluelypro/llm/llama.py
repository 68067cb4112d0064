"""ThesisLLM over llama.cpp (llama-cpp-python), on the CPU.

The system prompt is identical on every call, so llama.cpp's longest-prefix reuse of the
evaluated tokens only has to evaluate the new user turn; warm_up() puts the prefix there.

A prompt that would not leave `max_tokens` of the context free is trimmed first (see
prompts.shorter_prompts), with a warning; llama.cpp would otherwise fail or cut the answer short.

Every llama.cpp call runs on one long-lived thread of the engine's own, whoever calls it. GNU
OpenMP keeps a pool of worker threads per calling thread, and once it manages more threads than
there are cores it stops spin-waiting at barriers: generating from a fresh thread each time (two
pools on two cores) was 83 ms per token against 60 ms from one thread, with 2 threads.
"""

from __future__ import annotations

import logging
import queue
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from cluelypro.llm.models import EMBEDDED, resolve_gguf
from cluelypro.llm.prompts import shorter_prompts, thesis_messages
from cluelypro.packaged import ProgressCallback

log = logging.getLogger(__name__)

TEMPERATURE = 0.0  # greedy: the same question gets the same theses
REPEAT_PENALTY = 1.1  # without it the 1.5B model loops on one line until max_tokens
# Chat-template tokens around each message («<|im_start|>user\n … <|im_end|>\n» is 5 in ChatML,
# Llama 3's headers 5) and before the reply, with room to spare: an upper bound for any template.
MESSAGE_MARKUP_TOKENS = 8
REPLY_MARKUP_TOKENS = 8

T = TypeVar("T")
_END = object()


class OwnThread:
    """Runs an engine's calls, and iterates its generators, on one dedicated thread."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def call(self, function: Callable[[], T]) -> T:
        return self._executor.submit(function).result()

    def iterate(self, make_iterator: Callable[[], Iterator[T]]) -> Iterator[T]:
        """The items of `make_iterator()`, produced on the thread. Closing this generator stops
        the producer after the item in hand and returns once it has stopped."""
        items: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def produce() -> None:
            try:
                iterator = make_iterator()
                try:
                    for item in iterator:
                        items.put(item)
                        if stop.is_set():
                            break
                finally:
                    getattr(iterator, "close", lambda: None)()
            except BaseException as error:  # raised in the consumer's thread
                items.put(error)
            finally:
                items.put(_END)

        done = self._executor.submit(produce)
        try:
            while (item := items.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            done.result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class LlamaThesisLLM:
    def __init__(
        self,
        model: str = "qwen2.5-coder-1.5b",
        threads: int = 1,
        prompt_threads: int | None = None,
        context_tokens: int = 2048,
        grammar: bool = False,
    ) -> None:
        self.model = model
        self.threads = threads
        self.prompt_threads = prompt_threads or threads
        self.context_tokens = context_tokens
        self.grammar = grammar
        self.name = f"local:{model if model in EMBEDDED else Path(model).stem}"
        self._llama: Any = None  # llama_cpp.Llama once loaded (imported then: it is heavy)
        self._grammar: Any = None
        self._thread = OwnThread("llama")

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._llama is not None:
            return
        path = resolve_gguf(self.model, progress)
        self._thread.call(lambda: self._load(path))

    def _load(self, path: Path) -> None:
        from llama_cpp import Llama, LlamaGrammar  # heavy import; also sets its log callback

        self._llama = Llama(
            model_path=str(path),
            n_ctx=self.context_tokens,
            n_threads=self.threads,
            n_threads_batch=self.prompt_threads,  # the question is read when the ASR has finished
            n_batch=512,  # system prompt + question in one batch
            use_mmap=False,
            verbose=False,  # llama.cpp logs errors only
        )
        if self.grammar:
            text = files("cluelypro.llm").joinpath("theses.gbnf").read_text(encoding="utf-8")
            self._grammar = LlamaGrammar.from_string(text, verbose=False)

    def warm_up(self) -> None:
        for _ in self.stream(thesis_messages(""), max_tokens=1):
            pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        if self._llama is None:
            raise RuntimeError("call load() first")
        return self._thread.iterate(lambda: self._generate(messages, max_tokens))

    def fit(self, messages: list[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        """`messages` as they are sent: the same list if they leave `max_tokens` of the context
        free, else the least trimmed version that does (logged)."""
        return self._thread.call(lambda: self._fitted(messages, max_tokens))

    def _fitted(self, messages: list[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        budget, counted = self.context_tokens - max_tokens, dict[str, int]()
        needed = self._count(messages, counted)
        if needed <= budget:
            return messages
        shorter = shorter_prompts(messages)
        first_fitting = bisect_left(shorter, True, key=lambda prompt: self._count(prompt.messages, counted) <= budget)
        if first_fitting == len(shorter):
            raise ValueError(
                f"the prompt needs {self._count(shorter[-1].messages, counted)} tokens even trimmed, "
                f"more than the {budget} that LLM_CONTEXT_TOKENS={self.context_tokens} leaves "
                f"with LLM_MAX_TOKENS={max_tokens}"
            )
        chosen = shorter[first_fitting]
        log.warning(
            "prompt of %d tokens trimmed to fit LLM_CONTEXT_TOKENS=%d with %d for the answer: left out %s",
            needed,
            self.context_tokens,
            max_tokens,
            chosen.left_out,
        )
        return chosen.messages

    def _count(self, messages: list[dict[str, str]], counted: dict[str, int]) -> int:
        """An upper bound of the chat-formatted prompt's length: the tokens of each message's
        text (memoised in `counted`) plus its template markup."""
        for message in messages:
            if message["content"] not in counted:
                text = message["content"].encode("utf-8")
                counted[message["content"]] = len(self._llama.tokenize(text, add_bos=False, special=False))
        return sum(counted[m["content"]] + MESSAGE_MARKUP_TOKENS for m in messages) + REPLY_MARKUP_TOKENS

    def _generate(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        chunks = self._llama.create_chat_completion(
            self._fitted(messages, max_tokens),
            stream=True,
            max_tokens=max_tokens,
            temperature=TEMPERATURE,
            repeat_penalty=REPEAT_PENALTY,
            grammar=self._grammar,
        )
        try:
            for chunk in chunks:
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        finally:
            chunks.close()  # stops llama.cpp between two tokens
