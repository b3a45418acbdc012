"""The floor (a customer can always reach a person): a rule set without a way out to a person
is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from escalator.errors import PolicyError, Problem
from escalator.ruleset.loader import load_ruleset

WriteRules = Callable[..., Path]

PERSON = """
- id: person
  description: Asked for a person.
  priority: 100
  when: {when}
  then: {{decision: route_to_human}}
"""
CAP = """
- id: cap
  description: The bot keeps failing.
  priority: 90
  when: {when}
  then: {{decision: route_to_human}}
"""
GOOD_PERSON = PERSON.format(when="{fact: requested_human, is: true}")
GOOD_CAP = CAP.format(when="{fact: loop.fallback_streak, gte: 3}")
NO_PERSON_RULE = ("rules.yaml: the rule set has no rule that routes an explicit request for a "
                  "person (requested_human is true) to a person; add one "
                  "(see 'The floor' in docs/policy/guide.md)")


def refusal(folder: Path) -> list[Problem]:
    """The problems load_ruleset reports for a folder (fails if it loads)."""
    with pytest.raises(PolicyError) as info:
        load_ruleset(folder)
    return info.value.problems


def test_the_example_floor_is_accepted(write_rules: WriteRules) -> None:
    ruleset = load_ruleset(write_rules())
    assert [r.id for r in ruleset.rules] == ["explicit-human-request", "fallback-cap"]


def test_no_rule_for_an_explicit_request_is_refused_in_plain_words(
        write_rules: WriteRules) -> None:
    problems = refusal(write_rules(GOOD_CAP, floor=False))
    assert [str(p) for p in problems] == [NO_PERSON_RULE]


def test_no_cap_on_bot_failures_is_refused(write_rules: WriteRules) -> None:
    (problem,) = refusal(write_rules(GOOD_PERSON, floor=False))
    assert problem.file == "rules.yaml" and problem.line is None
    assert "no rule that hands the conversation to a person after at most 5 bot failures" in (
        problem.message)
    assert "'The floor' in docs/policy/guide.md" in problem.message


def test_an_empty_rule_set_misses_both_parts(write_rules: WriteRules) -> None:
    problems = refusal(write_rules(floor=False))
    assert len(problems) == 2
    assert "requested_human is true" in problems[0].message
    assert "loop.fallback_streak" in problems[1].message


@pytest.mark.parametrize(("when", "accepted"), [
    ("{fact: requested_human, is: true}", True),
    ("{fact: requested_human, eq: true}", True),
    ("{all: [{fact: requested_human, is: true}]}", True),
    ("{any: [{fact: frustration.mean, gte: 0.9}, {fact: requested_human, is: true}]}", True),
    ("{not: {fact: requested_human, is: false}}", True),
    # Only sometimes: another condition must hold too.
    ("{all: [{fact: requested_human, is: true}, {fact: turn_index, gte: 2}]}", False),
    ("{all: [{fact: requested_human, is: true}, {fact: context.agents_available, gt: 0}]}",
     False),
    ("{fact: requested_human, is: false}", False),
    ("{fact: frustration.mean, gte: 0.5}", False),
])
def test_which_conditions_certainly_honour_a_request_for_a_person(
        write_rules: WriteRules, when: str, accepted: bool) -> None:
    folder = write_rules(PERSON.format(when=when) + GOOD_CAP, floor=False)
    if accepted:
        assert load_ruleset(folder).rules[0].id == "person"
    else:
        assert [str(p) for p in refusal(folder)] == [NO_PERSON_RULE]


def test_a_keep_with_bot_rule_does_not_count_as_the_floor(write_rules: WriteRules) -> None:
    rules = GOOD_PERSON.replace("route_to_human", "keep_with_bot").replace("100", "10") + GOOD_CAP
    problems = refusal(write_rules(rules, floor=False))
    assert [str(p) for p in problems] == [NO_PERSON_RULE]


@pytest.mark.parametrize(("when", "accepted"), [
    ("{fact: loop.fallback_streak, gte: 5}", True),
    ("{fact: loop.fallback_streak, gte: 1}", True),
    ("{fact: loop.fallback_streak, gt: 4}", True),
    ("{any: [{fact: loop.repeats, gte: 3}, {fact: loop.fallback_streak, gte: 4}]}", True),
    ("{not: {fact: loop.fallback_streak, lt: 5}}", True),
    ("{fact: loop.fallback_streak, gte: 6}", False),
    ("{fact: loop.fallback_streak, gt: 5}", False),
    ("{fact: loop.fallback_streak, in: [3, 4, 5]}", False),
    ("{fact: loop.fallback_streak, eq: 5}", False),
    ("{all: [{fact: loop.fallback_streak, gte: 3}, {fact: turn_index, gte: 3}]}", False),
    ("{fact: loop.fallbacks, gte: 3}", False),
])
def test_which_conditions_certainly_cap_bot_failures(
        write_rules: WriteRules, when: str, accepted: bool) -> None:
    folder = write_rules(GOOD_PERSON + CAP.format(when=when), floor=False)
    if accepted:
        assert [r.id for r in load_ruleset(folder).rules] == ["person", "cap"]
    else:
        (problem,) = refusal(folder)
        assert "at most 5 bot failures in a row" in problem.message


def test_a_keep_rule_that_outranks_the_floor_is_refused(write_rules: WriteRules) -> None:
    problems = refusal(write_rules("""
    - id: calm-customers-stay
      description: Calm customers stay with the bot.
      priority: 120
      when: {fact: frustration.mean, lt: 0.2}
      then: {decision: keep_with_bot}
    """))
    assert [(p.file, p.line, p.rule) for p in problems] == [
        ("rules.yaml", 16, "calm-customers-stay"), ("rules.yaml", 16, "calm-customers-stay")]
    assert "could override 'explicit-human-request' (priority 100)" in problems[0].message
    assert "priority of 100 or less" in problems[0].message
    assert "could override 'fallback-cap' (priority 90)" in problems[1].message


def test_a_keep_rule_tied_with_the_floor_is_accepted(write_rules: WriteRules) -> None:
    ruleset = load_ruleset(write_rules("""
    - id: tie
      description: Ties go to a person.
      priority: 90
      when: {fact: frustration.mean, lt: 0.2}
      then: {decision: keep_with_bot}
    """))
    assert ruleset.rules[-1].id == "tie"


def test_a_keep_rule_that_cannot_apply_when_the_floor_does_may_outrank_it(
        write_rules: WriteRules) -> None:
    ruleset = load_ruleset(write_rules("""
    - id: early-and-no-request
      description: Early turns without a request stay with the bot.
      priority: 500
      when:
        all:
          - {fact: requested_human, is: false}
          - {fact: loop.fallback_streak, lt: 2}
      then: {decision: keep_with_bot}
    """))
    assert ruleset.rules[-1].priority == 500
    # ... but one that could still apply after five failures cannot.
    problems = refusal(write_rules("""
    - id: no-request
      description: No request stays with the bot.
      priority: 500
      when: {fact: requested_human, is: false}
      then: {decision: keep_with_bot}
    """))
    assert len(problems) == 1 and "could override 'fallback-cap'" in problems[0].message


def test_the_best_floor_rule_counts(write_rules: WriteRules) -> None:
    ruleset = load_ruleset(write_rules("""
    - id: urgent-request
      description: An explicit request with a sensitive topic, handled first.
      priority: 300
      when: {any: [{fact: requested_human, is: true}, {fact: loop.fallback_streak, gte: 2}]}
      then: {decision: route_to_human}
    - id: mid
      description: Outranks the other floor rules, not this one.
      priority: 200
      when: {fact: frustration.mean, lt: 0.2}
      then: {decision: keep_with_bot}
    """))
    assert len(ruleset.rules) == 4


def test_a_floor_refusal_mentions_rules_that_could_not_be_read(write_rules: WriteRules) -> None:
    broken_person = GOOD_PERSON.replace("requested_human", "requested_humans")
    problems = refusal(write_rules(broken_person + GOOD_CAP, floor=False))
    assert "unknown fact 'requested_humans' (did you mean 'requested_human'?)" in (
        problems[0].message)
    assert "1 rule(s) could not be read" in problems[1].message
