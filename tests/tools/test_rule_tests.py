"""`escalator rules test`, `rules check` and `evaluate`: the policy owner's commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.rulesets import copy_rules

from escalator.cli import main
from escalator.config import default_rules_dir

PASSING = """
tests:
  - name: An explicit request routes at once
    turns:
      - message: {text: "I want to talk to a human"}
    expect:
      - {turn: 1, decision: route_to_human, decisive: explicit-human-request}
"""

FAILING = """
tests:
  - name: A calm question is wrongly expected to route
    turns:
      - message: {text: "What time do you open?"}
    expect:
      - {turn: 1, decision: route_to_human, rules: [customer-repeating]}
"""


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """The default rule set, copied so a test can edit it; without its shipped tests."""
    folder = tmp_path / "rules"
    copy_rules(folder)
    (folder / "tests").mkdir()
    return folder


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_passing_rule_tests_exit_zero_with_a_count(rules_copy: Path) -> None:
    (rules_copy / "tests" / "floor.yaml").write_text(PASSING)
    code, output = run("rules", "test", str(rules_copy))
    assert code == 0
    assert output.strip().splitlines()[-1] == "1 passed, 0 failed"


def test_a_failure_shows_expected_got_and_the_facts(rules_copy: Path) -> None:
    (rules_copy / "tests" / "floor.yaml").write_text(PASSING)
    (rules_copy / "tests" / "wrong.yaml").write_text(FAILING)
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "FAIL tests/wrong.yaml:" in output
    assert "expected decision route_to_human" in output
    assert "expected rules matched: customer-repeating" in output
    assert "got      keep_with_bot" in output
    assert "facts    message.chars=22" in output
    assert output.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_test_naming_an_unknown_rule_is_refused_with_a_suggestion(rules_copy: Path) -> None:
    (rules_copy / "tests" / "typo.yaml").write_text(PASSING.replace(
        "decisive: explicit-human-request", "decisive: explicit-human-requests"))
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "tests/typo.yaml:7" in output
    assert "did you mean 'explicit-human-request'" in output


def test_a_rule_set_without_tests_fails_the_test_command(rules_copy: Path) -> None:
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1 and "no rule tests" in output


def test_rules_check_passes_the_default_set_and_names_each_problem(rules_copy: Path) -> None:
    code, output = run("rules", "check", str(rules_copy))
    assert code == 0 and output.startswith("ok: default ")
    loops = rules_copy / "loops.yaml"
    loops.write_text(loops.read_text().replace("loop.bot_repeats", "loop.bot_repeat"))
    code, output = run("rules", "check", str(rules_copy))
    assert code == 1
    assert "loops.yaml:" in output and "rule 'bot-repeating-prompt'" in output
    assert "did you mean 'loop.bot_repeats'" in output


def test_evaluate_decides_every_turn_of_a_transcript(tmp_path: Path) -> None:
    transcript = tmp_path / "t.json"
    transcript.write_text(json.dumps({"conversation_id": "c-dry", "turns": [
        {"message": {"text": "Hello, where is my parcel?"}},
        {"message": {"text": "Let me talk to an agent"}},
    ]}))
    code, output = run("evaluate", str(transcript))
    assert code == 0, output
    body = json.loads(output)
    assert body["conversation_id"] == "c-dry"
    assert [d["decision"] for d in body["decisions"]] == ["keep_with_bot", "route_to_human"]
    assert [d["turn_index"] for d in body["decisions"]] == [1, 2]
    assert body["decisions"][1]["turn_id"] == "t-2"


def test_evaluate_refuses_an_invalid_transcript(tmp_path: Path) -> None:
    transcript = tmp_path / "t.json"
    transcript.write_text(json.dumps([{"message": {}}]))
    code, output = run("evaluate", str(transcript))
    assert code != 0
    assert "Some turns are not valid" in output and '"1"' in output


def test_the_shipped_rule_tests_pass_and_cover_every_default_rule() -> None:
    from escalator.policy import load_policy
    from escalator.tools.ruletests import load_rule_tests, run_rule_tests

    policy = load_policy(default_rules_dir())
    try:
        rule_ids = [rule.id for rule in policy.ruleset.rules]
        tests = load_rule_tests(default_rules_dir(), rule_ids)
        report = run_rule_tests(policy, tests)
    finally:
        policy.close()
    assert [f.explain() for f in report.failures] == []
    named = {name for test in tests for expectation in test.expectations
             for name in (*expectation.rules, *([expectation.decisive]
                                                if expectation.decisive else []))}
    assert set(rule_ids) - named == set()


HANDOFF = """
tests:
  - name: Safety goes to the care queue, urgently, with the care message
    turns:
      - message: {text: "I can smell gas in my kitchen, what should I do"}
    expect:
      - turn: 1
        decision: route_to_human
        queue: care
        urgency: urgent
        customer_message: >-
          Thank you for telling me. I'm bringing in a member of our team who can help
          you with this properly.
  - name: A customer who asks for a person goes to support
    turns:
      - message: {text: "I want to talk to a human"}
    expect:
      - {turn: 1, decisive: explicit-human-request, queue: support}
"""


def test_tests_assert_the_queue_the_urgency_and_the_message(rules_copy: Path) -> None:
    (rules_copy / "tests" / "handoff.yaml").write_text(HANDOFF)
    code, output = run("rules", "test", str(rules_copy))
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "2 passed, 0 failed"

    (rules_copy / "tests" / "handoff.yaml").write_text(
        HANDOFF.replace("queue: care", "queue: specialist")
        .replace("urgency: urgent", "urgency: high")
        .replace("help\n          you", "help\n          them"))
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "expected queue specialist" in output
    assert "expected urgency high" in output
    assert "expected customer message \"Thank you for telling me. I'm bringing in a member " \
           "of our team who can help them with this properly.\"" in output
    assert "handoff  queue care, urgency urgent, message \"Thank you" in output
    assert output.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_handoff_expected_of_a_conversation_that_stays_with_the_bot_fails(
        rules_copy: Path) -> None:
    (rules_copy / "tests" / "calm.yaml").write_text("""
tests:
  - name: A calm question is wrongly expected to reach a queue
    turns:
      - message: {text: "What time do you open?"}
    expect:
      - {turn: 1, queue: support}
""")
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "expected a handoff to a person (the conversation stayed with the bot)" in output


@pytest.mark.parametrize(("expect", "message"), [
    ("{turn: 1, decision: route_to_human, queue: retension}",
     "no rule or default of the rule set sends customers to queue 'retension' (did you mean "
     "'retention'?); the queues are: care, retention, specialist, support"),
    ("{turn: 1, decision: keep_with_bot, queue: support}",
     "a conversation kept with the bot has no handoff, so queue cannot be checked"),
    ("{turn: 1, urgency: hihg}",
     "expect: 'urgency' must be one of: low, normal, high, urgent"),
    ("{turn: 1, handoff_priority: hihg}",
     "expect: 'handoff_priority' must be one of: low, normal, high, urgent"),
    ("{turn: 1, urgency: high, handoff_priority: high}",
     "expect: 'handoff_priority' is the old name of 'urgency'; write only urgency"),
    ("{turn: 1, queeu: support}",
     "expect: unknown key 'queeu' (did you mean 'queue'?); allowed here: customer_message, "
     "decision, decisive, not_rules, queue, rules, turn, urgency"),
])
def test_mistakes_in_handoff_expectations_are_refused_in_plain_words(
        rules_copy: Path, expect: str, message: str) -> None:
    (rules_copy / "tests" / "bad.yaml").write_text(f"""
tests:
  - name: Bad
    turns:
      - message: {{text: "hello"}}
    expect:
      - {expect}
""")
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert f"tests/bad.yaml:7: test 'Bad': {message}" in output


def test_rules_no_test_covers_are_listed(rules_copy: Path) -> None:
    from escalator.policy import load_policy

    (rules_copy / "tests" / "floor.yaml").write_text(PASSING)
    code, output = run("rules", "test", str(rules_copy))
    assert code == 0
    policy = load_policy(rules_copy)
    others = [r.id for r in policy.ruleset.rules if r.id != "explicit-human-request"]
    policy.close()
    lines = output.strip().splitlines()
    assert lines[-2] == (f"{len(others)} rule(s) not covered by any test (no test expects "
                         f"them to match): {', '.join(others)}; add a test with "
                         "'rules: [<id>]' or 'decisive: <id>' for each")
    assert lines[-1] == "1 passed, 0 failed"


def test_the_shipped_tests_cover_every_rule_by_the_command_too() -> None:
    code, output = run("rules", "test", str(default_rules_dir()))
    assert code == 0, output
    assert "every rule is covered" in output
