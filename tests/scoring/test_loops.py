"""Loops: repeated messages, fallbacks, repeated prompts and intents, low NLU confidence."""

from __future__ import annotations

import json
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


# --- conversations that send only NLU results and prompt ids (voice bots) -------------------


def test_a_prompt_asked_three_times_scores_higher_than_three_different_prompts(
        converse: Converse, turn: MakeTurn) -> None:
    # No intents: an answer would lower the score (see the answer tests below).
    same = converse([turn(None, prompt="ask_date")] * 3)
    different = converse([turn(None, prompt=p) for p in ("ask_date", "ask_time", "ask_name")])
    assert [r.facts["loop.bot_repeats"] for r in same] == [0, 1, 2]
    assert different[-1].facts["loop.bot_repeats"] == 0
    assert same[-1].scores.loop > different[-1].scores.loop


def test_a_variant_of_a_prompt_is_the_same_prompt_but_numbered_parts_are_not(
        converse: Converse, turn: MakeTurn) -> None:
    variants = converse([turn(None, intent="inform", prompt="ask_email"),
                         turn(None, intent="inform", prompt="ask_email_retry"),
                         turn(None, intent="inform", prompt="ask_email-v2")])
    assert [r.facts["loop.bot_repeats"] for r in variants] == [0, 1, 2]
    parts = converse([turn(None, intent="inform", prompt="intro_1"),
                      turn(None, intent="inform", prompt="intro_2")])
    assert parts[-1].facts["loop.bot_repeats"] == 0


def test_the_bot_going_back_and_forth_between_two_prompts_is_an_oscillation(
        converse: Converse, turn: MakeTurn) -> None:
    prompts = ["propose_date", "ask_time_preference"] * 3
    results = converse([turn(None, intent="negate", prompt=p) for p in prompts])
    assert [r.facts["loop.oscillations"] for r in results] == [0, 0, 1, 2, 3, 4]
    onwards = converse([turn(None, intent="inform", prompt=p)
                        for p in ("ask_name", "ask_date", "ask_date", "ask_time")])
    assert onwards[-1].facts["loop.oscillations"] == 0


def test_intents_that_mean_not_understood_count_whatever_the_platform_calls_them(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="nlu_fallback"),
                        turn(None, intent="Default.Fallback.Intent"),
                        turn(None, intent="out_of_scope"),
                        turn(None, intent="book_table")])
    assert [r.facts["loop.not_understood"] for r in results] == [1, 2, 3, 3]
    # Not understood is not a request, so it is never an intent repeat either.
    assert results[-1].facts["loop.intent_repeats"] == 0
    assert results[2].scores.loop > 0.6


def test_a_low_confidence_intent_counts_as_not_understood(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="book_table", confidence=0.2),
                        turn(None, intent="cancel", confidence=0.95),
                        turn(None, intent="opening_hours")])
    assert [r.facts["loop.not_understood"] for r in results] == [1, 1, 1]


def test_yes_again_is_not_a_loop_but_no_again_is(converse: Converse, turn: MakeTurn) -> None:
    agreeing = converse([turn(None, intent="affirm", prompt=p)
                         for p in ("confirm_name", "confirm_date", "confirm_time")])
    assert agreeing[-1].facts["loop.intent_repeats"] == 0
    assert agreeing[-1].scores.loop == 0.0
    refusing = converse([turn(None, intent="deny", prompt=p)
                         for p in ("confirm_name", "confirm_date", "confirm_time")])
    assert [r.facts["loop.rejections"] for r in refusing] == [1, 2, 3]
    assert [r.facts["loop.intent_repeats"] for r in refusing] == [0, 1, 2]
    assert refusing[-1].scores.loop > 0.5


def test_a_single_no_is_an_answer_and_the_second_one_pushes_the_loop_score(
        converse: Converse, turn: MakeTurn) -> None:
    # "Anything else?" "No." is an answer, not a loop: counted, but no push.
    once = converse([turn(None, intent="inform", prompt="ask_name"),
                     turn(None, intent="deny", prompt="ask_anything_else")])
    assert once[-1].facts["loop.rejections"] == 1
    assert once[-1].scores.loop == 0.0
    # Two different rejection intents: no intent repeat, so the push is the rejection's.
    again = converse([turn(None, intent="deny", prompt="propose_slot"),
                      turn(None, intent="inform", prompt="ask_preference"),
                      turn(None, intent="negate", prompt="propose_other_slot")])
    assert [r.facts["loop.rejections"] for r in again] == [1, 1, 2]
    assert [r.facts["loop.intent_repeats"] for r in again] == [0, 0, 0]
    assert again[1].scores.loop == 0.0
    assert again[2].scores.loop > 0.0


def test_an_intent_only_conversation_stuck_on_one_question_is_scored_as_a_loop(
        converse: Converse, turn: MakeTurn) -> None:
    stuck = converse([turn(None, intent="book_table", prompt="welcome"),
                      turn(None, intent="nlu_fallback", prompt="ask_party_size"),
                      turn(None, intent="nlu_fallback", prompt="ask_party_size_rephrase",
                           fallback=True),
                      turn(None, intent="nlu_fallback", prompt="ask_party_size", fallback=True)])
    assert [r.scores.loop for r in stuck] == sorted(r.scores.loop for r in stuck)
    assert stuck[-1].scores.loop > 0.8
    smooth = converse([turn(None, intent=i, prompt=p) for i, p in (
        ("book_table", "welcome"), ("inform", "ask_party_size"), ("inform", "ask_date"),
        ("affirm", "confirm_booking"))])
    assert smooth[-1].scores.loop < 0.1


def test_one_early_misunderstanding_fades_after_smooth_turns(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="nlu_fallback", prompt="welcome"),
                        *[turn(None, intent=f"step_{n}", prompt=f"ask_{n}") for n in range(10)]])
    assert results[0].scores.loop > 0.3
    assert results[-1].scores.loop < 0.05
    assert results[-1].facts["loop.not_understood"] == 1  # the count stays; the score fades


# --- answers: the customer giving what the bot asked for is progress ----------------------


def test_answers_are_counted_and_bring_a_stumbling_conversation_back_down(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="nlu_fallback", prompt="ask_name"),
                        turn(None, intent="out_of_scope", prompt="ask_name_rephrased"),
                        turn(None, intent="inform", prompt="ask_name_retry"),
                        turn(None, intent="confirm", prompt="confirm_name")])
    assert [r.facts["loop.answers"] for r in results] == [0, 0, 1, 2]
    loop = [r.scores.loop for r in results]
    assert loop[1] > 0.5
    assert loop[1] > loop[2] > loop[3]
    assert loop[3] == 0.0
    # The counts that explain the earlier rise stay.
    assert results[-1].facts["loop.not_understood"] == 2


def test_answers_bank_no_credit_for_a_later_loop(converse: Converse, turn: MakeTurn) -> None:
    stuck = [turn(None, intent="nlu_fallback", prompt=f"ask_{n}") for n in range(3)]
    smooth_first = converse([*[turn(None, intent="inform", prompt=f"step_{n}")
                               for n in range(6)], *stuck])
    stuck_only = converse(stuck)
    assert smooth_first[-1].scores.loop == stuck_only[-1].scores.loop > 0.6


def test_an_answer_the_nlu_is_unsure_of_is_not_progress(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent="nlu_fallback", prompt="ask_date"),
                        turn(None, intent="inform", confidence=0.2, prompt="ask_date_retry")])
    assert results[-1].facts["loop.answers"] == 0
    assert results[-1].facts["loop.not_understood"] == 2
    assert results[-1].scores.loop > results[0].scores.loop


def test_text_without_intents_is_never_an_answer(converse: Converse) -> None:
    results = converse(["where is my parcel", "where is my parcel", "my number is 12345"])
    assert [r.facts["loop.answers"] for r in results] == [0, 0, 0]
    assert results[-1].scores.loop > 0.0


def test_the_bot_asking_again_right_after_an_answer_is_a_reask(
        converse: Converse, turn: MakeTurn) -> None:
    stuck = converse([turn(None, intent="inform", prompt="ask_address"),
                      turn(None, intent="inform", prompt="ask_address"),
                      turn(None, intent="confirm", prompt="ask_address_retry")])
    assert [r.facts["loop.reasks"] for r in stuck] == [0, 1, 2]
    # Answers still lower the score: the re-asks are only counted.
    assert stuck[-1].scores.loop == 0.0


def test_a_prompt_proposed_again_after_a_no_or_after_other_turns_is_no_reask(
        converse: Converse, turn: MakeTurn) -> None:
    negotiation = converse([turn(None, intent="negate", prompt="propose_date"),
                            turn(None, intent="negate", prompt="propose_date"),
                            turn(None, intent="confirm", prompt="propose_date")])
    assert [r.facts["loop.reasks"] for r in negotiation] == [0, 0, 0]
    assert negotiation[-1].facts["loop.bot_repeats"] == 2
    later = converse([turn(None, intent="inform", prompt="ask_name"),
                      turn(None, intent="inform", prompt="ask_date"),
                      turn(None, intent="inform", prompt="ask_name"),
                      turn("my name is Ada", prompt="ask_date"),
                      turn(None, intent="inform", prompt="ask_date")])
    # ask_name again after ask_date is not "right after"; a text turn is no answer.
    assert [r.facts["loop.reasks"] for r in later] == [0, 0, 0, 0, 0]


def test_a_memory_written_before_the_new_loop_counters_still_works(
        score: Callable[..., ScoredTurn]) -> None:
    # As earlier versions stored it: no os/nu/rj/an/la/ra keys.
    old = score(None, intent="book_table", prompt="ask_date").memory
    old = {k: v for k, v in old.items() if k not in ("os", "nu", "rj", "an", "la", "ra")}
    result = score(None, memory=old, intent="book_table", prompt="ask_date")
    assert result.facts["loop.bot_repeats"] == 1
    assert result.facts["loop.intent_repeats"] == 1
    assert result.facts["loop.oscillations"] == 0
    assert result.facts["loop.not_understood"] == 0
    assert result.facts["loop.answers"] == 0
    assert result.facts["loop.reasks"] == 0
    # A memory from before re-asks were counted does not know the last turn was an answer.
    answered = score(None, intent="inform", prompt="ask_date").memory
    assert answered["la"] == 1
    del answered["la"]
    assert score(None, memory=answered, intent="inform",
                 prompt="ask_date").facts["loop.reasks"] == 0


def test_the_loop_memory_stays_small_over_a_long_conversation(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse([turn(None, intent=f"intent_{n % 13}", prompt=f"prompt_{n}")
                        for n in range(200)])
    memory = results[-1].memory
    assert len(memory["pr"]) <= 8 and len(memory["it"]) <= 8
    assert all(len(tag) == 6 for tag in memory["pr"] + memory["it"])
    assert len(json.dumps(memory)) < 400
