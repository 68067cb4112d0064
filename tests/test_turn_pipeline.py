"""The learned end of turn in the pipeline (SPEC §3a `turn`): the pipeline's own logic, with a
scripted turn model (the real Smart Turn has its own tests on real audio: test_smart_turn.py)."""

from __future__ import annotations

from cluelypro.metrics.summary import ChainCollector
from harness.engines import ScriptedLLM, ScriptedTurnModel
from harness.run import Harness, Say, WaitFor, event

PHOTOSYNTHESIS = "Что такое фотосинтез?"
ANSWER = {"фотосинтез": "1. Фотосинтез — процесс образования сахаров из света в листьях.\n"}
PAUSED = Say(1, 1.4, pause_at_s=0.6, pause_s=0.7)  # «Что такое… [700 ms] …фотосинтез?»


def test_a_question_paused_in_the_middle_is_heard_whole() -> None:
    fixed = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)])
    fixed.run(PAUSED, WaitFor(event("thesis"), "the answer"))
    assert len(fixed.of("segment")) == 2, "the fixed 400 ms window cuts at a 700 ms pause"

    turn = ScriptedTurnModel(complete_after_s=1.0)  # the first 0.6 s alone is not a whole question
    harness = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)], turn=turn)
    harness.run(PAUSED, WaitFor(event("thesis"), "the answer"))
    assert [e["decision"] for e in harness.of("turn")] == ["incomplete", "complete"]
    assert len(harness.of("segment")) == 1 and len(harness.of("speech_end")) == 1
    assert harness.of("speech_end")[0]["duration"] > 1.2, "one utterance from the first word to the last"
    assert harness.of("question")[0]["accepted"]


def test_a_complete_turn_ends_the_question_before_the_fixed_window() -> None:
    harness = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)], turn=ScriptedTurnModel())
    harness.run(Say(1, 1.0), WaitFor(event("thesis"), "the answer"))
    (turn,) = harness.of("turn")
    (speech_end,) = harness.of("speech_end")
    assert turn["decision"] == "complete" and turn["probability"] == 0.99 and turn["utt"] == speech_end["utt"]
    assert turn["t"] - speech_end["t"] < 0.4 - 0.1, "decided at the 120 ms pause, well before the 400 ms window"


def test_the_turn_stage_is_measured_from_the_end_of_speech() -> None:
    harness = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)], turn=ScriptedTurnModel(complete_after_s=1.0))
    harness.run(PAUSED, WaitFor(event("thesis"), "the answer"))
    collector = ChainCollector()
    assert harness.pipeline is not None
    for record in harness.pipeline.timeline.events:
        collector(record)
    (chain,) = collector.chains
    assert 0.1 <= chain.offsets["turn"] < 0.3, "the last pause's decision, not the inner pause's"


def test_a_failing_turn_model_leaves_the_fixed_window_in_charge() -> None:
    turn = ScriptedTurnModel(raises=RuntimeError("turn model broke"))
    harness = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)], turn=turn)
    harness.run(Say(1, 1.0), Say(1, 1.0), WaitFor(event("thesis"), "the answer"))
    assert len(turn.calls) == 2
    errors = harness.of("error", stage="turn")
    assert len(errors) == 1 and "turn model broke" in errors[0]["message"], "reported once per failure spell"
    assert not harness.of("turn") and harness.of("question")


def test_an_unsure_turn_model_leaves_the_pause_to_the_fixed_window() -> None:
    harness = Harness({1: PHOTOSYNTHESIS}, llms=[ScriptedLLM(ANSWER)], turn=ScriptedTurnModel(unsure=True))
    harness.run(PAUSED, WaitFor(event("thesis"), "the answer"))
    assert [e["decision"] for e in harness.of("turn")] == ["unsure", "unsure"]
    assert len(harness.of("segment")) == 2, "cut at the 700 ms pause, as without a model"


def test_a_missing_turn_model_leaves_the_fixed_window_with_a_warning(tmp_path, caplog) -> None:
    """The turn model is an optimisation: without its weights (the pipecat-ai wheel needs Python
    3.11) the prompter still starts, and says why questions end after END_SILENCE_MS."""
    from cluelypro.engines import Engines, load_engines
    from cluelypro.turn.smart_turn import SmartTurn
    from harness.engines import ScriptedDetector

    engines = Engines(ScriptedDetector(), [], [], [], turn=SmartTurn(tmp_path / "missing.onnx"))
    load_engines(engines, lambda label: lambda done, total: None)
    assert engines.turn is None
    assert "the learned end of turn is off" in caplog.text and "missing.onnx" in caplog.text
