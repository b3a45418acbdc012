"""The rule set's thresholds: its numeric comparisons and the boolean facts it tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from escalator.ruleset.catalogue import lookup
from escalator.ruleset.conditions import ORDERING, Condition, Leaf, Not, leaves
from escalator.ruleset.model import RuleSet


@dataclass(frozen=True)
class Threshold:
    """A numeric comparison in a rule: `fact op value` (negated: inside a `not`)."""

    rule: str
    fact: str
    op: str
    value: float
    negated: bool = False

    @property
    def written(self) -> str:
        shown = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[self.op]
        return f"{'not ' if self.negated else ''}{self.fact} {shown} {self.value:g}"

    def leaf(self) -> Leaf:
        """The comparison as the rule set's own condition (its meaning defined there)."""
        return Leaf(self.fact, self.op, self.value)  # type: ignore[arg-type]


def _negated_leaves(condition: Condition, negated: bool = False) -> Iterator[tuple[Leaf, bool]]:
    if isinstance(condition, Leaf):
        yield condition, negated
    elif isinstance(condition, Not):
        yield from _negated_leaves(condition.item, not negated)
    else:
        for item in condition.items:
            yield from _negated_leaves(item, negated)


def thresholds(ruleset: RuleSet) -> list[Threshold]:
    """Every ordering comparison of a fact with a number in the rules, in file order."""
    found = []
    for rule in ruleset.rules:
        for leaf, negated in _negated_leaves(rule.when):
            value = leaf.value
            if (leaf.op in ORDERING and isinstance(value, int | float)
                    and not isinstance(value, bool)):
                found.append(Threshold(rule.id, leaf.fact, leaf.op, float(value), negated))
    return found


def boolean_facts(ruleset: RuleSet) -> list[str]:
    """The boolean facts the rules test (e.g. requested_human), in order of first use."""
    seen: dict[str, None] = {}
    for rule in ruleset.rules:
        for leaf in leaves(rule.when):
            spec = lookup(leaf.fact)
            if spec is not None and spec.type == "boolean":
                seen.setdefault(leaf.fact, None)
    return list(seen)
