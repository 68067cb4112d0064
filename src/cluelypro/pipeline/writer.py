"""The writer of one question's answer: the LLM chain's stream, parsed into theses, handed to
the question's `Answer` (SPEC §2.6–2.9).

The pipeline makes a `ThesisWriter` when it takes a question up; the writer's first round makes
the `Answer` (through the pipeline's take-over, once there is something to say — 6B) and, with
EARLY_SPEECH, starts speaking thesis 1 from its first words. The `Answer` then owns the writer
and asks it for each deepening round itself, so deepening never calls back into the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING

from cluelypro.config import Settings
from cluelypro.llm.thesis_parser import ThesisStreamParser, speakable_head
from cluelypro.metrics.events import LlmFirstToken, TimelineEvent
from cluelypro.metrics.timeline import Timeline, milliseconds_since
from cluelypro.pipeline.fallback import EngineChain, Skipped
from cluelypro.pipeline.frames import Question
from cluelypro.pipeline.speculation import LlmItem
from cluelypro.pipeline.turns import Cancellation

if TYPE_CHECKING:  # the answer owns its writer
    from cluelypro.pipeline.answer import Answer

Messages = list[dict[str, str]]
TakeOver = Callable[[Callable[["Answer"], object]], "Answer"]
"""The pipeline's take-over (6B): makes the question's `Answer`, begins it with the given call,
then retires the previous answer."""


def generate(llm: EngineChain, messages: Messages, max_tokens: int) -> AsyncGenerator[LlmItem, None]:
    """The LLM chain's text as it is generated, and its hand-overs. The embedded engine runs
    one generation at a time on its own thread: answers and deepening take turns there."""
    return llm.stream(lambda engine: engine.stream(messages, max_tokens))


def _adding(text: str) -> Callable[[Answer], object]:
    """The take-over's first call: the new answer's first thesis."""
    return lambda answer: answer.add_thesis(text)


class ThesisWriter:
    def __init__(self, question: Question, llm: EngineChain, settings: Settings, timeline: Timeline) -> None:
        self.question = question
        self.llm = llm
        self.settings = settings
        self.timeline = timeline
        self.answer: Answer | None = None  # made once the first round has something to say
        self._take_over: TakeOver | None = None
        self._writing: ThesisStreamParser | None = None  # the parser of the engine writing the answer

    def _emit(self, event: TimelineEvent) -> None:
        question = self.question
        self.timeline.emit(event, question.anchor.now(), utt=question.utt, q=question.q)

    async def write_answer(self, messages: Messages, take_over: TakeOver) -> None:
        """The answer round: theses go to the `Answer` that `take_over` makes on the first of
        them (or on thesis 1's first words); `self.answer` stays None if there was nothing to say."""
        self._take_over = take_over
        watch = self._start_early if self.settings.early_speech else None
        theses = self.theses(messages, [], self.question.cancellation, watch)
        async with aclosing(theses) as stream:
            async for text in stream:
                if self.answer is None:
                    self.answer = take_over(_adding(text))
                else:
                    self.answer.add_thesis(text)

    def _start_early(self, parser: ThesisStreamParser) -> None:
        """Speak thesis 1 from its first words, and follow it as the model writes it on."""
        answer = self.answer
        if answer is not None and self._writing is not None and parser is not self._writing:
            answer.complete_early()  # its engine failed mid-thesis: what was said stands
        self._writing = parser
        if answer is None:
            if (head := speakable_head(parser.numbered_partial())) and self._take_over is not None:
                self.answer = self._take_over(lambda new: new.start_early(head, parser.lines_done))
        else:
            answer.early_progress(parser.numbered_partial(), parser.lines_done)

    async def theses(
        self,
        messages: Messages,
        already_said: list[str],
        cancellation: Cancellation,
        watch: Callable[[ThesisStreamParser], None] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Theses as they complete in the LLM chain's stream; stops early once `cancellation` is
        set (a newer question takes the LLM's turn). `watch` sees the parser after every piece
        (to start speaking a thesis early), and a new parser when an engine fails mid-answer and
        the next one starts it again. The first round reads the answer started on the pause."""
        question = self.question
        parser, given = ThesisStreamParser(already_said), list(already_said)
        prefetch = question.prefetch if not already_said else None
        started = prefetch.started if prefetch else time.monotonic()
        writer = None  # the engine whose text the parser holds
        items = prefetch.items.stream() if prefetch else generate(self.llm, messages, self.settings.llm_max_tokens)
        async with aclosing(items) as stream:
            async for item in stream:
                if cancellation.cancelled:
                    return
                if isinstance(item, Skipped):
                    self._emit(item.event("llm"))  # the next engine of the chain is asked the same
                    if item.after_output:  # its partial text is void; the next engine starts over
                        parser, writer = ThesisStreamParser(given), None
                        if watch is not None:
                            watch(parser)
                    continue
                if item.engine != writer:
                    writer = item.engine
                    ms = prefetch.first_output_ms.get(writer) if prefetch else None
                    self._emit(LlmFirstToken(writer, milliseconds_since(started) if ms is None else ms))
                for thesis in parser.feed(item.item):
                    given.append(thesis)
                    yield thesis
                if parser.full:
                    return  # closing the stream stops the engine's generation
                if watch is not None:
                    watch(parser)
        if prefetch is not None and prefetch.error is not None:
            raise prefetch.error
        if cancellation.cancelled:
            return
        for thesis in parser.finish():
            yield thesis
