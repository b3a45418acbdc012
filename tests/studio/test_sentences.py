"""Rules as sentences: every fact of the catalogue, every operator, every fact type."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalator.studio.engine import (
    FACTS,
    OPERATORS_BY_TYPE,
    AllOf,
    AnyOf,
    Leaf,
    Not,
    load_policy,
)
from escalator.studio.sentences import (
    SUBJECTS,
    condition_sentence,
    leaf_sentence,
    plain,
    rule_sentence,
)

ROOT = Path(__file__).resolve().parents[2]


def _said(leaf: Leaf) -> str:
    return plain(leaf_sentence(leaf))


def test_every_fact_of_the_catalogue_has_words() -> None:
    assert set(FACTS) <= set(SUBJECTS)


# One example value per fact type and operator, and how it must read.
CASES = [
    (Leaf("frustration.mean", "gte", 0.65), "the customer's average frustration is at least 0.65"),
    (Leaf("frustration.mean", "gt", 0.5), "the customer's average frustration is above 0.5"),
    (Leaf("sentiment.score", "lt", -0.5), "the sentiment of this message is below -0.5"),
    (Leaf("sentiment.score", "lte", 0), "the sentiment of this message is at most 0"),
    (Leaf("complexity.score", "eq", 1), "the complexity of this request is 1"),
    (Leaf("complexity.score", "ne", 0), "the complexity of this request is not 0"),
    (Leaf("loop.repeats", "in", (1, 2)), "the number of times the customer repeated themselves "
                                         "is one of 1 or 2"),
    (Leaf("loop.repeats", "not_in", (0,)), "the number of times the customer repeated "
                                           "themselves is none of 0"),
    (Leaf("turn_index", "gte", 3), "this is turn 3 or later"),
    (Leaf("turn_index", "gt", 3), "this is after turn 3"),
    (Leaf("turn_index", "lt", 3), "this is before turn 3"),
    (Leaf("turn_index", "lte", 3), "this is turn 3 or earlier"),
    (Leaf("turn_index", "eq", 1), "this is turn 1"),
    (Leaf("turn_index", "ne", 1), "this is not turn 1"),
    (Leaf("turn_index", "in", (1, 2)), "the turn number is one of 1 or 2"),
    (Leaf("requested_human", "is", True), "the customer asks for a person"),
    (Leaf("requested_human", "eq", False), "the customer does not ask for a person"),
    (Leaf("requested_human", "ne", True), "the customer does not ask for a person"),
    (Leaf("conversation.escalated", "is", True), "the conversation is already with a person"),
    (Leaf("customer.tier", "eq", "gold"), "the customer's tier is gold"),
    (Leaf("customer.tier", "ne", "gold"), "the customer's tier is not gold"),
    (Leaf("customer.tier", "in", ("gold", "platinum")), "the customer's tier is gold or platinum"),
    (Leaf("channel", "not_in", ("voice", "sms")), "the channel is neither voice nor sms"),
    (Leaf("complexity.topics", "contains", "fraud"), "the message mentions the topic fraud"),
    (Leaf("frustration.cues", "contains", "shouting"),
     "the message shows the frustration sign shouting"),
    (Leaf("context.agents_available", "eq", 0), "the platform's value 'agents_available' is 0"),
    (Leaf("context.vip", "is", True), "the platform's value 'vip' is yes"),
    (Leaf("context.plan", "in", ("pro", "team")), "the platform's value 'plan' is pro or team"),
    (Leaf("context.score", "gte", 7), "the platform's value 'score' is at least 7"),
    (Leaf("context.score", "gt", 7), "the platform's value 'score' is above 7"),
    (Leaf("context.score", "lt", 7), "the platform's value 'score' is below 7"),
    (Leaf("context.score", "lte", 7), "the platform's value 'score' is at most 7"),
    (Leaf("context.plan", "ne", "free"), "the platform's value 'plan' is not free"),
    (Leaf("context.plan", "not_in", ("free", "trial")),
     "the platform's value 'plan' is neither free nor trial"),
    (Leaf("loop.score", "in", (0.5, 1)), "how much the conversation goes round in circles is "
                                         "one of 0.5 or 1"),
    (Leaf("loop.score", "not_in", (0,)), "how much the conversation goes round in circles is "
                                         "none of 0"),
    (Leaf("message.language", "eq", "es"), "the language of this message is es"),
    (Leaf("message.chars", "gt", 500), "the length of this message (characters) is above 500"),
]


@pytest.mark.parametrize(("leaf", "words"), CASES, ids=[f"{c[0].fact}-{c[0].op}" for c in CASES])
def test_a_comparison_reads_as_a_clause(leaf: Leaf, words: str) -> None:
    assert _said(leaf) == words


def test_every_operator_of_every_fact_type_is_covered() -> None:
    covered = {(FACTS[leaf.fact].type if leaf.fact in FACTS else "scalar", leaf.op)
               for leaf, _ in CASES}
    wanted = {(kind, op) for kind, ops in OPERATORS_BY_TYPE.items() for op in ops}
    assert wanted <= covered, wanted - covered


def test_values_are_emphasised_and_escaped() -> None:
    html = str(leaf_sentence(Leaf("context.plan", "eq", "<b>x</b>")))
    assert "<em>&lt;b&gt;x&lt;/b&gt;</em>" in html


def test_groups_nest_with_brackets_and_negations_read_plainly() -> None:
    condition = AllOf((Leaf("customer.tier", "in", ("gold", "platinum")),
                       AnyOf((Leaf("frustration.score", "gte", 0.75),
                              Leaf("frustration.mean", "gte", 0.65)))))
    assert plain(condition_sentence(condition)) == (
        "the customer's tier is gold or platinum and (the frustration in this message is at "
        "least 0.75 or the customer's average frustration is at least 0.65)")
    assert plain(condition_sentence(Not(Leaf("requested_human", "is", True)))) == \
        "the customer does not ask for a person"
    assert plain(condition_sentence(Not(Leaf("turn_index", "gte", 3)))) == \
        "it is not true that this is turn 3 or later"
    topics = AnyOf(tuple(Leaf("complexity.topics", "contains", t)
                         for t in ("legal", "fraud", "data_privacy")))
    assert plain(condition_sentence(topics)) == \
        "the message mentions the topic legal, fraud or data_privacy"


def test_the_default_policy_reads_as_the_issue_asks() -> None:
    policy = load_policy(ROOT / "rules")
    try:
        said = {rule.id: plain(rule_sentence(rule, policy.ruleset))
                for rule in policy.ruleset.rules}
    finally:
        policy.close()
    assert said["sustained-frustration"] == (
        "Route to a person, queue support, urgency high, when the customer's average "
        "frustration is at least 0.65 and this is turn 3 or later.")
    assert said["no-agents-available"] == (
        "Keep the customer with the bot when the platform's value 'agents_available' is 0.")
    assert all(sentence.endswith(".") and "{" not in sentence for sentence in said.values())
