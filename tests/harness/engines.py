"""Scripted engines that implement the real engine protocols, for the fault harness.

They test the pipeline's own logic — races, faults, hand-overs, cancellation — in milliseconds;
the real engines keep their own tests on real audio. Each is driven by a script keyed on what it
is given (an utterance's line, a question's text, a thesis's text) and can be told to raise, hang,
return nothing or stream forever. They run in the pipeline's worker threads, as real engines do,
and record what they were asked, so tests can assert that no work was done that nobody needs.

Audio is a code: the harness's utterance `k` is a constant level LEVEL + k·STEP (silence is 0),
which the scripted detector hears as speech and the scripted recogniser and embedder decode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.1
STEP = 0.0005
SPEECH_AT = 0.05
MAX_HANG_S = 5.0  # a hang is released after this, so no test leaves a thread behind for good


@dataclass
class Fault:
    """How an engine misbehaves for one input. By default it answers normally."""

    delay_s: float = 0.0  # before the first output
    raises: Exception | None = None  # before the first output
    raises_after: int | None = None  # raise after this many outputs (a stream cut mid-answer)
    hang: bool = False  # block before the first output (until released or MAX_HANG_S)
    hang_after: int | None = None  # block after this many outputs
    empty: bool = False  # end without any output
    forever: bool = False  # never end on its own (until closed)


class Hang:
    """Blocks a worker thread like a hung engine, until released (or MAX_HANG_S passes)."""

    def __init__(self) -> None:
        self._released = threading.Event()
        self.entered = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        self._released.wait(MAX_HANG_S)

    def release(self) -> None:
        self._released.set()


class ScriptedEngine:
    """What every scripted engine shares: faults by input, a record of its calls."""

    remote = False

    def __init__(self, name: str, faults: dict[str, Fault] | None = None, remote: bool | None = None) -> None:
        self.name = name
        self.faults = dict(faults or {})
        self.calls: list[str] = []  # the input of every call, in order
        self.outputs = 0  # items produced, over all calls
        self.closed_early = 0  # calls whose consumer stopped them before their end
        self.hang = Hang()
        self._lock = threading.Lock()
        if remote is not None:
            self.remote = remote

    def load(self, progress=None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def fault_for(self, key: str) -> Fault:
        return next((fault for part, fault in self.faults.items() if part in key), Fault())

    def _run(self, key: str, items: list, pace_s: float = 0.0) -> Iterator:
        """Yield `items` for input `key`, `pace_s` apart, misbehaving as its fault says."""
        with self._lock:
            self.calls.append(key)
        fault, produced, finished = self.fault_for(key), 0, False
        try:
            time.sleep(fault.delay_s)
            if fault.raises is not None:
                raise fault.raises
            if fault.hang:
                self.hang()
            if fault.empty:
                finished = True
                return
            while True:
                for item in items:
                    if fault.raises_after is not None and produced >= fault.raises_after:
                        raise ConnectionResetError(f"{self.name}: stream cut after {produced} items")
                    if fault.hang_after is not None and produced >= fault.hang_after:
                        self.hang()
                        fault = Fault()
                    time.sleep(pace_s)
                    produced += 1
                    with self._lock:
                        self.outputs += 1
                    yield item
                if not fault.forever:
                    finished = True
                    return
        finally:
            if not finished and fault.raises is None and fault.raises_after is None:
                with self._lock:
                    self.closed_early += 1


# --- audio codes ---------------------------------------------------------------------------------


def speech(line: int, seconds: float, rate: int = 16_000) -> np.ndarray:
    return np.full(round(seconds * rate), LEVEL + line * STEP, dtype=np.float32)


def line_of(audio: np.ndarray) -> int | None:
    """The harness line an utterance's audio carries (None for silence)."""
    voiced = audio[np.abs(audio) > SPEECH_AT]
    return None if voiced.size == 0 else round((float(np.median(voiced)) - LEVEL) / STEP)


class ScriptedDetector:
    name = "scripted-vad"
    frame_samples = 512

    def __init__(self) -> None:
        self.fail_on: int | None = None  # frames of this line raise (a detector fault)

    def speech_probability(self, frame: np.ndarray) -> float:
        if self.fail_on is not None and line_of(frame) == self.fail_on:
            raise RuntimeError("detector fault")
        return 1.0 if float(np.abs(frame).max()) > SPEECH_AT else 0.0

    def reset(self) -> None:
        pass


# --- engines -------------------------------------------------------------------------------------


class ScriptedRecognizer(ScriptedEngine):
    """Says the text of the line the audio carries; faults are keyed by that text."""

    def __init__(self, lines: dict[int, str], name: str = "scripted-asr", **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.lines = lines

    def transcribe(self, audio: np.ndarray) -> str:
        line = line_of(audio)
        text = "" if line is None else self.lines.get(line, "")
        said = list(self._run(text, [text]))
        return said[0] if said else ""


class ScriptedLLM(ScriptedEngine):
    """Answers with the reply whose key is in the last user message (the question; deepening
    requests contain DEEPENING), in pieces of a few characters, `token_s` apart."""

    DEEPENING = "уже сказаны"

    def __init__(
        self, replies: dict[str, str], name: str = "scripted-llm", token_s: float = 0.002, default: str = "0", **kwargs
    ) -> None:
        super().__init__(name, **kwargs)
        self.replies = replies
        self.token_s = token_s
        self.default = default
        self.prompts: list[str] = []  # the user message of every call, context included

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        self.prompts.append(messages[-1]["content"])
        # what was asked, not the earlier speech the prompt quotes as context
        asked = "\n".join(line for line in messages[-1]["content"].splitlines() if not line.startswith("(Ранее"))
        keys = sorted(self.replies, key=lambda key: key != self.DEEPENING)  # a deepening request quotes the question
        reply = next((self.replies[key] for key in keys if key in asked), self.default)
        pieces = [reply[i : i + 4] for i in range(0, len(reply), 4)]
        return self._run(asked, pieces, pace_s=self.token_s)


class ScriptedSynthesizer(ScriptedEngine):
    """0.1 s of audio per word, in 0.05 s chunks; faults keyed by the text."""

    def __init__(self, name: str = "scripted-tts", sample_rate: int = 16_000, chunk_s: float = 0.05, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.sample_rate = sample_rate
        self.chunk_s = chunk_s

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        chunks = round(0.1 * max(1, len(text.split())) / self.chunk_s)
        chunk = np.full(round(self.chunk_s * self.sample_rate), 0.3, dtype=np.float32)
        return self._run(text, [chunk] * chunks)


@dataclass
class ScriptedEmbedder:
    """Embeds the user's lines (`own`) on one axis and everyone else's on another."""

    own: set[int] = field(default_factory=set)
    fault: Fault = field(default_factory=Fault)
    name: str = "scripted-embedder"
    version: str = "1"
    dim: int = 2
    calls: int = 0

    def load(self, progress=None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def embed(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.fault.delay_s)
        if self.fault.raises is not None:
            raise self.fault.raises
        return np.array([1.0, 0.0] if line_of(audio) in self.own else [0.0, 1.0], dtype=np.float32)


class ScriptedTurnModel:
    """Says a turn is complete (0.99) once the utterance holds `complete_after_s` of speech, and
    incomplete (0.1) before; `unsure` makes it say 0.7 always, `raises` makes every call fail.
    `calls`: the seconds of speech it was asked about."""

    name = "scripted-turn"

    def __init__(self, complete_after_s: float = 0.0, raises: Exception | None = None, unsure: bool = False) -> None:
        self.complete_after_s = complete_after_s
        self.raises = raises
        self.unsure = unsure
        self.calls: list[float] = []

    def load(self, progress=None) -> None:
        pass

    def warm_up(self) -> None:
        pass

    def complete_probability(self, audio: np.ndarray) -> float:
        voiced = float(np.count_nonzero(np.abs(audio) > SPEECH_AT)) / 16_000
        self.calls.append(round(voiced, 2))
        if self.raises is not None:
            raise self.raises
        if self.unsure:
            return 0.7
        return 0.99 if voiced >= self.complete_after_s else 0.1
