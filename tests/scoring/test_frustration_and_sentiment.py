"""Sentiment and frustration: per turn, and over a conversation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from escalator.model import Turn
from escalator.scoring import ScoredTurn

Score = Callable[..., ScoredTurn]
Converse = Callable[[Iterable[Turn | str]], list[ScoredTurn]]


def test_an_angry_repeated_complaint_is_more_frustrated_than_a_calm_question(
        score: Score) -> None:
    calm = score("Hello, could you tell me when my parcel will arrive?")
    angry = score("I ALREADY TOLD YOU, MY PARCEL STILL HASN'T ARRIVED!!!")
    assert angry.scores.frustration > calm.scores.frustration + 0.4
    assert calm.facts["frustration.cues"] == ()
    assert {"repetition", "shouting", "exclamation"} <= set(angry.facts["frustration.cues"])


@pytest.mark.parametrize(("text", "cue"), [
    ("This is the third time I'm writing about this", "repetition"),
    ("I have been waiting for 3 weeks", "waiting"),
    ("I'm going to cancel my account and switch to another provider", "threat_to_leave"),
    ("I'll post this on social media", "public_complaint"),
    ("I'm taking this to the ombudsman", "public_complaint"),
    ("what the fuck is going on", "profanity"),
    ("you are completely useless", "insult"),
    ("great, just great. thanks for nothing", "sarcasm"),
    ("you said you would call me back yesterday", "broken_promise"),
    ("WHY IS NOTHING WORKING TODAY", "shouting"),
    ("where is it???", "exclamation"),
    ("Ya se lo dije dos veces", "repetition"),
    ("Llevo esperando hace 2 semanas", "waiting"),
    ("Ich warte seit 3 Wochen, schon wieder nichts", "waiting"),
    ("Ich kündige meinen Vertrag und wechsle zu einem anderen Anbieter", "threat_to_leave"),
    ("Je vais résilier mon abonnement", "threat_to_leave"),
    ("c'est la troisième fois que j'appelle", "repetition"),
    ("Vou reclamar no Reclame Aqui e no Procon", "public_complaint"),
    ("já disse isso três vezes", "repetition"),
])
def test_cues_are_found_and_labelled(score: Score, text: str, cue: str) -> None:
    result = score(text)
    assert cue in result.facts["frustration.cues"]
    assert result.scores.frustration > 0


def test_short_capitals_are_not_shouting(score: Score) -> None:
    assert "shouting" not in score("OK THX").facts["frustration.cues"]


def test_sentiment_is_vader_compound_per_turn(score: Score) -> None:
    assert score("This is terrible, I hate it").facts["sentiment.score"] < -0.5
    assert score("Thank you, that was great help!").facts["sentiment.score"] > 0.5
    assert score("the parcel is at the depot").facts["sentiment.score"] == 0.0


def test_extra_valence_words_give_other_languages_a_sentiment(score: Score) -> None:
    assert score("el servicio es pésimo").facts["sentiment.score"] < -0.3
    assert score("das ist furchtbar").facts["sentiment.score"] < -0.3


def test_a_worsening_conversation_has_negative_trend_and_streak(converse: Converse) -> None:
    results = converse([
        "Hi, I have a question about my bill",
        "That is not right, I was charged twice",
        "This is terrible, nobody helps me",
        "I am angry, this is the worst service ever",
    ])
    last = results[-1].facts
    assert last["sentiment.trend"] < 0
    assert last["sentiment.negative_streak"] == 3
    assert last["sentiment.mean"] < 0
    # The mean lags the latest turn: recent turns weigh more, but not all.
    assert last["sentiment.score"] < last["sentiment.mean"]


def test_a_positive_turn_ends_the_negative_streak(converse: Converse) -> None:
    results = converse(["This is terrible", "Awful, awful service", "Oh great, thank you so much!"])
    assert [r.facts["sentiment.negative_streak"] for r in results] == [1, 2, 0]


def test_frustration_mean_rises_and_then_fades(converse: Converse) -> None:
    angry = "I ALREADY TOLD YOU THREE TIMES, THIS IS USELESS!!!"
    calm = "ok, my customer number is 55123"
    results = converse([angry, angry, calm, calm, calm, calm])
    means = [r.facts["frustration.mean"] for r in results]
    assert means[1] > 0.6
    assert means[2] < means[1]
    assert means[-1] < means[2]
    assert results[-1].facts["frustration.score"] == 0.0


def test_an_intent_only_turn_is_neutral_and_keeps_the_conversation_means(
        converse: Converse, turn: Callable[..., Turn]) -> None:
    results = converse(["This is terrible, I hate it",
                        turn(None, intent="order_status", confidence=0.9)])
    first, voice = results[0].facts, results[1].facts
    assert voice["sentiment.score"] == 0.0
    assert voice["frustration.cues"] == ()
    assert voice["sentiment.mean"] == first["sentiment.mean"]
    assert voice["sentiment.negative_streak"] == first["sentiment.negative_streak"] == 1
