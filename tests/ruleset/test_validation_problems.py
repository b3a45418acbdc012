"""One path from marshmallow's errors to problems: plain words at the line of the key, the
same sentence for the same mistake in a rule file, a lexicon and a rule test."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from support.rulesets import copy_rules

from escalator.errors import PolicyError, Problem
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.problems import validation_problems
from escalator.ruleset.yamlfile import load_yaml
from escalator.scoring import load_lexicons
from escalator.tools.ruletests import load_rule_tests


class _Inner(Schema):
    class Meta:
        unknown = RAISE

    threshold = fields.Float(required=True)


class _Sample(Schema):
    class Meta:
        unknown = RAISE

    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    name = fields.String(required=True, validate=validate.Length(max=3))
    words = fields.List(fields.String())
    weights = fields.Dict(keys=fields.String(validate=validate.Regexp("^[a-z]+$")),
                          values=fields.Float())
    inner = fields.Nested(_Inner)


def problems_of(text: str) -> list[tuple[int | None, str]]:
    data = load_yaml(text.encode(), "sample.yaml")
    with pytest.raises(ValidationError) as info:
        _Sample().load(data)
    problems = validation_problems(info.value, data, "sample.yaml", schema=_Sample,
                                   rule="r", lead="sample: ")
    assert all((p.code, p.file, p.rule) == ("schema", "sample.yaml", "r") for p in problems)
    return [(p.line, p.message) for p in problems]


def test_marshmallows_own_messages_become_plain_words_at_the_line_of_their_key() -> None:
    assert problems_of("""\
count: 0
name: toolong
words: [a, true]
weights: {Ab: 1, b: x}
inner: {threshold: 1, thresold: 2}
""") == [
        (1, "sample: 'count' must be at least 1"),
        (2, "sample: 'name' must have at most 3 (characters or items)"),
        (3, "sample: 'words[1]' must be text (put it in quotes)"),
        (4, "sample: 'weights.Ab' is not valid here"),
        (4, "sample: 'weights.b' must be a number"),
        (5, "sample: unknown key 'inner.thresold' (did you mean 'threshold'?); allowed "
            "here: threshold"),
    ]


def test_a_missing_key_is_placed_where_its_mapping_starts() -> None:
    assert problems_of("name: abc\ninner:\n  other: 1\n") == [
        (1, "sample: 'count' is missing"),
        (3, "sample: 'inner.threshold' is missing"),
        (3, "sample: unknown key 'inner.other'; allowed here: threshold"),
    ]


def test_messages_without_an_error_object_are_walked_the_same_way() -> None:
    data = load_yaml(b"turns:\n  - {message: {txt: hi}}\n", "t.yaml")
    problems = validation_problems({"turns": {0: {"message": {"txt": ["Unknown field."]}}}},
                                   data, "t.yaml")
    assert [(p.line, p.message) for p in problems] == [(2, "unknown key 'message.txt'")]


def unknown_key_sentence(problems: list[Problem], key: str) -> str:
    """What follows "unknown key 'KEY'" in the one problem about KEY."""
    (message,) = [p.message for p in problems if f"unknown key '{key}'" in p.message]
    return message.split(f"unknown key '{key}'", 1)[1]


def test_an_unknown_key_reads_the_same_in_a_rule_file_a_lexicon_and_a_rule_test(
        tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    copy_rules(rules, with_tests=True)
    ruleset = rules / "ruleset.yaml"
    ruleset.write_text(ruleset.read_text() + "versoin: x\n")
    scoring = rules / "lexicons" / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("  trend_window: 5\n",
                                                   "  trend_window: 5\n  trend_windw: 6\n"))
    (rules / "tests" / "typo.yaml").write_text(
        "tests:\n  - name: T\n    turns: [{message: {text: hi}}]\n"
        "    expect: [{turn: 1, decison: keep_with_bot}]\n")

    with pytest.raises(PolicyError) as rule_file:
        load_ruleset(rules)
    with pytest.raises(PolicyError) as lexicon:
        load_lexicons(rules / "lexicons")
    with pytest.raises(PolicyError) as rule_test:
        load_rule_tests(rules, ["explicit-human-request"])

    assert unknown_key_sentence(rule_file.value.problems, "versoin").startswith(
        " (did you mean 'version'?); allowed here: default, default_language, ")
    assert unknown_key_sentence(lexicon.value.problems, "sentiment.trend_windw") == (
        " (did you mean 'trend_window'?); allowed here: half_life_turns, "
        "negative_threshold, trend_window")
    assert unknown_key_sentence(rule_test.value.problems, "decison").startswith(
        " (did you mean 'decision'?); allowed here: customer_message, decision, ")


def test_a_rule_test_that_cannot_be_read_is_told_in_words_not_as_a_python_dict(
        tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "bad.yaml").write_text("""\
tests:
  - name: No turns
    turn:
      - message: {text: hi}
    expect:
      - {turn: 1}
  - name: Bad turns
    turns:
      - message: {text: hi}
      - message: {txt: hi}
      - {message: {text: 5}}
    expect:
      - {turn: 1}
""")
    with pytest.raises(PolicyError) as info:
        load_rule_tests(tmp_path, [])
    assert [str(p) for p in info.value.problems] == [
        "tests/bad.yaml:2: test 'No turns': 'turns' is missing",
        "tests/bad.yaml:3: test 'No turns': unknown key 'turn' (did you mean 'turns'?); "
        "allowed here: conversation_id, expect, name, turns",
        "tests/bad.yaml:10: test 'Bad turns': unknown key 'message.txt' (did you mean "
        "'text'?); allowed here: intent, intent_confidence, language, text",
        "tests/bad.yaml:11: test 'Bad turns': 'message.text' must be text (put it in quotes)",
    ]


def test_a_test_file_without_a_list_of_tests_is_told_so(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "bad.yaml").write_text("tests: {name: x}\n")
    with pytest.raises(PolicyError) as info:
        load_rule_tests(tmp_path, [])
    assert [str(p) for p in info.value.problems] == [
        "tests/bad.yaml:1: 'tests' must be a list of tests, each starting with '- name: ...'"]
