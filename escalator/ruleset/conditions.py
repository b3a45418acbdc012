"""Rule conditions as typed values, with their meaning defined once in plain Python.

The meaning, which the durable-rules compiler reproduces exactly:
- A comparison is true only when its fact is present and has the compared type; an absent
  fact makes every comparison false, `ne` and `not_in` included.
- `not` is plain negation: `not` of a comparison on an absent fact is true.
- Numbers compare by value (3 == 3.0); a number never equals a string or a boolean, and
  a string or boolean is never less or greater than anything.
- `contains` asks whether a labels fact holds one label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from escalator.model import FactValue

Operator = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "is"]
OPERATORS: tuple[Operator, ...] = (
    "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "is",
)
ORDERING: frozenset[str] = frozenset({"lt", "lte", "gt", "gte"})

Constant: TypeAlias = str | int | float | bool
Value: TypeAlias = Constant | tuple[Constant, ...]


@dataclass(frozen=True)
class Leaf:
    """One comparison of a fact with a constant (`in`/`not_in` take a tuple of constants)."""

    fact: str
    op: Operator
    value: Value
    line: int | None = field(default=None, compare=False)

    def as_written(self) -> dict[str, Any]:
        """The condition as a rule author writes it."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"fact": self.fact, self.op: value}


@dataclass(frozen=True)
class AllOf:
    """True when every item is true."""

    items: tuple[Condition, ...]
    line: int | None = field(default=None, compare=False)

    def as_written(self) -> dict[str, Any]:
        """The condition as a rule author writes it."""
        return {"all": [item.as_written() for item in self.items]}


@dataclass(frozen=True)
class AnyOf:
    """True when at least one item is true."""

    items: tuple[Condition, ...]
    line: int | None = field(default=None, compare=False)

    def as_written(self) -> dict[str, Any]:
        """The condition as a rule author writes it."""
        return {"any": [item.as_written() for item in self.items]}


@dataclass(frozen=True)
class Not:
    """True when the item is false (including when it compares an absent fact)."""

    item: Condition
    line: int | None = field(default=None, compare=False)

    def as_written(self) -> dict[str, Any]:
        """The condition as a rule author writes it."""
        return {"not": self.item.as_written()}


Condition: TypeAlias = Leaf | AllOf | AnyOf | Not


def kind_of(value: object) -> str:
    """The class a value compares within: boolean, number, string, labels or other."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple | list | frozenset | set):
        return "labels"
    return "other"


def _equal(present: object, constant: Constant) -> bool:
    return kind_of(present) == kind_of(constant) and present == constant


def _ordered(op: str, present: object, constant: Constant) -> bool:
    if kind_of(present) != "number" or kind_of(constant) != "number":
        return False
    a, b = present, constant
    assert isinstance(a, int | float) and isinstance(b, int | float)
    if op == "lt":
        return a < b
    if op == "lte":
        return a <= b
    if op == "gt":
        return a > b
    return a >= b


def compare(leaf: Leaf, present: object) -> bool:
    """Whether the comparison holds for a present fact value (None counts as absent)."""
    if present is None:
        return False
    op, value = leaf.op, leaf.value
    if op in ("eq", "is"):
        assert not isinstance(value, tuple)
        return _equal(present, value)
    if op == "ne":
        assert not isinstance(value, tuple)
        return not _equal(present, value)
    if op in ORDERING:
        assert not isinstance(value, tuple)
        return _ordered(op, present, value)
    if op == "in":
        assert isinstance(value, tuple)
        return any(_equal(present, c) for c in value)
    if op == "not_in":
        assert isinstance(value, tuple)
        return not any(_equal(present, c) for c in value)
    # contains
    return kind_of(present) == "labels" and value in present  # type: ignore[operator]


def holds(condition: Condition, facts: Mapping[str, FactValue | None]) -> bool:
    """Whether a condition is true for these facts (the reference the compiler must match)."""
    if isinstance(condition, Leaf):
        return compare(condition, facts.get(condition.fact))
    if isinstance(condition, AllOf):
        return all(holds(item, facts) for item in condition.items)
    if isinstance(condition, AnyOf):
        return any(holds(item, facts) for item in condition.items)
    return not holds(condition.item, facts)


def truth_when(condition: Condition, fact: str, value: FactValue) -> bool | None:
    """Whether a condition is certainly true (True), certainly false (False) or depends
    on other facts (None), knowing only that `fact` has `value`."""
    if isinstance(condition, Leaf):
        return compare(condition, value) if condition.fact == fact else None
    if isinstance(condition, Not):
        inner = truth_when(condition.item, fact, value)
        return None if inner is None else not inner
    results = [truth_when(item, fact, value) for item in condition.items]
    if isinstance(condition, AllOf):
        if False in results:
            return False
        return True if all(r is True for r in results) else None
    if True in results:
        return True
    return False if all(r is False for r in results) else None


Truth: TypeAlias = bool | None
# A three-valued answer for every whole value of one fact from a lowest value up: each
# (first value, truth) pair holds until the next pair's first value, the last for ever.
Segments: TypeAlias = tuple[tuple[int, Truth], ...]


def truth_from(condition: Condition, fact: str, lowest: int) -> Segments:
    """truth_when for every whole value of `fact` from `lowest` up, as segments.

    A comparison can only change its answer where a constant is, so the cost follows how
    many comparisons and constants there are, never how large the constants are
    (`lt: 100000000` is two segments, not a hundred million values).
    """
    if isinstance(condition, Leaf):
        return _leaf_segments(condition, fact, lowest)
    if isinstance(condition, Not):
        return tuple((start, None if truth is None else not truth)
                     for start, truth in truth_from(condition.item, fact, lowest))
    parts = [truth_from(item, fact, lowest) for item in condition.items]
    return _combine(isinstance(condition, AllOf), parts)


def _leaf_segments(leaf: Leaf, fact: str, lowest: int) -> Segments:
    if leaf.fact != fact:
        return ((lowest, None),)
    constants = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
    starts = {lowest}
    for constant in constants:
        if kind_of(constant) == "number":
            assert isinstance(constant, int | float)
            # Whole values first differ in their answer at these two points: ceil(c) for
            # lt/gte (and eq), floor(c) + 1 for lte/gt (and just past eq).
            starts.update(point for point in (math.ceil(constant), math.floor(constant) + 1)
                          if point > lowest)
    segments: list[tuple[int, Truth]] = []
    for start in sorted(starts):
        truth = compare(leaf, start)
        if not segments or segments[-1][1] != truth:
            segments.append((start, truth))
    return tuple(segments)


def _combine(every: bool, parts: list[Segments]) -> Segments:
    """all (every=True) or any of several segment lists, in one sweep over their starts."""
    events = sorted(((start, index, truth) for index, part in enumerate(parts)
                     for start, truth in part), key=lambda event: (event[0], event[1]))
    state: list[Truth] = [None] * len(parts)
    counts = {True: 0, False: 0, None: len(parts)}
    segments: list[tuple[int, Truth]] = []
    position = 0
    while position < len(events):
        start = events[position][0]
        while position < len(events) and events[position][0] == start:
            _, index, truth = events[position]
            counts[state[index]] -= 1
            counts[truth] += 1
            state[index] = truth
            position += 1
        if every:
            combined: Truth = (False if counts[False] else
                               True if counts[True] == len(parts) else None)
        else:
            combined = (True if counts[True] else
                        False if counts[False] == len(parts) else None)
        if not segments or segments[-1][1] != combined:
            segments.append((start, combined))
    return tuple(segments)


def size(condition: Condition) -> int:
    """How many parts a condition has: each all/any/not, each comparison, and each value
    of an in/not_in list after the first."""
    if isinstance(condition, Leaf):
        return len(condition.value) if isinstance(condition.value, tuple) else 1
    if isinstance(condition, Not):
        return 1 + size(condition.item)
    return 1 + sum(size(item) for item in condition.items)


def leaves(condition: Condition) -> tuple[Leaf, ...]:
    """Every comparison in a condition, in the order written."""
    if isinstance(condition, Leaf):
        return (condition,)
    if isinstance(condition, Not):
        return leaves(condition.item)
    return tuple(leaf for item in condition.items for leaf in leaves(item))
