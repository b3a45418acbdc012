"""Loading rule folders: what loads, and the located, plain-language problems when not."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from escalator.errors import PolicyError, Problem
from escalator.model import RulesetRef
from escalator.ruleset.conditions import AllOf, Leaf
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.messages import BUILTIN_HANDOFF_MESSAGE, Messages
from escalator.ruleset.model import Outcome

WriteRules = Callable[..., Path]


def refusal(folder: Path) -> list[Problem]:
    """The problems load_ruleset reports for a folder (fails if it loads)."""
    with pytest.raises(PolicyError) as info:
        load_ruleset(folder)
    return info.value.problems


def one_rule(when: str, then: str = "{decision: keep_with_bot}", priority: int = 10) -> str:
    """A rule named 'r' with this condition, written the way policy owners do."""
    return (f"- id: r\n  description: A rule under test.\n  priority: {priority}\n"
            f"  when: {when}\n  then: {then}\n")


def test_a_valid_rule_set_loads_with_everything_the_service_needs(
        write_rules: WriteRules) -> None:
    folder = write_rules("""
    - id: sustained-frustration
      description: The customer has been frustrated for several turns.
      priority: 70
      when:
        all:
          - {fact: frustration.mean, gte: 0.6}
          - {fact: turn_index, gte: 3}
      then: {decision: route_to_human, urgency: high}
    """)
    ruleset = load_ruleset(folder)
    assert (ruleset.name, ruleset.version) == ("test", "2026.11.1")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ruleset.digest)
    assert ruleset.ref() == RulesetRef("test", "2026.11.1", ruleset.digest)
    assert ruleset.default == Outcome("keep_with_bot", "support", "normal", Messages.of(
        {"en": "I'm connecting you with a member of our team."}))
    assert ruleset.source == folder.resolve()
    rule = ruleset.rules[-1]
    assert (rule.id, rule.priority, rule.file, rule.line) == (
        "sustained-frustration", 70, "rules.yaml", 16)
    assert rule.when == AllOf((Leaf("frustration.mean", "gte", 0.6), Leaf("turn_index", "gte", 3)))
    assert rule.then == Outcome("route_to_human", urgency="high")

    described = json.loads(json.dumps(ruleset.describe()))
    assert described["name"] == "test" and described["digest"] == ruleset.digest
    assert described["default"]["queue"] == "support"
    assert described["rules"][-1] == {
        "id": "sustained-frustration",
        "description": "The customer has been frustrated for several turns.",
        "priority": 70,
        "when": {"all": [{"fact": "frustration.mean", "gte": 0.6},
                         {"fact": "turn_index", "gte": 3}]},
        "then": {"decision": "route_to_human", "urgency": "high"},
    }


def test_several_files_form_one_set_in_file_name_order(write_rules: WriteRules) -> None:
    write_rules(floor=True, name="a-floor.yaml")
    folder = write_rules(one_rule("{fact: customer.tier, in: [gold, platinum]}"), floor=False,
                         header="", name="b-more.yaml")
    ruleset = load_ruleset(folder)
    assert [(r.id, r.file) for r in ruleset.rules] == [
        ("explicit-human-request", "a-floor.yaml"), ("fallback-cap", "a-floor.yaml"),
        ("r", "b-more.yaml")]
    assert ruleset.rules[-1].when == Leaf("customer.tier", "in", ("gold", "platinum"))


def test_the_header_may_be_repeated_identically_but_not_differently(
        write_rules: WriteRules) -> None:
    write_rules(name="a.yaml")
    folder = write_rules(one_rule("{fact: turn_index, gte: 2}"), floor=False, name="b.yaml")
    assert len(load_ruleset(folder).rules) == 3

    folder = write_rules(one_rule("{fact: turn_index, gte: 2}"), floor=False, name="b.yaml",
                         header='ruleset: test\nversion: "2026.12.1"\n')
    (problem,) = refusal(folder)
    assert (problem.file, problem.line) == ("b.yaml", 2)
    assert "'version' is declared differently in a.yaml line 2" in problem.message


def test_duplicate_rule_ids_across_two_files_are_refused(write_rules: WriteRules) -> None:
    write_rules(name="a.yaml")
    folder = write_rules("""
    - id: fallback-cap
      description: Same id as in a.yaml.
      priority: 10
      when: {fact: loop.repeats, gte: 4}
      then: {decision: keep_with_bot}
    """, floor=False, header="", name="b.yaml")
    (problem,) = refusal(folder)
    assert (problem.file, problem.line, problem.rule) == ("b.yaml", 2, "fallback-cap")
    assert "already used in a.yaml line 11" in problem.message


def test_an_unknown_fact_names_file_rule_line_and_a_likely_fix(write_rules: WriteRules) -> None:
    (problem,) = refusal(write_rules("""
    - id: frustrated
      description: The customer is frustrated.
      priority: 70
      when:
        all:
          - {fact: turn_index, gte: 3}
          - {fact: frustation.mean, gte: 0.6}
      then: {decision: route_to_human}
    """))
    assert (problem.file, problem.line, problem.rule) == ("rules.yaml", 22, "frustrated")
    assert "unknown fact 'frustation.mean' (did you mean 'frustration.mean'?)" in problem.message
    assert str(problem).startswith("rules.yaml:22: rule 'frustrated' unknown fact")


@pytest.mark.parametrize(("when", "message"), [
    # value types
    ("{fact: frustration.mean, gte: '0.6'}",
     "'frustration.mean' is a number, so 'gte' needs a number (without quotes) (found '0.6')"),
    ("{fact: frustration.mean, gte: true}", "so 'gte' needs a number (found true)"),
    ("{fact: requested_human, is: 'true'}",
     "'is' on 'requested_human' needs true or false (write true or false without quotes)"),
    ("{fact: requested_human, eq: 1}", "'eq' on 'requested_human' needs true or false (found 1)"),
    ("{fact: customer.tier, eq: 3}", "'customer.tier' is text, so 'eq' needs text"),
    ("{fact: loop.repeats, gte: 2.5}", "'loop.repeats' is a whole number, so compare it with a "
                                       "whole number (found 2.5)"),
    ("{fact: frustration.mean, in: []}", "'in' needs a list of at least one value"),
    ("{fact: customer.tier, not_in: gold}", "'not_in' needs a list of at least one value"),
    ("{fact: customer.tier, in: [gold, 3]}", "so 'in' needs text"),
    ("{fact: context.x, gt: abc}", "'context.x' is a context value, so 'gt' needs a number"),
    ("{fact: context.x, is: 1}", "'is' on 'context.x' needs true or false"),
    ("{fact: context.x, eq: [1]}", "'eq' on 'context.x' needs text, a number or true/false"),
    ("{fact: frustration.mean, gte: .nan}", "must be a finite number"),
    ("{fact: frustration.mean, lte: .inf}", "must be a finite number"),
    # operators that do not fit the type
    ("{fact: complexity.topics, eq: legal}",
     "'eq' cannot be used with 'complexity.topics', which is a set of labels; use contains"),
    ("{fact: customer.tier, gt: a}", "'gt' cannot be used with 'customer.tier', which is text"),
    ("{fact: requested_human, gte: 1}", "which is true or false; use is, eq, ne"),
    ("{fact: frustration.mean, contains: x}", "'contains' cannot be used with 'frustration.mean'"),
    ("{fact: context.x, contains: a}", "'contains' cannot be used with 'context.x'"),
    # thresholds outside what the fact can be
    ("{fact: frustration.mean, gte: 4}",
     "'frustration.mean' is between 0 and 1, so 'gte 4' can never be true; check the threshold"),
    ("{fact: sentiment.score, gt: -2}", "is between -1 and 1, so 'gt -2' is always true"),
    ("{fact: frustration.mean, eq: 1.5}", "so 'eq 1.5' can never be true"),
    ("{fact: frustration.mean, ne: -0.5}", "so 'ne -0.5' is always true"),
    ("{fact: turn_index, gte: 0}", "'turn_index' is at least 1, so 'gte 0' is always true"),
    ("{fact: loop.repeats, lt: 0}", "'loop.repeats' is at least 0, so 'lt 0' can never be true"),
    ("{fact: frustration.mean, gt: 1}", "so 'gt 1' can never be true"),
    # condition shape
    ("{fact: frustration.mean, gte_: 0.5}",
     "unknown operator 'gte_' (did you mean 'gte'?); operators are: eq, ne, lt"),
    ("{fact: frustration.mean, greater: 0.5}", "unknown operator 'greater'"),
    ("{fact: frustration.mean}", "the condition on 'frustration.mean' has no comparison; add one "
                                 "of eq, ne, lt, lte, gt, gte, in, not_in"),
    ("{fact: frustration.mean, gte: 0.5, lte: 0.9}",
     "has 2 comparisons (gte, lte); write each as its own condition under all"),
    ("{not: [{fact: turn_index, gte: 2}, {fact: turn_index, lte: 5}]}",
     "'not' takes a single condition"),
    ("{all: []}", "'all' needs a list of at least one condition"),
    ("{any: {fact: turn_index, gte: 2}}", "'any' needs a list of at least one condition"),
    ("{all: [{fact: turn_index, gte: 2}], any: [{fact: turn_index, gte: 2}]}",
     "a condition must have exactly one of all, any or not"),
    ("{alll: [{fact: turn_index, gte: 2}]}", "unknown key 'alll' in a condition (did you mean "
                                             "'all'?)"),
    ("requested_human", "a condition must be a mapping such as"),
    ("{fact: 3, eq: 3}", "'fact' must be the name of a fact (found 3)"),
    ("{fact: context., eq: 3}", "unknown fact 'context.'"),
])
def test_a_wrong_condition_is_refused_with_a_plain_message(
        write_rules: WriteRules, when: str, message: str) -> None:
    (problem,) = refusal(write_rules(one_rule(when)))
    assert message in problem.message
    assert (problem.file, problem.rule) == ("rules.yaml", "r")
    assert problem.line in (19, 20)  # the `when:` line (or the condition on it)


def test_short_exponent_floats_are_numbers(write_rules: WriteRules) -> None:
    ruleset = load_ruleset(write_rules(one_rule("{fact: intent.confidence, lt: 1e-5}")))
    assert ruleset.rules[-1].when == Leaf("intent.confidence", "lt", 1e-05)


def test_invalid_yaml_is_reported_with_its_line(write_rules: WriteRules) -> None:
    folder = write_rules()
    (folder / "broken.yaml").write_text("rules:\n  - id: x\n    when: {fact: a\n  - id: y\n",
                                        encoding="utf-8")
    (problem,) = refusal(folder)
    assert problem.file == "broken.yaml"
    assert problem.line == 3  # where the '{' that is never closed was opened
    assert problem.message.startswith("the '{' opened on this line is not closed")


def test_rule_keys_are_checked_with_suggestions(write_rules: WriteRules) -> None:
    problems = refusal(write_rules("""
    - id: typo
      prority: 10
      when: {fact: turn_index, gte: 2}
      then: {decision: escalate, queue: "", urgency: critical, message: hi}
    """))
    by_message = {p.message: p for p in problems}
    assert all(p.rule == "typo" and p.file == "rules.yaml" for p in problems)
    assert by_message["unknown key 'prority' (did you mean 'priority'?); allowed here: "
                      "description, id, priority, then, when"].line == 17
    assert by_message["'description' is missing"].line == 16
    assert "'priority' is missing (a whole number from 0 to 1000; higher wins)" in by_message
    assert "'then.decision' must be route_to_human or keep_with_bot" in by_message
    assert "'then.urgency' must be one of: low, normal, high, urgent" in by_message
    assert "'then.queue' must be a queue name: letters, digits, - _ . :" in by_message
    assert by_message["unknown key 'then.message' (did you mean 'customer_message'?); allowed "
                      "here: customer_message, decision, queue, urgency"].line == 19
    assert len(problems) == 7
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


@pytest.mark.parametrize(("priority", "message"), [
    ("1001", "'priority' must be a whole number from 0 to 1000"),
    ("-1", "'priority' must be a whole number from 0 to 1000"),
    ("high", "'priority' must be a whole number from 0 to 1000"),
    ("true", "'priority' must be a whole number from 0 to 1000"),
    ("2.5", "'priority' must be a whole number from 0 to 1000"),
])
def test_rule_priority_is_a_whole_number_from_0_to_1000(
        write_rules: WriteRules, priority: str, message: str) -> None:
    (problem,) = refusal(write_rules(f"""
    - id: p
      description: d
      priority: {priority}
      when: {{fact: turn_index, gte: 2}}
      then: {{decision: keep_with_bot}}
    """))
    assert (problem.rule, problem.line, problem.message) == ("p", 18, message)


@pytest.mark.parametrize("rule_id", ["Explicit", "under_score", "-dash", "x" * 65, "a b"])
def test_rule_ids_are_short_lower_case_names(write_rules: WriteRules, rule_id: str) -> None:
    (problem,) = refusal(write_rules(f"""
    - id: "{rule_id}"
      description: d
      priority: 10
      when: {{fact: turn_index, gte: 2}}
      then: {{decision: keep_with_bot}}
    """))
    assert problem.message.startswith("'id' must be 1-64 lower-case letters, digits and dashes")


# Python's $ also matches before a final newline: each of these passed a ^...$ check.
def test_a_rule_id_queue_or_rule_set_name_ending_in_a_newline_is_refused(
        write_rules: WriteRules) -> None:
    problems = refusal(write_rules("""
    - id: "r\\n"
      description: d
      priority: 10
      when: {fact: turn_index, gte: 2}
      then: {decision: keep_with_bot}
    - id: q
      description: d
      priority: 10
      when: {fact: turn_index, gte: 2}
      then: {decision: route_to_human, queue: "support\\n"}
    """, header='ruleset: "test\\n"\nversion: "1"\ndefault: {decision: keep_with_bot}\n'))
    messages = sorted(p.message for p in problems)
    assert messages[0].startswith("'id' must be 1-64 lower-case letters, digits and dashes")
    assert messages[1:] == ["'ruleset' must be a short name: letters, digits, - _ .",
                            "'then.queue' must be a queue name: letters, digits, - _ . :",
                            "no file declares 'ruleset'; add e.g. ruleset: default"]


def test_a_keep_rule_cannot_carry_handoff_details(write_rules: WriteRules) -> None:
    (problem,) = refusal(write_rules(one_rule("{fact: turn_index, gte: 2}",
                                              then="{decision: keep_with_bot, queue: sales}")))
    assert "a keep_with_bot rule does not hand over, so 'queue' has no effect" in problem.message


def test_a_handoff_left_unsaid_gets_the_built_in_queue_urgency_and_sentence(
        write_rules: WriteRules) -> None:
    header = 'ruleset: test\nversion: "1"\ndefault: {decision: keep_with_bot}\n'
    ruleset = load_ruleset(write_rules(header=header))
    assert ruleset.default == Outcome("keep_with_bot", "support", "normal",
                                      BUILTIN_HANDOFF_MESSAGE)
    assert ruleset.customer_message(None, "en") == \
        "I'm connecting you with a member of our team."
    header = 'ruleset: test\nversion: "1"\ndefault: {decision: route_to_human, queue: q}\n'
    default = load_ruleset(write_rules(header=header)).default
    assert (default.queue, default.urgency) == ("q", "normal")
    assert default.customer_message


def test_a_missing_header_is_reported_with_an_example(write_rules: WriteRules) -> None:
    problems = refusal(write_rules(header=""))
    assert [p.message.split(";")[0] for p in problems] == [
        "no file declares 'ruleset'", "no file declares 'version'", "no file declares 'default'"]
    assert 'version: "2026.11.1"' in problems[1].message


def test_the_default_is_a_valid_outcome(write_rules: WriteRules) -> None:
    header = 'ruleset: test\nversion: 2026\ndefault: {decision: maybe, colour: red}\n'
    problems = refusal(write_rules(header=header))
    messages = [p.message for p in problems]
    assert "'version' must be text (put it in quotes)" in messages
    assert "'default.decision' must be route_to_human or keep_with_bot" in messages
    assert any(m.startswith("unknown key 'default.colour'") for m in messages)
    assert "no file declares 'default'" in " ".join(messages)


def test_every_problem_is_reported_at_once(write_rules: WriteRules) -> None:
    folder = write_rules("""
    - id: one
      description: d
      priority: 10
      when: {fact: frustration.maen, gte: 0.5}
      then: {decision: keep_with_bot}
    - id: two
      description: d
      priority: 10
      when: {fact: customer.tier, gte: 3}
      then: {decision: keep_with_bot}
    """)
    (folder / "z.yaml").write_text("rules: [\n", encoding="utf-8")
    problems = refusal(folder)
    assert [(p.file, p.rule, p.line) for p in problems] == [
        ("rules.yaml", "one", 19), ("rules.yaml", "two", 24), ("z.yaml", None, 2)]
    assert "\n" in str(PolicyError(problems))


def test_folders_and_files_that_are_not_rule_files(tmp_path: Path, write_rules: WriteRules) -> None:
    (problem,) = refusal(tmp_path / "missing")
    assert "is not a folder of rule files" in problem.message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no rule files (*.yaml)" in refusal(empty)[0].message

    folder = write_rules()
    (folder / "extra.yml").write_text("rules: []\n", encoding="utf-8")
    (problem,) = refusal(folder)
    assert problem.file == "extra.yml" and "must end in .yaml" in problem.message
    (folder / "extra.yml").unlink()
    (folder / "blank.yaml").write_text("# nothing yet\n", encoding="utf-8")
    (problem,) = refusal(folder)
    assert (problem.file, problem.message) == ("blank.yaml", "the file is empty")
    (folder / "blank.yaml").write_text("- a list\n", encoding="utf-8")
    (problem,) = refusal(folder)
    assert problem.message.startswith("a rule file must be a mapping")


def test_subfolders_are_not_rules_but_lexicons_are_in_the_digest(write_rules: WriteRules) -> None:
    folder = write_rules()
    (folder / "tests").mkdir()
    (folder / "lexicons").mkdir()
    (folder / "tests" / "t.yaml").write_text("not: [valid rules\n", encoding="utf-8")
    (folder / "lexicons" / "en.yaml").write_text("cues: [still, again]\n", encoding="utf-8")
    first = load_ruleset(folder)
    assert len(first.rules) == 2
    assert load_ruleset(folder).digest == first.digest

    (folder / "tests" / "t.yaml").write_text("changed: true\n", encoding="utf-8")
    assert load_ruleset(folder).digest == first.digest

    (folder / "lexicons" / "en.yaml").write_text("cues: [still, again, third time]\n",
                                                 encoding="utf-8")
    after_lexicon = load_ruleset(folder).digest
    assert after_lexicon != first.digest

    (folder / "rules.yaml").write_text((folder / "rules.yaml").read_text() + "# note\n",
                                       encoding="utf-8")
    assert load_ruleset(folder).digest not in (first.digest, after_lexicon)
