"""ThesisPlan driven by a fake clock: times are plain floats, playback is a number of seconds."""

from __future__ import annotations

import pytest

from cluelypro.prompter.plan import PlannedThesis, ThesisPlan

PHOTOSYNTHESIS = [
    "Фотосинтез — образование органических веществ из углекислого газа и воды на свету.",
    "Фотосинтез идёт в хлоропластах растений.",
    "При фотосинтезе выделяется кислород.",
]
DEEPER = [
    "Энергию света поглощает хлорофилл.",
    "Световая фаза идёт на мембранах тилакоидов.",
]
DEEPEST = ["Темновая фаза — это цикл Кальвина в строме хлоропласта."]
TOPICS = ["свет", "воду", "воздух", "почву", "хлорофилл", "крахмал", "глюкозу", "кислород", "азот"]
PLAYBACK_S = 3.0


def plan_with(theses: list[str], **options) -> ThesisPlan:
    plan = ThesisPlan(q=7, **options)
    for text in theses:
        plan.add(text)
    plan.round_done()
    return plan


def say(plan: ThesisPlan, now: float) -> tuple[int | None, float]:
    """Play whatever the plan wants at `now`; (index or None, the time after)."""
    thesis = plan.next_to_say(now)
    if thesis is None:
        return None, now
    plan.spoken(thesis.index, now + PLAYBACK_S)
    return thesis.index, now + PLAYBACK_S


def say_all(plan: ThesisPlan, now: float = 0.0) -> list[int]:
    order = []
    while (index := say(plan, now)[0]) is not None:
        order.append(index)
        now += PLAYBACK_S
    return order


def test_repeat_mode_says_each_thesis_twice_in_order() -> None:
    plan = plan_with(PHOTOSYNTHESIS, max_depth=0)
    assert say_all(plan) == [1, 1, 2, 2, 3, 3]
    assert plan.finished


def test_repeat_count_is_configurable() -> None:
    assert say_all(plan_with(PHOTOSYNTHESIS, repeats=3, max_depth=0)) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert say_all(plan_with(PHOTOSYNTHESIS, repeats=1, max_depth=0)) == [1, 2, 3]


def test_nothing_else_is_offered_while_a_thesis_plays() -> None:
    plan = plan_with(PHOTOSYNTHESIS)
    first = plan.next_to_say(0.0)
    assert first == PlannedThesis(q=7, index=1, text=PHOTOSYNTHESIS[0], depth=0)
    assert plan.next_to_say(0.5) is None
    assert plan.wait_hint(0.5) is None
    plan.spoken(2, 1.0)  # not the one playing: ignored
    assert plan.next_to_say(1.0) is None
    plan.spoken(1, 3.0)
    assert plan.wait_hint(3.0) == 0.0
    assert plan.next_to_say(3.0).index == 1


def test_until_said_repeats_every_interval_until_matched_then_advances() -> None:
    plan = plan_with(PHOTOSYNTHESIS, policy="until-said", repeat_interval_s=10.0)
    assert say(plan, 0.0) == (1, 3.0)
    assert plan.next_to_say(5.0) is None
    assert plan.wait_hint(5.0) == pytest.approx(8.0)
    assert plan.next_to_say(12.9) is None
    assert say(plan, 13.0) == (1, 16.0)
    assert say(plan, 26.0) == (1, 29.0)
    assert plan.said_by_user(1)
    assert plan.current().index == 2
    assert plan.wait_hint(30.0) == 0.0
    assert say(plan, 30.0) == (2, 33.0)
    assert plan.next_to_say(34.0) is None


def test_until_said_never_advances_on_its_own() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:1], policy="until-said", max_depth=0)
    now, plays = 0.0, 0
    while now < 100.0:
        index, now = say(plan, now)
        if index is None:
            now += plan.wait_hint(now)
        else:
            plays += 1
    assert plays == 8  # at 0, 13, 26, …, 91
    assert not plan.finished
    plan.said_by_user(1)
    assert plan.finished


def test_saying_a_later_thesis_does_not_advance_but_skips_it_later() -> None:
    plan = plan_with(PHOTOSYNTHESIS, policy="until-said", max_depth=0)
    say(plan, 0.0)
    assert plan.said_by_user(2) is False
    assert plan.current().index == 1
    assert plan.next_to_say(5.0) is None  # still waiting to repeat thesis 1
    assert plan.said_by_user(1) is True
    assert plan.current().index == 3
    assert say(plan, 6.0) == (3, 9.0)


def test_said_by_user_ignores_unknown_and_finished_theses() -> None:
    plan = plan_with(PHOTOSYNTHESIS, policy="until-said")
    assert plan.said_by_user(0) is False
    assert plan.said_by_user(4) is False
    assert plan.said_by_user(1) is True
    assert plan.said_by_user(1) is False
    assert plan.current().index == 2


def test_said_while_playing_moves_on_after_the_playback() -> None:
    plan = plan_with(PHOTOSYNTHESIS, policy="until-said")
    assert plan.next_to_say(0.0).index == 1
    assert plan.said_by_user(1)
    assert plan.next_to_say(1.0) is None  # thesis 1 still in the earpiece
    plan.spoken(1, 3.0)
    assert plan.next_to_say(3.0).index == 2


def test_repeat_mode_also_skips_what_the_user_said() -> None:
    plan = plan_with(PHOTOSYNTHESIS, max_depth=0)
    say(plan, 0.0)
    plan.said_by_user(1)
    assert say_all(plan, 3.0) == [2, 2, 3, 3]


def test_duplicates_are_never_added() -> None:
    plan = ThesisPlan(q=1)
    assert plan.add(PHOTOSYNTHESIS[1]).index == 1
    assert plan.add(PHOTOSYNTHESIS[1]) is None
    assert plan.add("фотосинтез идет в хлоропластах растений!") is None
    assert plan.add("Фотосинтез происходит в хлоропластах растений.") is None
    assert plan.add("   ") is None
    assert plan.add(PHOTOSYNTHESIS[2]).index == 2
    assert [t.index for t in plan.theses] == [1, 2]


def test_no_deepening_while_the_answer_still_streams() -> None:
    plan = ThesisPlan(q=1)
    plan.add(PHOTOSYNTHESIS[0])
    assert not plan.deepening_due()
    plan.round_done()
    assert plan.deepening_due()
    plan.start_deepening()


def test_asking_whether_deepening_is_due_changes_nothing() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:1])
    assert plan.deepening_due() and plan.deepening_due(), "a query: asking twice gives the same answer"
    assert plan.depth == 0
    plan.start_deepening()
    with pytest.raises(RuntimeError):
        plan.start_deepening()  # the round is open: no second one
    assert plan.depth == 1


def test_a_single_thesis_question_deepens_at_once() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:1])
    assert plan.deepening_due()
    plan.start_deepening()
    assert plan.depth == 1
    assert not plan.deepening_due()


def test_deepening_fires_once_per_round_when_one_thesis_is_left() -> None:
    plan = plan_with(PHOTOSYNTHESIS)
    fired_at, now = [], 0.0
    while True:
        if plan.deepening_due():
            plan.start_deepening()
            fired_at.append(plan.current().index)
        index, now = say(plan, now)
        if index is None:
            break
    assert fired_at == [3]
    assert plan.depth == 1
    assert not plan.finished  # the deepening round is still open


def test_deepening_continues_past_the_first_batch_without_repeating() -> None:
    plan = plan_with(PHOTOSYNTHESIS)
    say_all(plan)
    assert plan.deepening_due()
    plan.start_deepening()
    for text in [DEEPER[0], PHOTOSYNTHESIS[2], DEEPER[1]]:
        plan.add(text)
    plan.round_done()
    assert [(t.index, t.depth) for t in plan.theses[3:]] == [(4, 1), (5, 1)]
    assert say_all(plan, 100.0) == [4, 4, 5, 5]
    assert plan.deepening_due()
    plan.start_deepening()
    assert plan.depth == 2
    plan.add(DEEPEST[0])
    plan.round_done()
    assert plan.theses[-1] == PlannedThesis(q=7, index=6, text=DEEPEST[0], depth=2)


def test_deepening_stops_when_a_round_adds_nothing_new() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:2])
    assert not plan.deepening_due()
    plan.said_by_user(1)
    assert plan.deepening_due()
    plan.start_deepening()
    assert plan.add(PHOTOSYNTHESIS[0]) is None
    plan.round_done()
    assert not plan.deepening_due()
    assert say_all(plan) == [2, 2]
    assert not plan.deepening_due()
    assert plan.finished


def test_deepening_stops_at_max_depth() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:1], max_depth=3)
    rounds = 0
    now = 0.0
    while not plan.finished:
        if plan.deepening_due():
            plan.start_deepening()
            rounds += 1
            plan.add(f"Тезис про {TOPICS[rounds]}.")
            plan.round_done()
        index, now = say(plan, now)
        assert index is not None or plan.finished
    assert rounds == 3
    assert plan.depth == 3
    assert [t.depth for t in plan.theses] == [0, 1, 2, 3]


def test_default_depth_limit_is_seven() -> None:
    plan = plan_with(PHOTOSYNTHESIS[:1])
    rounds = 0
    while plan.deepening_due():
        plan.start_deepening()
        rounds += 1
        plan.said_by_user(plan.current().index)
        plan.add(f"Тезис про {TOPICS[rounds]}.")
        plan.round_done()
    assert rounds == 7


def test_small_talk_plan_is_finished_at_once() -> None:
    plan = ThesisPlan(q=3)
    assert not plan.finished
    plan.round_done()
    assert plan.finished
    assert not plan.deepening_due()
    assert plan.next_to_say(0.0) is None
    assert plan.wait_hint(0.0) is None


def test_waiting_for_more_theses_is_not_finished() -> None:
    plan = ThesisPlan(q=1)
    plan.add(PHOTOSYNTHESIS[0])
    assert say_all(plan) == [1, 1]
    assert plan.next_to_say(10.0) is None
    assert plan.wait_hint(10.0) is None
    assert not plan.finished
    plan.add(PHOTOSYNTHESIS[1])
    assert plan.next_to_say(10.0).index == 2


def test_upcoming_lists_what_to_synthesise_ahead() -> None:
    plan = plan_with(PHOTOSYNTHESIS)
    assert [t.index for t in plan.upcoming(2)] == [1, 2]
    say_all(plan)
    assert plan.upcoming(2) == []


def test_deepened_theses_follow_without_a_pause() -> None:
    """A scheduler loop: the LLM answers a deepening request 2 s after it is made."""
    plan = plan_with(PHOTOSYNTHESIS[:2], max_depth=2)
    batches = [DEEPER, DEEPEST]
    ready_at: float | None = None
    now, starts = 0.0, []
    while not plan.finished:
        if plan.deepening_due():
            plan.start_deepening()
            ready_at = now + 2.0
        if ready_at is not None and now >= ready_at:
            for text in batches.pop(0):
                plan.add(text)
            plan.round_done()
            ready_at = None
        index, after = say(plan, now)
        if index is not None:
            starts.append(now)
        now = after if index is not None else now + 0.5
    assert len(starts) == 2 * 5
    assert all(b - a == PLAYBACK_S for a, b in zip(starts, starts[1:], strict=False))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ThesisPlan(q=1, policy="forever")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ThesisPlan(q=1, repeats=0)


def test_a_cut_round_is_not_an_empty_one() -> None:
    """Issue 9 (F6): a deepening round cut by a newer question must not end the deepening."""
    plan = ThesisPlan(1, repeats=1, max_depth=3)
    plan.add("Первый тезис ответа на вопрос.")
    plan.round_done()
    plan.spoken(plan.next_to_say(0.0).index, 1.0)
    assert plan.deepening_due()
    plan.start_deepening()
    assert plan.depth == 1
    plan.round_cut()
    assert not plan.finished and plan.depth == 0, "the cut round did not happen"
    assert plan.deepening_due()
    plan.start_deepening()
    assert plan.depth == 1, "it deepens again"
    plan.round_done()  # this time it comes back empty: that ends the deepening
    assert plan.finished


def test_no_deepening_after_the_input_ends_even_after_a_cut_round() -> None:
    plan = ThesisPlan(1, repeats=1, max_depth=3)
    plan.add("Первый тезис ответа на вопрос.")
    plan.round_done()
    plan.spoken(plan.next_to_say(0.0).index, 1.0)
    assert plan.deepening_due()
    plan.start_deepening()
    plan.wind_down()
    plan.round_cut()
    assert not plan.deepening_due() and plan.finished
