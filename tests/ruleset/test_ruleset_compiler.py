"""Compiled rule sets decide like the rules say: every operator, type, absent fact and tie."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalator.errors import PolicyError
from escalator.ruleset.compiler import CompiledRuleSet, RuleSetClosed, engine_number
from escalator.ruleset.conditions import holds
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.messages import Messages

Compile = Callable[..., CompiledRuleSet]

# One keep_with_bot rule per operator and fact type, all at priority 10 (below the floor):
# (rule id, fact, operator, constant as written in YAML).
OPERATOR_TABLE = [
    ("num-eq", "frustration.mean", "eq", "0.6"),
    ("num-ne", "frustration.mean", "ne", "0.6"),
    ("num-lt", "frustration.mean", "lt", "0.6"),
    ("num-lte", "frustration.mean", "lte", "0.6"),
    ("num-gt", "frustration.mean", "gt", "0.6"),
    ("num-gte", "frustration.mean", "gte", "0.6"),
    ("num-in", "frustration.mean", "in", "[0.2, 0.6]"),
    ("num-not-in", "frustration.mean", "not_in", "[0.2, 0.6]"),
    ("int-eq", "loop.repeats", "eq", "3"),
    ("int-ne", "loop.repeats", "ne", "3"),
    ("int-lt", "loop.repeats", "lt", "3"),
    ("int-lte", "loop.repeats", "lte", "3"),
    ("int-gt", "loop.repeats", "gt", "3"),
    ("int-gte", "loop.repeats", "gte", "3"),
    ("int-in", "loop.repeats", "in", "[1, 3]"),
    ("int-not-in", "loop.repeats", "not_in", "[1, 3]"),
    ("bool-is", "conversation.escalated", "is", "true"),
    ("bool-eq-false", "conversation.escalated", "eq", "false"),
    ("bool-ne", "conversation.escalated", "ne", "true"),
    ("str-eq", "customer.tier", "eq", "gold"),
    ("str-ne", "customer.tier", "ne", "gold"),
    ("str-in", "customer.tier", "in", "[gold, platinum]"),
    ("str-not-in", "customer.tier", "not_in", "[gold, platinum]"),
    ("labels-legal", "complexity.topics", "contains", "legal"),
    ("labels-fraud", "complexity.topics", "contains", "fraud"),
    ("ctx-eq-3", "context.x", "eq", "3"),
    ("ctx-eq-text", "context.x", "eq", '"3"'),
    ("ctx-is-true", "context.x", "is", "true"),
    ("ctx-gte", "context.x", "gte", "2"),
    ("ctx-ne-3", "context.x", "ne", "3"),
    ("ctx-in", "context.x", "in", "[3, three, false]"),
    ("ctx-not-in", "context.x", "not_in", "[3, three]"),
]
OPERATOR_RULES = "".join(
    f"- {{id: {rule_id}, description: n, priority: 10, when: {{fact: {fact}, {op}: {value}}},"
    " then: {decision: keep_with_bot}}\n"
    for rule_id, fact, op, value in OPERATOR_TABLE
)


@pytest.fixture(scope="module")
def operators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompiledRuleSet]:
    """The operator table above, compiled once for the module."""
    folder = tmp_path_factory.mktemp("operators")
    floor = (
        "  - {id: explicit-human-request, description: p, priority: 100,"
        " when: {fact: requested_human, is: true}, then: {decision: route_to_human}}\n"
        "  - {id: fallback-cap, description: f, priority: 90,"
        " when: {fact: loop.fallback_streak, gte: 3}, then: {decision: route_to_human}}\n"
    )
    body = "".join("  " + line + "\n" for line in OPERATOR_RULES.splitlines())
    (folder / "rules.yaml").write_text(
        "ruleset: ops\nversion: '1'\ndefault: {decision: keep_with_bot, queue: q, "
        "urgency: normal, customer_message: hi}\nrules:\n" + floor + body, encoding="utf-8")
    compiled = CompiledRuleSet(load_ruleset(folder))
    yield compiled
    compiled.close()


def matched(compiled: CompiledRuleSet, facts: dict[str, Any], prefix: str = "") -> set[str]:
    """Ids of the rules that match, keeping those starting with prefix."""
    return {rule.id for rule in compiled.matches(facts) if rule.id.startswith(prefix)}


@pytest.mark.parametrize(("facts", "prefix", "expected"), [
    # numbers: 0.6 exactly, a hair below, a hair above, absent
    ({"frustration.mean": 0.6}, "num-", {"num-eq", "num-lte", "num-gte", "num-in"}),
    ({"frustration.mean": 0.59999}, "num-", {"num-ne", "num-lt", "num-lte", "num-not-in"}),
    ({"frustration.mean": 0.60001}, "num-", {"num-ne", "num-gt", "num-gte", "num-not-in"}),
    ({"frustration.mean": 0.2}, "num-", {"num-ne", "num-lt", "num-lte", "num-in"}),
    ({"frustration.mean": 1e-7}, "num-", {"num-ne", "num-lt", "num-lte", "num-not-in"}),
    ({}, "num-", set()),
    # integers, including an integral float from a scorer
    ({"loop.repeats": 3}, "int-", {"int-eq", "int-lte", "int-gte", "int-in"}),
    ({"loop.repeats": 3.0}, "int-", {"int-eq", "int-lte", "int-gte", "int-in"}),
    ({"loop.repeats": 2}, "int-", {"int-ne", "int-lt", "int-lte", "int-not-in"}),
    ({"loop.repeats": 4}, "int-", {"int-ne", "int-gt", "int-gte", "int-not-in"}),
    ({"loop.repeats": 1}, "int-", {"int-ne", "int-lt", "int-lte", "int-in"}),
    ({}, "int-", set()),
    # booleans
    ({"conversation.escalated": True}, "bool-", {"bool-is"}),
    ({"conversation.escalated": False}, "bool-", {"bool-eq-false", "bool-ne"}),
    ({}, "bool-", set()),
    # strings
    ({"customer.tier": "gold"}, "str-", {"str-eq", "str-in"}),
    ({"customer.tier": "platinum"}, "str-", {"str-ne", "str-in"}),
    ({"customer.tier": "silver"}, "str-", {"str-ne", "str-not-in"}),
    ({"customer.tier": "Gold"}, "str-", {"str-ne", "str-not-in"}),
    ({}, "str-", set()),
    # labels
    ({"complexity.topics": ("legal", "refund")}, "labels-", {"labels-legal"}),
    ({"complexity.topics": ("fraud", "legal")}, "labels-", {"labels-legal", "labels-fraud"}),
    ({"complexity.topics": ()}, "labels-", set()),
    ({"complexity.topics": ("legality",)}, "labels-", set()),
    ({}, "labels-", set()),
    # context values: strict about types ("3" is not 3, 1 is not true, 0 is not false)
    ({"context.x": 3}, "ctx-", {"ctx-eq-3", "ctx-gte", "ctx-in"}),
    ({"context.x": 3.0}, "ctx-", {"ctx-eq-3", "ctx-gte", "ctx-in"}),
    ({"context.x": "3"}, "ctx-", {"ctx-eq-text", "ctx-ne-3", "ctx-not-in"}),
    ({"context.x": True}, "ctx-", {"ctx-is-true", "ctx-ne-3", "ctx-not-in"}),
    ({"context.x": 1}, "ctx-", {"ctx-ne-3", "ctx-not-in"}),
    ({"context.x": False}, "ctx-", {"ctx-in", "ctx-ne-3", "ctx-not-in"}),
    ({"context.x": 0}, "ctx-", {"ctx-ne-3", "ctx-not-in"}),
    ({"context.x": 2.5}, "ctx-", {"ctx-gte", "ctx-ne-3", "ctx-not-in"}),
    ({"context.x": "three"}, "ctx-", {"ctx-in", "ctx-ne-3"}),
    ({}, "ctx-", set()),
])
def test_each_operator_on_each_type(operators: CompiledRuleSet, facts: dict[str, Any],
                                    prefix: str, expected: set[str]) -> None:
    assert matched(operators, facts, prefix) == expected
    # ... and the engine agrees with the plain-Python meaning of conditions.
    reference = {r.id for r in operators.ruleset.rules
                 if r.id.startswith(prefix) and holds(r.when, facts)}
    assert reference == expected


def test_engine_agrees_with_reference_on_random_facts(operators: CompiledRuleSet) -> None:
    rng = random.Random(20261127)
    pools: dict[str, list[Any]] = {
        "frustration.mean": [0.0, 0.2, 0.59999, 0.6, 0.60001, 1.0, 1e-9],
        "loop.repeats": [0, 1, 2, 3, 4, 10**12],
        "conversation.escalated": [True, False],
        "customer.tier": ["gold", "platinum", "silver", "", "gold "],
        "complexity.topics": [(), ("legal",), ("fraud",), ("fraud", "legal"), ("x",)],
        "context.x": [3, 3.0, "3", True, False, 1, 0, 2, 2.5, "three", "", -1e-12],
        "requested_human": [True, False],
        "loop.fallback_streak": [0, 2, 3, 7],
    }
    for _ in range(3000):
        facts = {name: rng.choice(pool) for name, pool in pools.items() if rng.random() < 0.6}
        expected = [r.id for r in operators.ruleset.rules if holds(r.when, facts)]
        assert sorted(matched(operators, facts)) == sorted(expected), facts


def test_not_of_a_comparison_on_an_absent_fact_is_true(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - {id: not-confident, description: n, priority: 10, then: {decision: keep_with_bot},
       when: {not: {fact: intent.confidence, gte: 0.5}}}
    - {id: not-ne, description: n, priority: 10, then: {decision: keep_with_bot},
       when: {not: {fact: customer.tier, ne: gold}}}
    - {id: not-legal, description: n, priority: 10, then: {decision: keep_with_bot},
       when: {not: {fact: complexity.topics, contains: legal}}}
    - {id: not-ctx, description: n, priority: 10, then: {decision: keep_with_bot},
       when: {not: {fact: context.vip, is: true}}}
    - {id: not-not, description: n, priority: 10, then: {decision: keep_with_bot},
       when: {not: {not: {fact: intent.confidence, lt: 0.5}}}}
    """)
    assert matched(compiled, {}, "not-") == {"not-confident", "not-ne", "not-legal", "not-ctx"}
    assert matched(compiled, {"intent.confidence": 0.7}, "not-") == {
        "not-ne", "not-legal", "not-ctx"}
    assert matched(compiled, {"intent.confidence": 0.3}, "not-") == {
        "not-confident", "not-not", "not-ne", "not-legal", "not-ctx"}
    assert matched(compiled, {"customer.tier": "gold", "complexity.topics": ("legal",),
                              "context.vip": True, "intent.confidence": 0.5}, "not-") == {
        "not-ne"}
    assert matched(compiled, {"customer.tier": "silver", "context.vip": 1}, "not-") == {
        "not-confident", "not-legal", "not-ctx"}


def test_nested_all_any_not(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - id: nested
      description: Frustrated and either a sensitive topic or not a gold customer.
      priority: 60
      when:
        all:
          - {fact: frustration.mean, gte: 0.5}
          - any:
              - {fact: complexity.topics, contains: legal}
              - not: {any: [{fact: customer.tier, eq: gold}, {fact: customer.tier, eq: platinum}]}
      then: {decision: route_to_human}
    """)
    base = {"frustration.mean": 0.8}
    assert matched(compiled, base) == {"nested"}  # no tier: not(any(...)) is true
    assert matched(compiled, {**base, "customer.tier": "gold"}) == set()
    assert matched(compiled, {**base, "customer.tier": "platinum",
                              "complexity.topics": ("legal",)}) == {"nested"}
    assert matched(compiled, {**base, "customer.tier": "bronze"}) == {"nested"}
    assert matched(compiled, {"frustration.mean": 0.4, "customer.tier": "bronze"}) == set()


def test_every_match_is_reported_once_even_when_several_branches_match(
        compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - id: many-ways
      description: n
      priority: 10
      when:
        any:
          - {fact: frustration.mean, gte: 0.5}
          - {fact: frustration.score, gte: 0.5}
          - {fact: loop.repeats, in: [2, 3, 4]}
          - {fact: context.x, ne: 1}
      then: {decision: keep_with_bot}
    """)
    found = compiled.matches({"frustration.mean": 0.9, "frustration.score": 0.9,
                              "loop.repeats": 3, "context.x": "a", "requested_human": True,
                              "loop.fallback_streak": 4})
    assert [r.id for r in found] == ["explicit-human-request", "fallback-cap", "many-ways"]


def test_highest_priority_decides_and_ties_go_to_a_person(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - {id: keep-first-in-file, description: k, priority: 50, when: {fact: loop.repeats, gte: 1},
       then: {decision: keep_with_bot}}
    - {id: route-tie, description: r, priority: 50, when: {fact: loop.repeats, gte: 1},
       then: {decision: route_to_human, queue: billing}}
    - {id: keep-second-in-file, description: k, priority: 50, when: {fact: loop.repeats, gte: 2},
       then: {decision: keep_with_bot}}
    - {id: keep-high, description: k, priority: 80, when: {fact: loop.repeats, gte: 5},
       then: {decision: keep_with_bot}}
    - {id: route-low, description: r, priority: 5, when: {fact: loop.repeats, gte: 1},
       then: {decision: route_to_human}}
    """)
    result = compiled.evaluate({"loop.repeats": 2})
    assert [r.id for r in result.matches] == [
        "route-tie", "keep-first-in-file", "keep-second-in-file", "route-low"]
    assert result.decision == "route_to_human"
    assert result.handoff is not None and result.handoff.queue == "billing"

    result = compiled.evaluate({"loop.repeats": 5})
    assert result.matches[0].id == "keep-high"
    assert result.decision == "keep_with_bot" and result.handoff is None


def test_handoff_takes_the_decisive_rule_and_falls_back_to_the_default(
        compile_rules: Compile) -> None:
    compiled = compile_rules()
    person = compiled.evaluate({"requested_human": True})
    assert person.decision == "route_to_human"
    assert person.handoff is not None
    assert (person.handoff.decision, person.handoff.queue, person.handoff.urgency,
            person.handoff.customer_message) == (
        "route_to_human", "support", "normal", Messages.of({"en": "Of course, connecting "
                                                                  "you now."}))
    stuck = compiled.evaluate({"loop.fallback_streak": 3})
    assert stuck.handoff is not None and stuck.handoff.urgency == "high"
    assert stuck.handoff.customer_message == Messages.of(
        {"en": "I'm connecting you with a member of our team."})


def test_no_match_gives_the_default_decision(compile_rules: Compile) -> None:
    keep = compile_rules()
    assert keep.evaluate({"requested_human": False}) == (
        keep.evaluate({})) and keep.evaluate({}).decision == "keep_with_bot"
    assert keep.evaluate({}).matches == () and keep.evaluate({}).handoff is None


def test_default_route_to_human_hands_over_with_its_own_details(compile_rules: Compile) -> None:
    header = ('ruleset: cautious\nversion: "1"\ndefault: {decision: route_to_human, '
              'queue: triage, urgency: low, customer_message: "A person will help you."}\n')
    compiled = compile_rules("""
    - {id: simple-question, description: k, priority: 20, then: {decision: keep_with_bot},
       when: {fact: complexity.score, lt: 0.3}}
    """, header=header)
    result = compiled.evaluate({"complexity.score": 0.8})
    assert result.decision == "route_to_human" and result.matches == ()
    assert result.handoff is not None and result.handoff.queue == "triage"
    assert compiled.evaluate({"complexity.score": 0.1}).decision == "keep_with_bot"


def test_tiny_and_huge_numbers_reach_the_engine(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - {id: tiny, description: t, priority: 10, when: {fact: intent.confidence, lt: 1e-5},
       then: {decision: keep_with_bot}}
    - {id: long, description: l, priority: 10, when: {fact: conversation.minutes, gt: 1.5e6},
       then: {decision: keep_with_bot}}
    - {id: big-context, description: b, priority: 10, when: {fact: context.spend, gte: 1e20},
       then: {decision: keep_with_bot}}
    """)
    assert matched(compiled, {"intent.confidence": 1e-6}) == {"tiny"}
    assert matched(compiled, {"intent.confidence": 1e-5}) == set()
    assert matched(compiled, {"intent.confidence": 0.0}) == {"tiny"}
    assert matched(compiled, {"conversation.minutes": 2e6}) == {"long"}
    assert matched(compiled, {"conversation.minutes": 1e6}) == set()
    assert matched(compiled, {"context.spend": 3e21}) == {"big-context"}
    assert matched(compiled, {"context.spend": 10**19}) == set()
    assert matched(compiled, {"context.spend": 10**21}) == {"big-context"}  # beyond int64


def test_facts_of_the_wrong_type_or_not_finite_are_refused(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - {id: t, description: t, priority: 10, when: {fact: frustration.mean, gte: 0.5},
       then: {decision: keep_with_bot}}
    - {id: c, description: c, priority: 10, when: {fact: context.x, eq: 1},
       then: {decision: keep_with_bot}}
    """)
    with pytest.raises(TypeError, match=r"frustration\.mean"):
        compiled.matches({"frustration.mean": "0.9"})
    with pytest.raises(TypeError, match="requested_human"):
        compiled.matches({"requested_human": 1})
    with pytest.raises(TypeError, match=r"frustration\.mean"):
        compiled.matches({"frustration.mean": True})
    with pytest.raises(ValueError, match="finite"):
        compiled.matches({"frustration.mean": float("nan")})
    with pytest.raises(ValueError, match="finite"):
        compiled.matches({"context.x": float("inf")})
    with pytest.raises(TypeError, match=r"context\.x"):
        compiled.matches({"context.x": [1]})
    # A refused fact leaves the engine clean: the next evaluation is right.
    assert matched(compiled, {"frustration.mean": 0.9}) == {"t"}


def test_facts_no_rule_tests_and_none_values_are_ignored(compile_rules: Compile) -> None:
    compiled = compile_rules()
    facts: dict[str, Any] = {"requested_human": None, "not.a.fact": float("nan"),
                             "message.chars": "ignored", "loop.fallback_streak": 3}
    assert [r.id for r in compiled.matches(facts)] == ["fallback-cap"]


def test_a_rule_with_too_many_alternatives_is_refused(write_rules: Callable[..., Path]) -> None:
    folder = write_rules("""
    - id: combinatorial
      description: c
      priority: 10
      when:
        all:
          - {fact: loop.repeats, in: [1, 2, 3, 4, 5, 6, 7]}
          - {fact: loop.fallbacks, in: [1, 2, 3, 4, 5, 6, 7]}
          - {fact: loop.bot_repeats, in: [1, 2, 3, 4, 5, 6, 7]}
      then: {decision: keep_with_bot}
    """)
    with pytest.raises(PolicyError) as info:
        CompiledRuleSet(load_ruleset(folder))
    (problem,) = info.value.problems
    assert problem.rule == "combinatorial" and problem.file == "rules.yaml"
    assert problem.line == 16
    assert "343 combinations" in problem.message and "split it" in problem.message


def test_more_keys_than_the_engine_takes_per_fact_is_refused(
        write_rules: Callable[..., Path]) -> None:
    def rule(rule_id: str, labels: list[str], extra: str = "") -> str:
        tests = ", ".join(f"{{fact: complexity.topics, contains: {x}}}" for x in labels)
        return (f"- {{id: {rule_id}, description: d, priority: 10, when: {{any: [{tests}{extra}]}},"
                " then: {decision: keep_with_bot}}\n")

    first = [f"topic-{i}" for i in range(125)]
    second = [f"subject-{i}" for i in range(124)]
    # 249 labels + requested_human + loop.fallback_streak + kind, sid, id = 254: just fits.
    fits = load_ruleset(write_rules(rule("a", first) + rule("b", second)))
    with CompiledRuleSet(fits) as compiled:
        facts = {"complexity.topics": tuple(first + second), "requested_human": True}
        assert [r.id for r in compiled.matches(facts)] == ["explicit-human-request", "a", "b"]

    one_more = rule("a", first) + rule("b", second, ", {fact: channel, eq: web}")
    with pytest.raises(PolicyError) as info:
        CompiledRuleSet(load_ruleset(write_rules(one_more)))
    (problem,) = info.value.problems
    assert "the rules test 252 different facts, labels and context values" in problem.message
    assert "at most 251" in problem.message


def test_many_rules_matching_at_once_stay_within_the_engine_stack(
        write_rules: Callable[..., Path]) -> None:
    # 200 different thresholds on one fact, all true at once: in one engine ruleset this
    # overflows the engine's 64-entry evaluation stack (error 303); the compiler spreads
    # the rules over several rulesets.
    rules = "".join(
        f"- {{id: at-least-{i}, description: d, priority: 10, when: {{any: ["
        f"{{fact: loop.repeats, gte: {i}}}, {{fact: context.key_{i % 40}, eq: {i}}}]}},"
        " then: {decision: keep_with_bot}}\n" for i in range(200))
    with CompiledRuleSet(load_ruleset(write_rules(rules))) as compiled:
        found = compiled.matches({"loop.repeats": 1000, "requested_human": True,
                                  **{f"context.key_{i}": i for i in range(40)}})
        assert [r.id for r in found] == ["explicit-human-request"] + [
            f"at-least-{i}" for i in range(200)]
        found = compiled.matches({"loop.repeats": 150, "context.key_0": 160})
        assert [r.id for r in found] == [f"at-least-{i}" for i in [*range(151), 160]]


def test_a_rule_with_more_comparisons_than_the_engine_stack_is_refused(
        write_rules: Callable[..., Path]) -> None:
    tests = ", ".join(f"{{fact: context.k{i}, eq: {i}}}" for i in range(64))
    folder = write_rules(f"- {{id: long, description: d, priority: 10, when: {{all: [{tests}]}},"
                         " then: {decision: keep_with_bot}}")
    with pytest.raises(PolicyError) as info:
        CompiledRuleSet(load_ruleset(folder))
    (problem,) = info.value.problems
    assert (problem.rule, problem.line) == ("long", 16)
    assert "64 comparisons at once (at most 63)" in problem.message


def test_close_is_idempotent_and_later_use_is_a_clear_error(compile_rules: Compile) -> None:
    compiled = compile_rules()
    assert compiled.evaluate({"requested_human": True}).decision == "route_to_human"
    compiled.close()
    compiled.close()
    with pytest.raises(RuleSetClosed, match="closed"):
        compiled.evaluate({"requested_human": True})


def test_the_same_set_compiles_1100_times_with_close(write_rules: Callable[..., Path]) -> None:
    ruleset = load_ruleset(write_rules())
    for i in range(1100):
        compiled = CompiledRuleSet(ruleset)
        expected = "route_to_human" if i % 2 else "keep_with_bot"
        assert compiled.evaluate({"requested_human": bool(i % 2)}).decision == expected
        compiled.close()
    # Two live compilations of one set do not clash either.
    with CompiledRuleSet(ruleset) as one, CompiledRuleSet(ruleset) as two:
        assert one.engine_name != two.engine_name
        assert two.evaluate({"loop.fallback_streak": 9}).decision == "route_to_human"


def test_eight_threads_evaluating_different_facts_all_get_right_answers(
        operators: CompiledRuleSet) -> None:
    errors: list[str] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(2000):
            facts = {"frustration.mean": rng.choice([0.2, 0.59999, 0.6, 0.9]),
                     "loop.repeats": rng.randrange(6),
                     "context.x": rng.choice([3, "3", True, 2.5]),
                     "requested_human": rng.random() < 0.3}
            expected = [r.id for r in operators.ruleset.rules if holds(r.when, facts)]
            got = [r.id for r in operators.matches(facts)]
            if sorted(got) != sorted(expected):
                errors.append(f"{facts}: {got} != {expected}")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_fifteen_rule_set_reports_exactly_its_matches(compile_rules: Compile) -> None:
    compiled = compile_rules("""
    - {id: frustrated, description: d, priority: 70, then: {decision: route_to_human},
       when: {all: [{fact: frustration.mean, gte: 0.6}, {fact: turn_index, gte: 3}]}}
    - {id: angry-now, description: d, priority: 75, then: {decision: route_to_human},
       when: {fact: frustration.score, gte: 0.85}}
    - {id: loop, description: d, priority: 80, then: {decision: route_to_human},
       when: {fact: loop.repeats, gte: 3}}
    - {id: sensitive, description: d, priority: 86, then: {decision: route_to_human},
       when: {any: [{fact: complexity.topics, contains: legal},
                    {fact: complexity.topics, contains: bereavement}]}}
    - {id: complex, description: d, priority: 40, then: {decision: route_to_human},
       when: {all: [{fact: complexity.score, gte: 0.7}, {fact: intent.confidence, lt: 0.5}]}}
    - {id: vip-unhappy, description: d, priority: 60, then: {decision: route_to_human},
       when: {all: [{fact: customer.tier, in: [gold, platinum]},
                    {fact: sentiment.mean, lte: -0.3}]}}
    - {id: no-agents, description: d, priority: 85, then: {decision: keep_with_bot},
       when: {all: [{fact: context.agents_available, eq: 0}, {fact: requested_human, is: false}]}}
    - {id: low-confidence, description: d, priority: 30, then: {decision: route_to_human},
       when: {fact: intent.low_confidence_streak, gte: 3}}
    - {id: bot-repeats, description: d, priority: 35, then: {decision: route_to_human},
       when: {fact: loop.bot_repeats, gte: 2}}
    - {id: long-chat, description: d, priority: 20, then: {decision: route_to_human},
       when: {all: [{fact: conversation.minutes, gt: 20}, {fact: sentiment.trend, lt: 0}]}}
    - {id: voice-fast, description: d, priority: 45, then: {decision: route_to_human},
       when: {all: [{fact: channel, eq: voice}, {fact: loop.fallbacks, gte: 2}]}}
    - {id: calm, description: d, priority: 10, then: {decision: keep_with_bot},
       when: {not: {fact: frustration.mean, gte: 0.3}}}
    - {id: escalated, description: d, priority: 50, then: {decision: route_to_human},
       when: {fact: conversation.escalated, is: true}}
    """)
    assert len(compiled.ruleset.rules) == 15
    facts: dict[str, Any] = {
        "turn_index": 4, "frustration.mean": 0.7, "frustration.score": 0.5,
        "loop.repeats": 3, "loop.fallback_streak": 1, "loop.fallbacks": 2,
        "loop.bot_repeats": 0, "complexity.topics": ("billing", "legal"),
        "complexity.score": 0.4, "intent.confidence": 0.8, "customer.tier": "gold",
        "sentiment.mean": -0.4, "sentiment.trend": -0.1, "conversation.minutes": 3.5,
        "channel": "web", "requested_human": False, "conversation.escalated": False,
        "context.agents_available": 3, "intent.low_confidence_streak": 0,
    }
    assert {r.id for r in compiled.matches(facts)} == {
        "frustrated", "loop", "sensitive", "vip-unhappy"}
    # Its cost is measured by bench/perf/decide.py ("rules evaluate"), not timed here: a timed
    # test is flaky on a shared machine.


@pytest.mark.parametrize(("number", "text"), [
    (1e-05, "0.00001"), (0.6, "0.6"), (5.0, "5.0"), (1e16, "10000000000000000.0"),
    (-2.5e-7, "-0.00000025"), (3, "3"), (-(2**63), "-9223372036854775808"),
    (2**63, "9223372036854776000.0"),
])
def test_numbers_are_written_without_a_bare_exponent(number: float, text: str) -> None:
    assert engine_number(number) == text


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf"), True])
def test_numbers_the_engine_cannot_take_are_refused(number: float) -> None:
    with pytest.raises((ValueError, TypeError)):
        engine_number(number)


def test_rules_spread_over_many_engine_rulesets_agree_with_reference(
        compile_rules: Compile) -> None:
    # Every operator and type, plain, negated and in an `any` with a comparison on another
    # fact, twice over: the rules fill several engine rulesets, each of which is sent only
    # the facts its own rules test; together they decide as the conditions say.
    pairs = [("loop.fallback_streak", "gte", "2"), ("requested_human", "is", "true")]
    rules = []
    for copy in range(2):
        for n, (rule_id, fact, op, value) in enumerate(OPERATOR_TABLE):
            leaf = f"{{fact: {fact}, {op}: {value}}}"
            other_fact, other_op, other_value = pairs[n % 2]
            other = f"{{fact: {other_fact}, {other_op}: {other_value}}}"
            for variant, when in (("plain", leaf), ("not", f"{{not: {leaf}}}"),
                                  ("any", f"{{any: [{leaf}, {other}]}}")):
                rules.append(f"- {{id: {rule_id}-{variant}-{copy}, description: n, "
                             f"priority: {10 + n % 7}, when: {when}, "
                             "then: {decision: keep_with_bot}}\n")
    compiled = compile_rules("".join(rules))
    assert len(compiled._handles) >= 4
    assert len(set(compiled._shard_facts)) > 1  # the rulesets are sent different facts
    rng = random.Random(20261129)
    pools: dict[str, list[Any]] = {
        "frustration.mean": [0.0, 0.2, 0.6, 0.60001, 1.0],
        "loop.repeats": [0, 1, 3, 4, 10**12],
        "conversation.escalated": [True, False],
        "customer.tier": ["gold", "platinum", "silver"],
        "complexity.topics": [(), ("legal",), ("fraud", "legal"), ("x",)],
        "context.x": [3, 3.0, "3", True, False, 0, 2.5, "three"],
        "requested_human": [True, False],
        "loop.fallback_streak": [0, 2, 3],
    }
    for _ in range(1500):
        facts = {name: rng.choice(pool) for name, pool in pools.items() if rng.random() < 0.6}
        expected = [r.id for r in compiled.ruleset.rules if holds(r.when, facts)]
        assert sorted(r.id for r in compiled.matches(facts)) == sorted(expected), facts
