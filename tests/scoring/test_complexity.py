"""Complexity: questions, distinct issues, length and sensitive topics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from escalator.scoring import ScoredTurn

Score = Callable[..., ScoredTurn]


def test_questions_are_counted_with_or_without_question_marks(score: Score) -> None:
    assert score("Where is my parcel? When will it come? Who do I call?").facts[
        "complexity.questions"] == 3
    assert score("how do I reset my password").facts["complexity.questions"] == 1
    assert score("My password does not work.").facts["complexity.questions"] == 0


def test_several_issues_in_one_message_are_counted(score: Score) -> None:
    assert score("My bill is wrong").facts["complexity.issues"] == 1
    assert score("My bill is wrong and also my router keeps crashing, and another thing: "
                 "the app logs me out").facts["complexity.issues"] >= 3
    listed = score("Three problems:\n1. the invoice\n2. the delivery\n3. my login")
    assert listed.facts["complexity.issues"] == 3
    assert score("yes").facts["complexity.issues"] == 0


def test_several_issues_and_questions_score_higher_than_one(score: Score) -> None:
    simple = score("Where is my parcel?")
    tangled = score("Why was I charged twice? Also, my router is broken and I can't log in "
                    "to my account. When will the refund come?")
    assert tangled.scores.complexity > simple.scores.complexity + 0.3


@pytest.mark.parametrize(("text", "topic"), [
    ("I will contact my lawyer about this", "legal"),
    ("There are charges on my card I didn't make, I think it's fraud", "fraud"),
    ("My husband passed away and the account is in his name", "bereavement"),
    ("I lost my job and can't afford the payments, I'm struggling", "vulnerability"),
    ("I can smell gas in the kitchen", "safety"),
    ("I want to cancel my subscription", "cancellation"),
    ("I want to make a formal complaint", "complaint"),
    ("Please delete my personal data under GDPR", "data_privacy"),
    ("Mi padre falleció y quiero cerrar su cuenta", "bereavement"),
    ("Alguien hizo un cargo no autorizado con mi tarjeta, es una estafa", "fraud"),
    ("Ich werde meinen Anwalt einschalten", "legal"),
    ("Je veux résilier mon contrat", "cancellation"),
    ("Quero apagar meus dados pessoais", "data_privacy"),
])
def test_sensitive_topics_are_labelled_and_raise_complexity(score: Score, text: str,
                                                            topic: str) -> None:
    result = score(text)
    assert topic in result.facts["complexity.topics"]
    assert result.scores.complexity > 0.25


def test_a_long_message_is_more_complex_than_a_short_one(score: Score) -> None:
    short = score("My internet is slow")
    long = score(" ".join(["My internet connection drops every evening"] * 30))
    assert long.scores.complexity > short.scores.complexity
