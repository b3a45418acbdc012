"""The budget of every rule set: a few kilobytes of YAML can never stand for more than a
bounded amount of work, and going over a limit is a located problem that names the limit."""

from __future__ import annotations

import itertools
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from escalator.errors import PolicyError, Problem
from escalator.policy import load_policy
from escalator.ruleset import budget, compiler
from escalator.ruleset.compiler import CompiledRuleSet
from escalator.ruleset.conditions import AllOf, AnyOf, Condition, Leaf, Not, truth_from, truth_when
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.yamlfile import MAX_YAML_DEPTH, MAX_YAML_NODES

WriteRules = Callable[..., Path]


def problems_of(folder: Path, compile_too: bool = False) -> list[Problem]:
    """What loading (and compiling) the folder refuses; fails if it is accepted."""
    with pytest.raises(PolicyError) as info:
        ruleset = load_ruleset(folder)
        if compile_too:
            CompiledRuleSet(ruleset).close()
    return info.value.problems


def rule(rule_id: str, when: str, decision: str = "keep_with_bot", priority: int = 10) -> str:
    return (f"- id: {rule_id}\n  description: d\n  priority: {priority}\n  when: {when}\n"
            f"  then: {{decision: {decision}}}\n")


# ---------------------------------------------------------------------------- YAML

@pytest.mark.parametrize("levels", [62, 500, 1000, 20_000])
def test_yaml_nested_deeper_than_the_limit_is_a_located_problem_not_a_crash(
        write_rules: WriteRules, levels: int) -> None:
    folder = write_rules(rule("deep", "[" * levels + "]" * levels))
    (problem, *_) = problems_of(folder)
    assert problem.limit == "yaml_depth" and problem.file == "rules.yaml"
    assert problem.line == 19
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in problem.message


def test_yaml_nested_as_deep_as_the_limit_is_read(write_rules: WriteRules) -> None:
    # 64 levels in all: the file's mapping, the list of rules, the rule and 61 lists.
    (problem, *_) = problems_of(write_rules(rule("deep", "[" * 61 + "]" * 61)))
    assert problem.limit is None and "a condition must be a mapping" in problem.message


def test_an_alias_bomb_is_refused_before_anything_is_built(write_rules: WriteRules) -> None:
    # Nine levels of nine aliases each: 387 million comparisons in 900 bytes.
    expr = "&a0 {fact: turn_index, gte: 1}"
    for level in range(1, 10):
        expr = f"&a{level} {{all: [{expr}" + f", *a{level - 1}" * 8 + "]}"
    (problem, *_) = problems_of(write_rules(rule("bomb", expr)))
    assert problem.limit == "yaml_nodes" and problem.line == 19
    assert f"more than {MAX_YAML_NODES} values once every alias" in problem.message


def test_an_anchor_that_holds_an_alias_to_itself_is_refused(write_rules: WriteRules) -> None:
    (problem, *_) = problems_of(write_rules(rule("loop", "&me {all: [*me]}")))
    assert problem.limit == "yaml_nodes"
    assert "an alias (*name) is used inside the anchor (&name) it refers to" in problem.message


def test_a_shared_list_through_an_anchor_is_fine(write_rules: WriteRules) -> None:
    folder = write_rules(
        rule("billing", "{fact: message.intent, in: &billing [refund, invoice, charge]}")
        + rule("billing-again", "{all: [{fact: message.intent, in: *billing}, "
                                "{fact: turn_index, gte: 3}]}"))
    ruleset = load_ruleset(folder)
    assert ruleset.rules[-1].when.items[0].value == ("refund", "invoice", "charge")  # type: ignore[union-attr]
    CompiledRuleSet(ruleset).close()


@pytest.mark.parametrize("key", ["? [a, b]\n: c\n", "weird: {[a]: b}\n", "? {a: 1}\n: c\n"])
def test_a_list_or_mapping_as_a_key_is_a_plain_problem(write_rules: WriteRules,
                                                       key: str) -> None:
    folder = write_rules()
    (folder / "rules.yaml").write_text(key + (folder / "rules.yaml").read_text())
    (problem, *_) = problems_of(folder)
    assert problem.message == ("a key here is a list or a mapping (such as '? [a, b]' or "
                               "'{[a]: b}'); keys are plain words, such as 'id' or 'fact'")
    assert problem.line == 1


def test_a_number_python_will_not_read_is_a_problem(write_rules: WriteRules) -> None:
    (problem, *_) = problems_of(write_rules(rule("big", "{fact: turn_index, gte: "
                                                        + "9" * 5000 + "}")))
    assert problem.message.startswith("a value cannot be read (Exceeds the limit")


def test_a_rules_folder_over_the_budget_is_refused_like_a_request(tmp_path: Path) -> None:
    # The folder at start and on reload go through the same load_policy as a request.
    folder = tmp_path / "rules"
    shutil.copytree(Path(__file__).parents[2] / "rules", folder)
    text = (folder / "loops.yaml").read_text()
    (folder / "loops.yaml").write_text(text + "  " + rule("big", "{fact: turn_index, in: ["
                                                            + ", ".join(map(str, range(1, 102)))
                                                            + "]}").replace("\n", "\n  "))
    with pytest.raises(PolicyError) as info:
        load_policy(folder)
    assert [(p.file, p.rule, p.limit) for p in info.value.problems] == [
        ("loops.yaml", "big", "list_values")]


# ---------------------------------------------------------------------------- the loader

def test_a_list_longer_than_the_limit_is_refused_where_it_is(write_rules: WriteRules) -> None:
    values = ", ".join(str(i) for i in range(1, budget.MAX_LIST_VALUES + 2))
    problems = problems_of(write_rules(rule("long", f"{{fact: turn_index, in: [{values}]}}")))
    assert [(p.rule, p.line, p.limit) for p in problems] == [("long", 19, "list_values")]
    assert f"has {budget.MAX_LIST_VALUES + 1} values; at most {budget.MAX_LIST_VALUES}" in (
        problems[0].message)


def test_the_conditions_of_all_rules_together_have_a_budget(write_rules: WriteRules) -> None:
    values = ", ".join(str(i) for i in range(1, 101))
    # Each rule: all + in (100 values) + gte = 102 parts; 50 of them and the floor's 3
    # pass 5,000.
    rules = "".join(rule(f"r{i}", f"{{all: [{{fact: loop.repeats, in: [{values}]}}, "
                                  f"{{fact: turn_index, gte: {i + 1}}}]}}")
                    for i in range(50))
    (problem,) = problems_of(write_rules(rules))
    assert problem.limit == "condition_parts"
    assert "have 5,103 parts" in problem.message and "at most 5,000" in problem.message
    assert "The largest is rule 'r0' (rules.yaml line 16) with 102" in problem.message


# ---------------------------------------------------------------------------- the compiler

def test_the_attack_of_long_lists_reused_through_aliases_is_refused_early(
        write_rules: WriteRules) -> None:
    # Lists of 60 values, reused by 20 rules through aliases: 4 KB of YAML that compiled
    # into 72,000 engine tests before there was a budget (the floor rules make 2 more).
    values = ", ".join(str(i) for i in range(1, 61))
    rules = rule("r0", f"{{all: [{{fact: turn_index, in: &in [{values}]}}, "
                       f"{{fact: loop.repeats, not_in: &out [{values}]}}]}}")
    rules += "".join(rule(f"r{i}", "{all: [{fact: turn_index, in: *in}, "
                                   "{fact: loop.repeats, not_in: *out}]}") for i in range(1, 20))
    (problem,) = problems_of(write_rules(rules), compile_too=True)
    assert (problem.rule, problem.limit) == ("r1", "engine_tests")
    assert "the rules so far, this one included, compile into 7,322 comparisons" in (
        problem.message)


def test_engine_rules_have_a_budget_across_the_rule_set(write_rules: WriteRules) -> None:
    values = ", ".join(str(i) for i in range(1, 101))
    # 100 alternatives per rule, one comparison each (2,000 tests at the limit of 2,000).
    rules = "".join(rule(f"r{i}", f"{{fact: loop.repeats, in: [{values}]}}")
                    for i in range(21))
    (problem,) = problems_of(write_rules(rules), compile_too=True)
    assert (problem.rule, problem.limit) == ("r19", "engine_rules")
    assert f"at most {compiler.MAX_ENGINE_RULES:,}" in problem.message


def test_engine_rulesets_have_a_budget(write_rules: WriteRules) -> None:
    # Alternatives of 33 comparisons: each fills its own engine ruleset (64 at most).
    tests = ", ".join(f"{{fact: context.k{i}, eq: {i}}}" for i in range(33))
    rules = "".join(rule(f"r{i}", f"{{all: [{tests}, {{fact: turn_index, eq: {i + 1}}}]}}")
                    for i in range(compiler.MAX_ENGINE_RULESETS + 1))
    problems = problems_of(write_rules(rules), compile_too=True)
    assert [p.limit for p in problems] == ["engine_rulesets"]
    assert f"need {compiler.MAX_ENGINE_RULESETS + 1} engine rulesets" in problems[0].message


def test_a_wide_alternative_is_refused_before_it_is_expanded(write_rules: WriteRules) -> None:
    many = ", ".join(str(i) for i in range(1, 101))
    # 100 alternatives of 71 comparisons each: refused on the 71 (at most 63), before the
    # 7,100 comparisons are written out.
    (problem,) = problems_of(write_rules(rule(
        "wide", f"{{all: [{{fact: loop.repeats, in: [{many}]}}, "
                f"{{fact: turn_index, not_in: [{many[:many.index(', 71')]}]}}]}}")),
        compile_too=True)
    assert (problem.rule, problem.limit) == ("wide", "comparisons")
    assert "makes up to 71 comparisons at once (at most 63)" in problem.message


# ---------------------------------------------------------------------------- the floor

def test_a_huge_constant_costs_the_floor_check_nothing(write_rules: WriteRules) -> None:
    # lt: 100000000 once made the floor check list a hundred million streaks (4 GB), and
    # 2**62 an instant MemoryError.
    for constant in (100_000_000, 2**62, 2**63 - 1):
        folder = write_rules(rule("big", f"{{fact: loop.fallback_streak, lt: {constant}}}",
                                  decision="route_to_human"))
        assert load_ruleset(folder).rules[-1].id == "big"
        # As a cap it does not hold: at 'constant' failures in a row it stops matching.
        keep = write_rules(rule("big", f"{{fact: loop.fallback_streak, lt: {constant}}}",
                                priority=95))
        (problem,) = problems_of(keep)
        assert "could override 'fallback-cap'" in problem.message


def test_a_cap_written_with_a_huge_list_of_streaks_is_judged_rightly(
        write_rules: WriteRules) -> None:
    streaks = ", ".join(str(10**15 + i) for i in range(100))
    folder = write_rules(rule("odd-cap", f"{{any: [{{fact: loop.fallback_streak, gte: 4}}, "
                                         f"{{fact: loop.fallback_streak, in: [{streaks}]}}]}}",
                              decision="route_to_human", priority=99), floor=False)
    problems = problems_of(folder)
    assert "routes an explicit request" in problems[0].message  # the cap itself is fine
    assert len(problems) == 1


def _random_condition(rng: random.Random, depth: int = 0) -> Condition:
    if depth >= 3 or rng.random() < 0.4:
        fact = rng.choice(["loop.fallback_streak"] * 3 + ["turn_index"])
        op = rng.choice(["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"])
        pool = [0, 1, 4, 5, 6, 7, 9, 12, 10**9, 2**62]
        if op in ("in", "not_in"):
            return Leaf(fact, op, tuple(rng.sample(pool, rng.randint(1, 4))))  # type: ignore[arg-type]
        return Leaf(fact, op, rng.choice(pool))  # type: ignore[arg-type]
    kind = rng.choice(["all", "any", "not"])
    if kind == "not":
        return Not(_random_condition(rng, depth + 1))
    items = tuple(_random_condition(rng, depth + 1) for _ in range(rng.randint(1, 4)))
    return AllOf(items) if kind == "all" else AnyOf(items)


def test_segments_agree_with_the_reference_at_every_value() -> None:
    rng = random.Random(20261128)
    probes = sorted({5, 6, 7, 8, 9, 10, 11, 12, 13, 10**9 - 1, 10**9, 10**9 + 1,
                     2**62 - 1, 2**62, 2**62 + 1, 2**70})
    for _ in range(400):
        condition = _random_condition(rng)
        segments = truth_from(condition, "loop.fallback_streak", 5)
        assert segments[0][0] == 5
        assert all(a[0] < b[0] and a[1] != b[1] for a, b in itertools.pairwise(segments))
        for value in probes:
            expected = truth_when(condition, "loop.fallback_streak", value)
            found = next(truth for start, truth in reversed(segments) if start <= value)
            assert found == expected, (condition, value, segments)
