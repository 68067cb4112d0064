"""What GET /api/status reports, in doctor's terms: the engine chains (ready, skipped and why,
cooling down), keys only as "set"/"not set", the thesis plan as the timeline tells it, and the
running voice-to-voice p50/p95."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from cluelypro.config import Settings
from cluelypro.engine_names import STAGES
from cluelypro.engines import Engines, chain_names
from cluelypro.metrics.events import (
    Asr,
    LlmFirstToken,
    Matched,
    PlaybackEnd,
    PlaybackStart,
    Question,
    Thesis,
)
from cluelypro.metrics.summary import ChainCollector, percentiles
from cluelypro.metrics.timeline import Record
from cluelypro.pipeline.fallback import COOLING_DOWN, EngineChain
from cluelypro.pipeline.pipeline import StageChains
from cluelypro.secrets import redact

RECENT_UTTERANCES = 64


def key_states(settings: Settings) -> dict[str, str]:
    """Each key by its variable name: "set" or "not set" — never its value."""
    states = {name: "set" if value else "not set" for name, value in settings.api_keys().items()}
    states["GOOGLE_APPLICATION_CREDENTIALS"] = "set" if settings.google_application_credentials else "not set"
    return states


def chain_states(settings: Settings, engines: Engines, chains: StageChains) -> dict[str, list[dict[str, Any]]]:
    """Each stage's engines in the configured order: the ones left out at start ("skipped", with
    doctor's reason), the ones resting after a failure ("cooling down"), the others "ready"."""
    running: dict[str, EngineChain] = {"asr": chains.asr, "llm": chains.llm, "tts": chains.tts}
    report: dict[str, list[dict[str, Any]]] = {}
    for stage in STAGES:
        chain = running[stage]
        loaded = list(chain.engines)
        left_out = {item.engine: item.reason for item in engines.left_out if item.stage == stage}
        rows: list[dict[str, Any]] = []
        for name in chain_names(settings, stage):  # the loaded ones are the others, in order
            if name in left_out:
                rows.append({"engine": name, "state": "skipped", "reason": redact(left_out.pop(name))})
            elif loaded:
                rows.append(_running(chain, loaded.pop(0)))
        rows += [_running(chain, engine) for engine in loaded]
        rows += [{"engine": name, "state": "skipped", "reason": redact(reason)} for name, reason in left_out.items()]
        report[stage] = rows
    return report


def _engine_name(engine: object) -> str:
    return str(getattr(engine, "name", type(engine).__name__))


def _running(chain: EngineChain, engine: object) -> dict[str, Any]:
    resting = chain.breaker(engine).open
    return {
        "engine": _engine_name(engine),
        "state": COOLING_DOWN if resting else "ready",
        "reason": "rested after a failure; the next engine answers meanwhile" if resting else None,
    }


def latency(chains: ChainCollector) -> dict[str, Any]:
    values = [chain.voice_to_voice for chain in chains.chains if chain.voice_to_voice is not None]
    summary = percentiles(values)
    return {"p50": summary.get("p50"), "p95": summary.get("p95"), "count": len(values)}


class PlanView:
    """A timeline observer that keeps the current answer's theses and their states: pending
    (planned), speaking (its playback started), said (played, or said by the user)."""

    def __init__(self) -> None:
        self.q: int | None = None
        self.question = ""
        self._theses: dict[int, dict[str, Any]] = {}
        self._texts: OrderedDict[int, str] = OrderedDict()  # utt → what was heard
        self._asked: dict[int, str] = {}  # q → its question's text
        self._writer: dict[int, str] = {}  # q → the LLM engine writing it now

    def __call__(self, record: Record) -> None:
        event, q = record.event, record.q
        if isinstance(event, Asr) and record.utt is not None:
            self._texts[record.utt] = event.text
            while len(self._texts) > RECENT_UTTERANCES:
                self._texts.popitem(last=False)
        elif isinstance(event, Question) and event.accepted and q is not None and record.utt is not None:
            self._asked[q] = self._texts.get(record.utt, "")
        elif isinstance(event, LlmFirstToken) and q is not None:
            self._writer[q] = event.provider
        elif isinstance(event, Thesis) and q is not None:
            self._on_thesis(q, event)
        elif q is not None and q == self.q:
            self._on_playback(event)

    def _on_thesis(self, q: int, event: Thesis) -> None:
        if q != self.q:  # a newer question took over
            self.q, self.question, self._theses = q, self._asked.get(q, ""), {}
            self._asked = {k: v for k, v in self._asked.items() if k > q}
            self._writer = {k: v for k, v in self._writer.items() if k >= q}
        thesis = self._theses.get(event.index)
        if thesis is None:
            self._theses[event.index] = {
                "index": event.index,
                "text": event.text,
                "depth": event.depth,
                "engine": self._writer.get(q),
                "state": "pending",
                "times_spoken": 0,
            }
        else:  # a thesis started early, now complete
            thesis["text"] = event.text

    def _on_playback(self, event: object) -> None:
        index = getattr(event, "index", None)
        thesis = self._theses.get(index) if isinstance(index, int) else None
        if thesis is None:
            return
        if isinstance(event, PlaybackStart):
            thesis["state"] = "speaking"
        elif isinstance(event, PlaybackEnd):
            thesis["state"] = "said"
            thesis["times_spoken"] += 1
        elif isinstance(event, Matched):
            thesis["state"] = "said"

    def snapshot(self) -> dict[str, Any] | None:
        if self.q is None:
            return None
        theses = [dict(self._theses[index]) for index in sorted(self._theses)]
        return {"q": self.q, "text": self.question, "theses": theses}
