"""The budget of every rule set, from any source (the folder at start, a reload, a rule set
sent inline): what the rules may cost is bounded before anything is expanded or compiled.
The compiler adds the engine's share (escalator.ruleset.compiler). What the default rules
use of it is in docs/policy/guide.md ("Limits"), kept true by a test."""

from __future__ import annotations

from escalator.errors import Problem
from escalator.ruleset.conditions import size
from escalator.ruleset.model import Rule

MAX_NESTING = 16
MAX_LIST_VALUES = 100
MAX_CONDITION_PARTS = 5_000


def budget_problems(rules: list[Rule], file: str) -> list[Problem]:
    """The rule set over MAX_CONDITION_PARTS, in words that point at its largest rule."""
    parts = [size(rule.when) for rule in rules]
    total = sum(parts)
    if total <= MAX_CONDITION_PARTS:
        return []
    largest = max(range(len(rules)), key=parts.__getitem__)
    rule = rules[largest]
    return [Problem(file, None, f"the conditions of all rules together have {total:,} parts "
                                f"(each all/any/not, each comparison and each value of an "
                                f"in/not_in list, an alias counting as often as it is used); "
                                f"at most {MAX_CONDITION_PARTS:,} are allowed. The largest is "
                                f"rule '{rule.id}' ({rule.file} line {rule.line}) with "
                                f"{parts[largest]:,}", code="budget",
                    limit="condition_parts")]
