"""Loops: repeated messages, fallbacks, repeated prompts and intents, low NLU confidence."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from escalator.model import Turn
from escalator.scoring import ScoredTurn

Converse = Callable[[Iterable[Turn | str]], list[ScoredTurn]]
MakeTurn = Callable[..., Turn]


def test_a_repeat_is_found_despite_casing_punctuation_and_word_order(
        converse: Converse) -> None:
    results = converse([
        "I already told you, the parcel never came",
        "what about my invoice",
        "THE PARCEL NEVER CAME, I already told you!!!",
    ])
    assert [r.facts["loop.repeats"] for r in results] == [0, 0, 1]


def test_yes_twice_is_not_a_repeat(converse: Converse) -> None:
    results = converse(["yes", "yes", "ok thanks", "ok thanks", "no"])
    assert results[-1].facts["loop.repeats"] == 0
    assert results[-1].scores.loop == 0.0


def test_different_requests_sharing_stop_words_are_not_repeats(converse: Converse) -> None:
    results = converse(["I want to cancel my order", "I want to track my order"])
    assert results[-1].facts["loop.repeats"] == 0


def test_each_repeat_is_counted(converse: Converse) -> None:
    results = converse(["where is my parcel", "where is my parcel?", "Where is my parcel!!"])
    assert [r.facts["loop.repeats"] for r in results] == [0, 1, 2]


def test_fallback_streak_resets_and_total_keeps_counting(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn("a", fallback=True), turn("b", fallback=True),
                        turn("c", fallback=False), turn("d", fallback=True)])
    assert [r.facts["loop.fallback_streak"] for r in results] == [1, 2, 0, 1]
    assert [r.facts["loop.fallbacks"] for r in results] == [1, 2, 2, 3]


def test_the_bot_asking_the_same_prompt_again_is_a_bot_repeat(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn("hi", prompt="greet"), turn("x", prompt="ask_order_number"),
                        turn("y", prompt="ask_order_number"), turn("z", prompt="ask_order_number")])
    assert [r.facts["loop.bot_repeats"] for r in results] == [0, 0, 1, 2]


def test_an_intent_seen_before_is_an_intent_repeat(converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="order_status"), turn(None, intent="billing"),
                        turn(None, intent="order_status")])
    assert [r.facts["loop.intent_repeats"] for r in results] == [0, 0, 1]
    assert results[-1].facts["message.intent"] == "order_status"


def test_loop_score_rises_with_failures_and_an_early_repeat_fades(
        converse: Converse, turn: MakeTurn) -> None:
    stuck = converse([turn("where is my parcel", prompt="ask_number", fallback=True)] * 4)
    assert [r.scores.loop for r in stuck] == sorted(r.scores.loop for r in stuck)
    assert stuck[-1].scores.loop > 0.8

    fading = converse(["where is my parcel", "where is my parcel",
                       *[f"thanks, and my customer number is {n}" for n in range(1000, 1010)]])
    assert fading[1].scores.loop > 0.3
    assert fading[-1].scores.loop < 0.05
    assert fading[-1].facts["loop.repeats"] == 1  # the count stays; only the score fades


def test_low_confidence_streak_ignores_turns_without_a_confidence(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn("a", intent="x", confidence=0.2),
                        turn("b"),
                        turn("c", intent="y", confidence=0.3),
                        turn("d", intent="z", confidence=0.9)])
    assert [r.facts["intent.low_confidence_streak"] for r in results] == [1, 1, 2, 0]
    assert "intent.confidence" not in results[1].facts
    assert results[0].facts["intent.confidence"] == 0.2
