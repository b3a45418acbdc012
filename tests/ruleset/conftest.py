"""Fixtures for rule-set tests: write rule files into a temporary folder, compile them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from escalator.ruleset.compiler import CompiledRuleSet
from escalator.ruleset.loader import load_ruleset

HEADER = """\
ruleset: test
version: "2026.11.1"
default: {decision: keep_with_bot, queue: support, urgency: normal,
          customer_message: "I'm connecting you with a member of our team."}
"""

# The two rules every rule set needs (the floor: a customer can always reach a person).
FLOOR_RULES = """\
  - id: explicit-human-request
    description: The customer asked for a person.
    priority: 100
    when: {all: [{fact: requested_human, is: true}]}
    then: {decision: route_to_human, customer_message: "Of course, connecting you now."}
  - id: fallback-cap
    description: The bot failed to understand several times in a row.
    priority: 90
    when: {fact: loop.fallback_streak, gte: 3}
    then: {decision: route_to_human, urgency: high}
"""

WriteRules = Callable[..., Path]


@pytest.fixture
def floor_rules() -> str:
    """The floor rules, to paste under `rules:` in a test's file."""
    return FLOOR_RULES


@pytest.fixture
def write_rules(tmp_path: Path) -> WriteRules:
    """write_rules(rules_yaml, floor=True, header=HEADER, name="rules.yaml") -> the folder.

    `rules_yaml` is the list under `rules:` (dedented, then indented by two spaces);
    the floor rules come first unless floor=False. Call it again to add more files.
    """
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)

    def write(rules_yaml: str = "", *, floor: bool = True, header: str = HEADER,
              name: str = "rules.yaml") -> Path:
        body = textwrap.indent(textwrap.dedent(rules_yaml).strip("\n"), "  ")
        text = header + "rules:\n" + (FLOOR_RULES if floor else "") + (body + "\n" if body
                                                                        else "")
        if not floor and not body:
            text = header + "rules: []\n"
        (folder / name).write_text(text, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def compile_rules(write_rules: WriteRules) -> Iterator[Callable[..., CompiledRuleSet]]:
    """compile_rules(rules_yaml, **write_rules options) -> a CompiledRuleSet, closed after."""
    compiled: list[CompiledRuleSet] = []

    def build(rules_yaml: str = "", **options: object) -> CompiledRuleSet:
        ruleset = load_ruleset(write_rules(rules_yaml, **options))
        compiled.append(CompiledRuleSet(ruleset))
        return compiled[-1]

    yield build
    for ruleset in compiled:
        ruleset.close()
