"""Conditions as written (YAML) to typed conditions, checked against the facts catalogue:
every fact named exists, every comparison suits its type, every constant its range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from escalator.errors import Problem
from escalator.ruleset.budget import MAX_LIST_VALUES, MAX_NESTING
from escalator.ruleset.catalogue import EXPLANATIONS, FACTS, FactSpec, caseless, lookup
from escalator.ruleset.conditions import (
    OPERATORS,
    ORDERING,
    AllOf,
    AnyOf,
    Condition,
    Constant,
    Leaf,
    Not,
    Operator,
    kind_of,
)
from escalator.ruleset.problems import did_you_mean
from escalator.ruleset.yamlfile import key_line

# Which comparisons make sense for each fact type (the catalogue's types).
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "number": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"),
    "integer": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"),
    "boolean": ("is", "eq", "ne"),
    "string": ("eq", "ne", "in", "not_in"),
    "labels": ("contains",),
    "scalar": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "is"),
}
_INT64 = 2**63


@dataclass
class Where:
    """Where a condition is, for problems."""

    file: str
    rule: str | None
    problems: list[Problem]

    def add(self, line: int | None, message: str, *, code: str,
            limit: str | None = None) -> None:
        self.problems.append(Problem(self.file, line, message, rule=self.rule, limit=limit,
                                     code=code))


_EXAMPLE = "{fact: frustration.mean, gte: 0.6}"


def parse_condition(node: Any, where: Where, line: int | None, depth: int = 0) -> Condition | None:
    """A typed condition from YAML, or None after recording why it is wrong."""
    if depth > MAX_NESTING:
        where.add(line, f"conditions are nested more than {MAX_NESTING} levels deep; simplify",
                  code="budget", limit="condition_depth")
        return None
    if not isinstance(node, dict):
        where.add(line, f"a condition must be a mapping such as {_EXAMPLE}, "
                        f"or all:/any:/not: (found {_shown(node)})", code="schema")
        return None
    line = getattr(node, "line", line)
    if "fact" in node:
        return _parse_leaf(node, where, line)
    groups = [key for key in ("all", "any", "not") if key in node]
    others = [key for key in node if key not in ("all", "any", "not")]
    if others:
        known = ["fact", "all", "any", "not", *OPERATORS]
        if all(key in OPERATORS for key in others):
            where.add(line, f"this comparison does not say which fact it compares; add "
                            f"'fact:', e.g. {_EXAMPLE}", code="schema")
            return None
        for key in (key for key in others if key not in OPERATORS):
            hint = did_you_mean(str(key), known)
            where.add(key_line(node, key),
                      f"unknown key '{key}' in a condition{hint}; a condition is either "
                      f"{_EXAMPLE} or all:/any:/not:", code="schema")
        return None
    if len(groups) != 1:
        where.add(line, "a condition must have exactly one of all, any or not"
                        if groups else f"empty condition; write e.g. {_EXAMPLE}", code="schema")
        return None
    key = groups[0]
    body = node[key]
    body_line = key_line(node, key)
    if key == "not":
        if isinstance(body, list):
            where.add(body_line, "'not' takes a single condition; to negate several, put them "
                                 "under all or any inside the not", code="schema")
            return None
        inner = parse_condition(body, where, body_line, depth + 1)
        return None if inner is None else Not(inner, line)
    if not isinstance(body, list) or not body:
        where.add(body_line, f"'{key}' needs a list of at least one condition "
                             f"(e.g. {key}: [{_EXAMPLE}])", code="schema")
        return None
    items = [parse_condition(item, where, getattr(item, "line", body_line), depth + 1)
             for item in body]
    if any(item is None for item in items):
        return None
    parsed = tuple(item for item in items if item is not None)
    return AllOf(parsed, line) if key == "all" else AnyOf(parsed, line)


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


def _parse_leaf(node: dict[str, Any], where: Where, line: int | None) -> Leaf | None:
    name = node["fact"]
    ops = [key for key in node if key != "fact"]
    unknown = [key for key in ops if key not in OPERATORS]
    ok = True
    for key in unknown:
        hint = did_you_mean(str(key), OPERATORS)
        where.add(key_line(node, key), f"unknown operator '{key}'{hint}; operators are: "
                                        + ", ".join(OPERATORS), code="unknown_operator")
        ok = False
    known = [key for key in ops if key in OPERATORS]
    if not isinstance(name, str) or not name:
        where.add(line, f"'fact' must be the name of a fact (found {_shown(name)})", code="schema")
        return None
    spec = lookup(name)
    if spec is None:
        hint = did_you_mean(name, FACTS)
        where.add(line, f"unknown fact '{name}'{hint or ''}; `escalator rules facts` lists the "
                        "facts (context values are written context.<key>)", code="unknown_fact")
        return None
    if not ok:
        return None
    if name in EXPLANATIONS:
        where.add(line, f"'{name}' explains a score to people reading a decision and is not "
                        f"for rules; test '{EXPLANATIONS[name]}' instead", code="type_mismatch")
        return None
    if not known:
        where.add(line, f"the condition on '{name}' has no comparison; add one of "
                        + ", ".join(OPERATORS_BY_TYPE[spec.type]), code="schema")
        return None
    if len(known) > 1:
        where.add(line, f"the condition on '{name}' has {len(known)} comparisons "
                        f"({', '.join(known)}); write each as its own condition under all",
                  code="schema")
        return None
    op: Operator = known[0]
    allowed = OPERATORS_BY_TYPE[spec.type]
    if op not in allowed:
        where.add(line, f"'{op}' cannot be used with '{name}', which is {_a_type(spec)}; "
                        f"use {', '.join(allowed)}", code="type_mismatch")
        return None
    value = _check_value(spec, op, node[op], where, line)
    if value is None:
        return None
    if caseless(name):
        # The service reads these labels in lower case: "VIP" here is the tier "vip".
        value = (tuple(_lower(v) for v in value) if isinstance(value, tuple)
                 else _lower(value))
    return Leaf(name, op, value, line)


def _lower(value: Constant) -> Constant:
    return value.lower() if isinstance(value, str) else value


def _a_type(spec: FactSpec) -> str:
    return {
        "number": "a number",
        "integer": "a whole number",
        "boolean": "true or false",
        "string": "text",
        "labels": "a set of labels",
        "scalar": "a context value",
    }[spec.type]


def _check_value(spec: FactSpec, op: Operator, raw: Any, where: Where,
                 line: int | None) -> Constant | tuple[Constant, ...] | None:
    """The constant of a comparison if it suits the fact's type and range, else None."""
    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw:
            where.add(line, f"'{op}' needs a list of at least one value, "
                            f"e.g. {op}: [a, b] (found {_shown(raw)})", code="type_mismatch")
            return None
        if len(raw) > MAX_LIST_VALUES:
            where.add(line, f"this '{op}' list has {len(raw):,} values; at most "
                            f"{MAX_LIST_VALUES} are allowed: split it, or compare with "
                            "lt/gt when the values are numbers in a range",
                      code="budget", limit="list_values")
            return None
        checked = [_check_constant(spec, op, item, where, line) for item in raw]
        if any(c is None for c in checked):
            return None
        return tuple(c for c in checked if c is not None)
    return _check_constant(spec, op, raw, where, line)


def _check_constant(spec: FactSpec, op: Operator, raw: Any, where: Where,
                    line: int | None) -> Constant | None:
    name, type_ = spec.name, spec.type
    kind = kind_of(raw)
    if kind == "number" and not math.isfinite(raw):
        where.add(line, f"'{op}' on '{name}' must be a finite number (found {raw})",
                  code="type_mismatch")
        return None
    if type_ in ("number", "integer") or (type_ == "scalar" and op in ORDERING):
        if kind != "number":
            quoted = " (without quotes)" if kind == "string" else ""
            where.add(line, f"'{name}' is {_a_type(spec)}, so '{op}' needs a number{quoted} "
                            f"(found {_shown(raw)})", code="type_mismatch")
            return None
        if type_ == "integer":
            if isinstance(raw, float) and not raw.is_integer():
                where.add(line, f"'{name}' is a whole number, so compare it with a whole number "
                                f"(found {raw})", code="type_mismatch")
                return None
            raw = int(raw)
        if isinstance(raw, int) and not -_INT64 <= raw < _INT64:
            where.add(line, f"the number {raw} is too large", code="type_mismatch")
            return None
        if not _in_range(spec, op, raw, where, line):
            return None
        return raw  # type: ignore[no-any-return]
    if type_ == "boolean" or op == "is":
        if kind != "boolean":
            hint = " (write true or false without quotes)" if kind == "string" else ""
            where.add(line, f"'{op}' on '{name}' needs true or false{hint} "
                            f"(found {_shown(raw)})", code="type_mismatch")
            return None
        return raw  # type: ignore[no-any-return]
    if type_ in ("string", "labels"):
        if kind != "string":
            where.add(line, f"'{name}' is {_a_type(spec)}, so '{op}' needs text "
                            f"(put it in quotes; found {_shown(raw)})", code="type_mismatch")
            return None
        return raw  # type: ignore[no-any-return]
    # scalar (context.<key>) with eq/ne/in/not_in: any text, number or true/false.
    if kind not in ("boolean", "number", "string"):
        where.add(line, f"'{op}' on '{name}' needs text, a number or true/false "
                        f"(found {_shown(raw)})", code="type_mismatch")
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and not -_INT64 <= raw < _INT64:
        where.add(line, f"the number {raw} is too large", code="type_mismatch")
        return None
    return raw  # type: ignore[no-any-return]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _in_range(spec: FactSpec, op: Operator, c: float, where: Where, line: int | None) -> bool:
    """False (with a problem) when a constant makes the comparison always or never true."""
    lo, hi = spec.minimum, spec.maximum
    if lo is None and hi is None:
        return True
    never = always = False
    if op == "lt":
        never = lo is not None and c <= lo
        always = hi is not None and c > hi
    elif op == "lte":
        never = lo is not None and c < lo
        always = hi is not None and c > hi
    elif op == "gt":
        never = hi is not None and c >= hi
        always = lo is not None and c < lo
    elif op == "gte":
        never = hi is not None and c > hi
        always = lo is not None and c < lo
    else:
        outside = (lo is not None and c < lo) or (hi is not None and c > hi)
        never = outside and op in ("eq", "in")
        always = outside and op in ("ne", "not_in")
    if not (never or always):
        return True
    if lo is not None and hi is not None:
        bounds = f"is between {_fmt(lo)} and {_fmt(hi)}"
    elif lo is not None:
        bounds = f"is at least {_fmt(lo)}"
    else:
        assert hi is not None
        bounds = f"is at most {_fmt(hi)}"
    verdict = "can never be true" if never else "is always true"
    where.add(line, f"'{spec.name}' {bounds}, so '{op} {_fmt(c)}' {verdict}; check the threshold",
              code="never_true" if never else "always_true")
    return False
