"""The contract with the pipeline: catalogue facts, and a small memory without customer text."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable

from escalator.model import Turn
from escalator.ruleset.catalogue import FACTS
from escalator.scoring import ScoredTurn

Converse = Callable[[Iterable[Turn | str]], list[ScoredTurn]]
MakeTurn = Callable[..., Turn]

PIPELINE_FACTS = {"turn_index", "conversation.escalated", "conversation.escalations",
                  "conversation.minutes",
                  "customer.tier", "customer.segment", "channel"}
OPTIONAL_FACTS = {"message.intent", "intent.confidence"}
PYTHON_TYPES = {"integer": int, "number": float, "boolean": bool, "string": str, "labels": tuple}

CONVERSATION = [
    "Hello, my name is Margarethe Oyelaran and my parcel to 14 Quillfeather Lane never arrived",
    "Why is nobody answering? I ALREADY TOLD YOU MY ORDER NUMBER IS 99817!!!",
    "Hello, my name is Margarethe Oyelaran and my parcel to 14 Quillfeather Lane never arrived",
    "My card was charged twice and I think this is fraud, also I want to cancel",
    "Je veux parler à un conseiller, c'est la troisième fois",
    "Quero falar com um atendente agora, estou esperando há 3 semanas",
    "Ich warte seit Wochen auf eine Antwort, das ist eine Frechheit",
    "Thanks for nothing. I'll post this on Twitter",
    "ok", "yes", "where is my parcel", "where is my parcel??",
    "Can I speak to your manager about the refund for order 99817?",
    "My husband passed away and the account is in his name",
    "still waiting...", "this is the third time I ask", "agent please",
    "I will contact my lawyer", "please delete my personal data", "bye",
]


def test_facts_are_exactly_the_scoring_facts_of_the_catalogue(
        converse: Converse, turn: MakeTurn) -> None:
    scoring_facts = set(FACTS) - PIPELINE_FACTS
    with_nlu = converse([turn("hello there", intent="greet", confidence=0.8)])[0]
    assert set(with_nlu.facts) == scoring_facts
    without_nlu = converse(["hello there"])[0]
    assert set(without_nlu.facts) == scoring_facts - OPTIONAL_FACTS


def test_fact_values_have_catalogue_types_and_ranges(converse: Converse, turn: MakeTurn) -> None:
    turns: list[Turn | str] = [*CONVERSATION, turn(None, intent="order_status", confidence=1.0),
                               turn("", intent="x", confidence=0.0, language="pt-BR")]
    for result in converse(turns):
        for name, value in result.facts.items():
            spec = FACTS[name]
            assert type(value) is PYTHON_TYPES[spec.type], (name, value)
            if isinstance(value, float):
                assert not math.isnan(value) and round(value, 4) == value, (name, value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert spec.minimum is None or value >= spec.minimum, (name, value)
                assert spec.maximum is None or value <= spec.maximum, (name, value)
            if isinstance(value, tuple) and name.endswith(".contributions"):
                # "feature +0.42", the largest size first
                sizes = [abs(float(v.rsplit(" ", 1)[1])) for v in value]
                assert sizes == sorted(sizes, reverse=True), (name, value)
            elif isinstance(value, tuple):
                assert list(value) == sorted(value) and all(isinstance(v, str) for v in value)
        scores = result.scores
        assert -1 <= scores.sentiment <= 1
        assert all(0 <= s <= 1 for s in (scores.frustration, scores.complexity, scores.loop))
        assert scores.loop == result.facts["loop.score"]


def test_memory_holds_none_of_the_customers_words(converse: Converse) -> None:
    final = converse(CONVERSATION)[-1].memory
    stored = json.dumps(final).casefold()
    words = {w.casefold() for text in CONVERSATION for w in re.findall(r"[^\W\d_]{3,}", text)}
    leaked = {w for w in words if w in stored}
    assert not leaked
    assert "99817" not in stored


def test_memory_of_a_twenty_turn_conversation_stays_small_and_bounded(
        converse: Converse, turn: MakeTurn) -> None:
    turns = [turn(text, prompt=f"prompt_{i % 7}_with_a_rather_long_identifier_" + "x" * 80,
                  intent=f"intent_{i}_" + "y" * 100, confidence=0.3, fallback=i % 2 == 0)
             for i, text in enumerate(CONVERSATION)]
    final = converse(turns)[-1].memory
    size = len(json.dumps(final, separators=(",", ":")))
    assert size < 700
    assert len(final["sg"]) <= 8 and len(final["pr"]) <= 8 and len(final["it"]) <= 8


def test_an_older_or_damaged_memory_is_read_with_defaults(lexicons: object,
                                                          turn: MakeTurn) -> None:
    from escalator.scoring import Lexicons, score_turn

    assert isinstance(lexicons, Lexicons)
    old = {"n": 3, "rp": 2, "fk": "two", "sg": ["@@not-base64@@", 17], "ll": float("nan"),
           "sr": [0.5, "x", 9]}
    result = score_turn(turn("where is my parcel", fallback=True), old, lexicons)
    assert result.facts["loop.repeats"] == 2
    assert result.facts["loop.fallback_streak"] == 1
    assert not math.isnan(result.facts["loop.score"])  # type: ignore[arg-type]
    json.dumps(result.memory, allow_nan=False)


def test_an_intent_only_first_turn_has_neutral_text_facts(converse: Converse,
                                                          turn: MakeTurn) -> None:
    facts = converse([turn(None, intent="billing", confidence=0.9, language="de")])[0].facts
    assert facts["message.chars"] == 0
    assert facts["message.language"] == "de"
    assert facts["sentiment.score"] == 0.0 and facts["frustration.cues"] == ()
    assert facts["complexity.issues"] == 0 and facts["complexity.topics"] == ()
    unknown = converse([turn(None, intent="billing")])[0].facts
    assert unknown["message.language"] == "und"
