"""Read a rule directory into a validated, type-checked RuleSet, or refuse it with every problem.

A rule set is a directory: every `*.yaml` directly in it is a rule file (`lexicons/` and
`tests/` belong to the scorers and to `escalator rules test`). The loader checks the shape
of each file (marshmallow), the type of every comparison against the facts catalogue, and
the floor (DESIGN principle 1: a way out always exists). All problems are reported at once,
each with the file, line and rule id, in words a policy owner can act on.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from escalator.errors import PolicyError, Problem
from escalator.model import HANDOFF_URGENCIES, KEEP, ROUTE, DecisionName, RulesetRef
from escalator.ruleset.catalogue import FACTS, FactSpec, caseless, lookup
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
    size,
    truth_from,
    truth_when,
)
from escalator.ruleset.folder import RulesFolder, read_folder
from escalator.ruleset.messages import (
    BUILTIN_HANDOFF_MESSAGE,
    BUILTIN_IN_PROGRESS_MESSAGE,
    FALLBACK_LANGUAGE,
    LANGUAGE_KEY,
    Messages,
    MessagesField,
    choose,
)
from escalator.ruleset.vocabulary import Vocabulary, vocabulary_problems
from escalator.ruleset.yamlfile import LineDict, load_yaml
from escalator.validators import Exactly

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
MAX_PRIORITY = 1000
# The floor: after at most this many bot failures in a row, some rule must hand over.
FLOOR_MAX_FALLBACK_STREAK = 5
FLOOR_DOC = "see README 'The floor'"
MAX_NESTING = 16
# The budget of every rule set, from any source (folder at start, reload, inline): what
# the rules may cost is bounded before anything is expanded or compiled. The compiler
# adds the engine's share (escalator.ruleset.compiler). The default rules use lists of 2
# values at most and 50 condition parts in all.
MAX_LIST_VALUES = 100
MAX_CONDITION_PARTS = 5_000

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


@dataclass(frozen=True)
class Outcome:
    """What a rule (or the default) decides, and how to hand over when it routes to a person."""

    decision: DecisionName
    queue: str | None = None
    urgency: str | None = None  # one of escalator.model.HANDOFF_URGENCIES
    customer_message: Messages | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as written (`urgency` also when written as the old `priority`, the
        message as {language: text}), without the parts left out."""
        written = {"decision": self.decision, "queue": self.queue, "urgency": self.urgency,
                   "customer_message": None if self.customer_message is None
                   else self.customer_message.as_written()}
        return {k: v for k, v in written.items() if v is not None}


@dataclass(frozen=True)
class Rule:
    """One rule: when its condition holds, it proposes its outcome with its priority."""

    id: str
    description: str
    priority: int
    when: Condition
    then: Outcome
    file: str
    line: int


@dataclass(frozen=True)
class RuleSet:
    """A loaded, validated rule set; rules are in file order (files sorted by name)."""

    name: str
    version: str
    digest: str
    default: Outcome
    rules: tuple[Rule, ...]
    source: Path = field(compare=False)
    # What does not stop the set from loading but a policy owner should look at.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    # The language of plain-text messages, and of any message without the customer's.
    language: str = FALLBACK_LANGUAGE
    # What a conversation already with a person is told (None: the built-in sentence).
    in_progress: Messages | None = None

    def ref(self) -> RulesetRef:
        """Which rule set this is, for decisions and logs."""
        return RulesetRef(self.name, self.version, self.digest)

    def customer_message(self, messages: Messages | None, language: str) -> str:
        """What a handoff with these messages (a rule's, or None) tells a customer writing
        `language` (see escalator.ruleset.messages for the order tried)."""
        return choose(language, self.language, messages, self.default.customer_message,
                      BUILTIN_HANDOFF_MESSAGE)

    def in_progress_message(self, language: str) -> str:
        """What each turn of a conversation already with a person tells the customer."""
        return choose(language, self.language, self.in_progress, BUILTIN_IN_PROGRESS_MESSAGE)

    def describe(self) -> dict[str, Any]:
        """The rule set as JSON for GET /v1/ruleset."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "default_language": self.language,
            "handoff_in_progress": {"customer_message": (
                self.in_progress or BUILTIN_IN_PROGRESS_MESSAGE).as_written()},
            "default": self.default.as_dict(),
            "rules": [
                {"id": r.id, "description": r.description, "priority": r.priority,
                 "when": r.when.as_written(), "then": r.then.as_dict()}
                for r in self.rules
            ],
        }


# ---------------------------------------------------------------------------- schemas
# Error messages are completed as "'<key>' <message>", so they read as plain sentences.

def _text(required: bool = False, max_length: int = 2000, **kwargs: Any) -> fields.String:
    return fields.String(
        required=required,
        validate=validate.Length(min=1, max=max_length,
                                 error=f"must be between 1 and {max_length} characters"),
        error_messages={"required": "is missing", "invalid": "must be text (put it in quotes)",
                        "null": "is empty"},
        **kwargs,
    )


_URGENCY_ERROR = "must be one of: " + ", ".join(HANDOFF_URGENCIES)
# `priority` under then/default is what `urgency` was called before it was told apart from
# a rule's priority (its rank): still read, with a warning.
OLD_URGENCY = "priority"


class OutcomeSchema(Schema):
    """`then:` of a rule, and the set's `default:`."""

    OLD_NAMES = (OLD_URGENCY,)

    decision = fields.String(
        required=True,
        validate=validate.OneOf([ROUTE, KEEP], error=f"must be {ROUTE} or {KEEP}"),
        error_messages={"required": f"is missing (write {ROUTE} or {KEEP})",
                        "invalid": f"must be {ROUTE} or {KEEP}", "null": "is empty"},
    )
    queue = fields.String(
        validate=Exactly(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                                 error="must be a queue name: letters, digits, - _ . :"),
        error_messages={"invalid": "must be text", "null": "is empty"},
    )
    urgency = fields.String(
        validate=validate.OneOf(HANDOFF_URGENCIES, error=_URGENCY_ERROR),
        error_messages={"invalid": _URGENCY_ERROR, "null": "is empty"},
    )
    priority = fields.String(
        validate=validate.OneOf(HANDOFF_URGENCIES, error=_URGENCY_ERROR),
        error_messages={"invalid": _URGENCY_ERROR, "null": "is empty"},
    )
    customer_message = MessagesField(error_messages={"null": "is empty"})

    @validates_schema
    def _one_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "urgency" in data and OLD_URGENCY in data:
            raise ValidationError("is the old name of 'urgency'; write only urgency",
                                  OLD_URGENCY)

    @post_load
    def _new_name(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if OLD_URGENCY in data:
            data["urgency"] = data.pop(OLD_URGENCY)
        return data


class RuleSchema(Schema):
    """One entry of `rules:`; `when` is checked by the condition parser."""

    id = fields.String(
        required=True,
        validate=Exactly(
            RULE_ID_PATTERN,
            error="must be 1-64 lower-case letters, digits and dashes, "
                  "starting with a letter or digit (e.g. explicit-human-request)"),
        error_messages={"required": "is missing", "invalid": "must be text", "null": "is empty"},
    )
    description = _text(required=True, max_length=500)
    priority = fields.Integer(
        required=True, strict=True,
        validate=validate.Range(min=0, max=MAX_PRIORITY,
                                error=f"must be a whole number from 0 to {MAX_PRIORITY}"),
        error_messages={"required": f"is missing (a whole number from 0 to {MAX_PRIORITY}; "
                                    "higher wins)",
                        "invalid": f"must be a whole number from 0 to {MAX_PRIORITY}",
                        "null": "is empty"},
    )
    when = fields.Raw(required=True, error_messages={"required": "is missing", "null": "is empty"})
    then = fields.Nested(OutcomeSchema, required=True,
                         error_messages={"required": "is missing", "null": "is empty"})


class InProgressSchema(Schema):
    """`handoff_in_progress:`: what a conversation already with a person is told."""

    customer_message = MessagesField(required=True, error_messages={
        "required": "is missing", "null": "is empty"})


class RuleFileSchema(Schema):
    """A rule file's top level; `rules` entries are checked one by one by RuleSchema."""

    ruleset = fields.String(
        validate=Exactly(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                 error="must be a short name: letters, digits, - _ ."),
        error_messages={"invalid": "must be text", "null": "is empty"},
    )
    version = _text(max_length=64)
    default_language = fields.String(
        validate=Exactly(LANGUAGE_KEY.pattern, error="must be a lower-case language code "
                                                     "such as en, es, de, fr, pt"),
        error_messages={"invalid": "must be a language code such as en", "null": "is empty"},
    )
    default = fields.Nested(OutcomeSchema, error_messages={"null": "is empty"})
    handoff_in_progress = fields.Nested(InProgressSchema, error_messages={"null": "is empty"})
    rules = fields.List(fields.Raw(), error_messages={
        "invalid": "must be a list of rules (each starting with '- id: ...')", "null": "is empty"})


_SCHEMA_MESSAGES = {
    "Unknown field.": "unknown key",
    "Invalid input type.": "must be a mapping (key: value lines)",
}


def _schema_problems(error: ValidationError, data: Any, file: str, rule: str | None,
                     schema: type[Schema], prefix: str = "") -> list[Problem]:
    """Turn marshmallow's nested messages into located, plain-language problems."""
    problems: list[Problem] = []
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    _walk_messages(messages, data, file, rule, schema, prefix, problems)
    return sorted(problems, key=lambda p: p.line or 0)


def _walk_messages(messages: dict[str, Any], data: Any, file: str, rule: str | None,
                   schema: type[Schema] | None, prefix: str, out: list[Problem]) -> None:
    base_line = getattr(data, "line", None)
    # Old names still read are not offered (`priority` for a handoff's urgency).
    allowed = sorted(name for name in schema().fields
                     if name not in getattr(schema, "OLD_NAMES", ())) if schema is not None else []
    for key, value in messages.items():
        where = data.line_of_key(key) if isinstance(data, LineDict) else base_line
        if isinstance(value, dict):
            child = data.get(key) if isinstance(data, dict) else None
            nested = schema().fields.get(key) if schema is not None else None
            child_schema = getattr(nested, "schema", None)
            _walk_messages(value, child, file, rule,
                           type(child_schema) if child_schema is not None else None,
                           f"{prefix}{key}.", out)
            continue
        for text in value:
            name = prefix[:-1] if key == "_schema" else f"{prefix}{key}"
            text = _SCHEMA_MESSAGES.get(text, text)
            if text == "unknown key":
                hint = _did_you_mean(key, allowed)
                message = f"unknown key '{name}'{hint}; allowed here: {', '.join(allowed)}"
            else:
                message = f"'{name}' {text}" if name else text
            out.append(Problem(file, where, message, rule=rule))


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    key, colon, value = str(word).partition(":")
    if colon and key in choices:
        # `{fact:x}` is one key "fact:x" to YAML: the space after the colon is missing.
        return f" (write '{key}: {value}', with a space after the colon)"
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


# ---------------------------------------------------------------------------- conditions

@dataclass
class _Where:
    """Where a condition is, for problems."""

    file: str
    rule: str | None
    problems: list[Problem]

    def add(self, line: int | None, message: str, limit: str | None = None) -> None:
        self.problems.append(Problem(self.file, line, message, rule=self.rule, limit=limit))


_EXAMPLE = "{fact: frustration.mean, gte: 0.6}"


def parse_condition(node: Any, where: _Where, line: int | None, depth: int = 0) -> Condition | None:
    """A typed condition from YAML, or None after recording why it is wrong."""
    if depth > MAX_NESTING:
        where.add(line, f"conditions are nested more than {MAX_NESTING} levels deep; simplify")
        return None
    if not isinstance(node, dict):
        where.add(line, f"a condition must be a mapping such as {_EXAMPLE}, "
                        f"or all:/any:/not: (found {_shown(node)})")
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
                            f"'fact:', e.g. {_EXAMPLE}")
            return None
        for key in (key for key in others if key not in OPERATORS):
            hint = _did_you_mean(str(key), known)
            where.add(_key_line(node, key),
                      f"unknown key '{key}' in a condition{hint}; a condition is either "
                      f"{_EXAMPLE} or all:/any:/not:")
        return None
    if len(groups) != 1:
        where.add(line, "a condition must have exactly one of all, any or not"
                        if groups else f"empty condition; write e.g. {_EXAMPLE}")
        return None
    key = groups[0]
    body = node[key]
    body_line = _key_line(node, key)
    if key == "not":
        if isinstance(body, list):
            where.add(body_line, "'not' takes a single condition; to negate several, put them "
                                 "under all or any inside the not")
            return None
        inner = parse_condition(body, where, body_line, depth + 1)
        return None if inner is None else Not(inner, line)
    if not isinstance(body, list) or not body:
        where.add(body_line, f"'{key}' needs a list of at least one condition "
                             f"(e.g. {key}: [{_EXAMPLE}])")
        return None
    items = [parse_condition(item, where, getattr(item, "line", body_line), depth + 1)
             for item in body]
    if any(item is None for item in items):
        return None
    parsed = tuple(item for item in items if item is not None)
    return AllOf(parsed, line) if key == "all" else AnyOf(parsed, line)


def _key_line(node: Any, key: str) -> int | None:
    if isinstance(node, LineDict):
        return node.line_of_key(key)
    return getattr(node, "line", None)


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


def _parse_leaf(node: dict[str, Any], where: _Where, line: int | None) -> Leaf | None:
    name = node["fact"]
    ops = [key for key in node if key != "fact"]
    unknown = [key for key in ops if key not in OPERATORS]
    ok = True
    for key in unknown:
        hint = _did_you_mean(str(key), OPERATORS)
        where.add(_key_line(node, key), f"unknown operator '{key}'{hint}; operators are: "
                                        + ", ".join(OPERATORS))
        ok = False
    known = [key for key in ops if key in OPERATORS]
    if not isinstance(name, str) or not name:
        where.add(line, f"'fact' must be the name of a fact (found {_shown(name)})")
        return None
    spec = lookup(name)
    if spec is None:
        hint = _did_you_mean(name, FACTS)
        where.add(line, f"unknown fact '{name}'{hint or ''}; facts are listed in the README "
                        "(context values are written context.<key>)")
        return None
    if not ok:
        return None
    if not known:
        where.add(line, f"the condition on '{name}' has no comparison; add one of "
                        + ", ".join(OPERATORS_BY_TYPE[spec.type]))
        return None
    if len(known) > 1:
        where.add(line, f"the condition on '{name}' has {len(known)} comparisons "
                        f"({', '.join(known)}); write each as its own condition under all")
        return None
    op: Operator = known[0]
    allowed = OPERATORS_BY_TYPE[spec.type]
    if op not in allowed:
        where.add(line, f"'{op}' cannot be used with '{name}', which is {_a_type(spec)}; "
                        f"use {', '.join(allowed)}")
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


def _check_value(spec: FactSpec, op: Operator, raw: Any, where: _Where,
                 line: int | None) -> Constant | tuple[Constant, ...] | None:
    """The constant of a comparison if it suits the fact's type and range, else None."""
    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw:
            where.add(line, f"'{op}' needs a list of at least one value, "
                            f"e.g. {op}: [a, b] (found {_shown(raw)})")
            return None
        if len(raw) > MAX_LIST_VALUES:
            where.add(line, f"this '{op}' list has {len(raw):,} values; at most "
                            f"{MAX_LIST_VALUES} are allowed: split it, or compare with "
                            "lt/gt when the values are numbers in a range",
                      limit="list_values")
            return None
        checked = [_check_constant(spec, op, item, where, line) for item in raw]
        if any(c is None for c in checked):
            return None
        return tuple(c for c in checked if c is not None)
    return _check_constant(spec, op, raw, where, line)


def _check_constant(spec: FactSpec, op: Operator, raw: Any, where: _Where,
                    line: int | None) -> Constant | None:
    name, type_ = spec.name, spec.type
    kind = kind_of(raw)
    if kind == "number" and not math.isfinite(raw):
        where.add(line, f"'{op}' on '{name}' must be a finite number (found {raw})")
        return None
    if type_ in ("number", "integer") or (type_ == "scalar" and op in ORDERING):
        if kind != "number":
            quoted = " (without quotes)" if kind == "string" else ""
            where.add(line, f"'{name}' is {_a_type(spec)}, so '{op}' needs a number{quoted} "
                            f"(found {_shown(raw)})")
            return None
        if type_ == "integer":
            if isinstance(raw, float) and not raw.is_integer():
                where.add(line, f"'{name}' is a whole number, so compare it with a whole number "
                                f"(found {raw})")
                return None
            raw = int(raw)
        if isinstance(raw, int) and not -_INT64 <= raw < _INT64:
            where.add(line, f"the number {raw} is too large")
            return None
        if not _in_range(spec, op, raw, where, line):
            return None
        return raw  # type: ignore[no-any-return]
    if type_ == "boolean" or op == "is":
        if kind != "boolean":
            hint = " (write true or false without quotes)" if kind == "string" else ""
            where.add(line, f"'{op}' on '{name}' needs true or false{hint} "
                            f"(found {_shown(raw)})")
            return None
        return raw  # type: ignore[no-any-return]
    if type_ in ("string", "labels"):
        if kind != "string":
            where.add(line, f"'{name}' is {_a_type(spec)}, so '{op}' needs text "
                            f"(put it in quotes; found {_shown(raw)})")
            return None
        return raw  # type: ignore[no-any-return]
    # scalar (context.<key>) with eq/ne/in/not_in: any text, number or true/false.
    if kind not in ("boolean", "number", "string"):
        where.add(line, f"'{op}' on '{name}' needs text, a number or true/false "
                        f"(found {_shown(raw)})")
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and not -_INT64 <= raw < _INT64:
        where.add(line, f"the number {raw} is too large")
        return None
    return raw  # type: ignore[no-any-return]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _in_range(spec: FactSpec, op: Operator, c: float, where: _Where, line: int | None) -> bool:
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
    where.add(line, f"'{spec.name}' {bounds}, so '{op} {_fmt(c)}' {verdict}; check the threshold")
    return False


# ---------------------------------------------------------------------------- loading

@dataclass
class _Header:
    """`ruleset`, `version` and `default`, each declared once (or identically) across files."""

    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def declare(self, key: str, value: Any, file: str, line: int | None,
                problems: list[Problem]) -> None:
        if key not in self.values:
            self.values[key] = value
            self.where[key] = (file, line)
        elif self.values[key] != value:
            first_file, first_line = self.where[key]
            at = f"{first_file} line {first_line}" if first_line else first_file
            problems.append(Problem(file, line, f"'{key}' is declared differently in {at}; "
                                                "declare it once for the whole rule set"))


def load_ruleset(source: Path | RulesFolder, vocabulary: Vocabulary | None = None
                 ) -> RuleSet:
    """Load and validate every rule file in a folder (or in a read of one); PolicyError
    lists all problems.

    With `vocabulary` (the lexicons' labels), labels no turn can carry are refused too.
    """
    folder = source if isinstance(source, RulesFolder) else read_folder(Path(source))
    directory = folder.path
    if not directory.is_dir():
        raise PolicyError([Problem(str(directory), None,
                                   "is not a folder of rule files (*.yaml)")])
    problems: list[Problem] = folder.problems()
    files = folder.rule_files()
    if not files and not any(p.file == str(directory) for p in problems):
        problems.append(Problem(str(directory), None, "there are no rule files (*.yaml) here"))
    if not files:
        raise PolicyError(problems)

    header = _Header()
    rules: list[Rule] = []
    deprecated: list[Problem] = []
    # Where each customer message is written (for warnings): "default",
    # "handoff_in_progress" or a rule id -> (file, line).
    message_lines: dict[str, tuple[str, int | None]] = {}
    first_use: dict[str, Rule] = {}
    # A rule file refused unread may hold the rule the floor is missing.
    unreadable = sum(1 for p in problems if p.file.endswith(".yaml"))
    for name in files:
        try:
            document = load_yaml(folder.files[name], display_name=name)
        except PolicyError as exc:
            problems.extend(exc.problems)
            unreadable += 1
            continue
        if document is None:
            problems.append(Problem(name, None, "the file is empty"))
            continue
        if not isinstance(document, dict):
            problems.append(Problem(name, getattr(document, "line", 1),
                                    "a rule file must be a mapping with ruleset, version, "
                                    "default and rules"))
            unreadable += 1
            continue
        try:
            top = RuleFileSchema().load(document)
        except ValidationError as exc:
            problems.extend(_schema_problems(exc, document, name, None, RuleFileSchema))
            top = _valid_part(document, exc)
            unreadable += 1 if "rules" in exc.messages else 0
        if "default" in top:
            deprecated.extend(_old_urgency(document.get("default"), "default", name, None))
        for key in ("ruleset", "version", "default_language", "default", "handoff_in_progress"):
            if key in top:
                value = (Outcome(**top[key]) if key == "default"
                         else top[key]["customer_message"] if key == "handoff_in_progress"
                         else top[key])
                header.declare(key, value, name, _key_line(document, key), problems)
                if key in ("default", "handoff_in_progress"):
                    message_lines[key] = (name, _key_line(document.get(key),
                                                          "customer_message"))
        for raw in top.get("rules") or []:
            rule = _parse_rule(raw, name, document, problems, deprecated)
            if rule is not None and rule.then.customer_message is not None:
                message_lines.setdefault(rule.id, (name, _key_line(raw.get("then"),
                                                                   "customer_message")))
            if rule is None:
                unreadable += 1
                continue
            earlier = first_use.get(rule.id)
            if earlier is not None:
                problems.append(Problem(name, rule.line,
                                        f"the rule id '{rule.id}' is already used in "
                                        f"{earlier.file} line {earlier.line}; ids must be unique "
                                        "across the rule set", rule=rule.id))
                continue
            first_use[rule.id] = rule
            rules.append(rule)

    first = files[0]
    for key, example in (("ruleset", "ruleset: default"), ("version", 'version: "2026.11.1"'),
                         ("default", "default: {decision: keep_with_bot, queue: support, "
                                     "urgency: normal, customer_message: ...}")):
        if key not in header.values:
            problems.append(Problem(first, None, f"no file declares '{key}'; add e.g. {example}"))
    # Plain-text messages are in the rule set's language, known only now.
    language: str = header.values.get("default_language", FALLBACK_LANGUAGE)
    rules = [_resolved(rule, language) for rule in rules]
    default: Outcome | None = header.values.get("default")
    if default is not None and default.customer_message is not None:
        default = replace(default, customer_message=default.customer_message.resolved(language))
    in_progress: Messages | None = header.values.get("handoff_in_progress")
    if in_progress is not None:
        in_progress = in_progress.resolved(language)
    coverage = _language_coverage(rules, default, in_progress, message_lines)
    if default is not None:
        default = _with_builtin_handoff(default)
    floor_file = header.where.get("ruleset", (first, None))[0]
    problems.extend(_budget_problems(rules, floor_file))
    problems.extend(floor_problems(rules, floor_file, unreadable))
    label_problems, label_warnings = vocabulary_problems(rules, vocabulary)
    problems.extend(label_problems)
    warnings = [*deprecated, *coverage, *label_warnings]
    if problems:
        raise PolicyError(problems, warnings)
    assert default is not None
    return RuleSet(
        name=header.values["ruleset"],
        version=header.values["version"],
        digest=folder.digest,
        default=default,
        rules=tuple(rules),
        source=directory.resolve(),
        warnings=tuple(warnings),
        language=language,
        in_progress=in_progress,
    )


def _resolved(rule: Rule, language: str) -> Rule:
    """The rule with a plain-text message given the rule set's language."""
    messages = rule.then.customer_message
    if messages is None:
        return rule
    return replace(rule, then=replace(rule.then, customer_message=messages.resolved(language)))


def _language_coverage(rules: list[Rule], default: Outcome | None, in_progress: Messages | None,
                       lines: dict[str, tuple[str, int | None]]) -> list[Problem]:
    """Warnings for the customer messages that lack a language some other message of the
    rule set has: a customer writing it gets another message than the one meant."""
    written: list[tuple[str, str, Messages, str | None]] = []
    if default is not None and default.customer_message is not None:
        written.append(("default", "default.customer_message", default.customer_message, None))
    if in_progress is not None:
        written.append(("handoff_in_progress", "handoff_in_progress.customer_message",
                        in_progress, None))
    written += [(rule.id, "then.customer_message", rule.then.customer_message, rule.id)
                for rule in rules
                if rule.then.decision == ROUTE and rule.then.customer_message is not None]
    covered = frozenset().union(*(messages.languages for _, _, messages, _ in written))
    warnings: list[Problem] = []
    for key, what, messages, rule in written:
        missing = sorted(covered - messages.languages)
        if not missing:
            continue
        file, line = lines.get(key, ("", None))
        warnings.append(Problem(
            file, line, f"'{what}' has no text in {', '.join(missing)}, which other messages "
            "of the rule set have; a customer writing one of them is told another message in "
            "their language (the default's, else a built-in one), or this one only where "
            "there is none", rule=rule))
    return warnings


def _budget_problems(rules: list[Rule], file: str) -> list[Problem]:
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
                                f"{parts[largest]:,}", limit="condition_parts")]


def _valid_part(document: dict[str, Any], error: ValidationError) -> dict[str, Any]:
    """The top-level keys that passed validation, so the rest of the file is still checked."""
    bad = set(error.messages) if isinstance(error.messages, dict) else set(document)
    valid = error.valid_data if isinstance(error.valid_data, dict) else {}
    return {k: v for k, v in valid.items() if k not in bad}


def _old_urgency(outcome: Any, where: str, file: str, rule: str | None) -> list[Problem]:
    """A warning if `then` or `default` still writes the urgency as `priority`."""
    if not isinstance(outcome, dict) or OLD_URGENCY not in outcome or "urgency" in outcome:
        return []
    value = outcome[OLD_URGENCY]
    example = value if value in HANDOFF_URGENCIES else "high"
    return [Problem(file, _key_line(outcome, OLD_URGENCY),
                    f"'{where}.priority' is the old name of 'urgency' (how urgently a person "
                    f"should take the handoff); write 'urgency: {example}'. A rule's own "
                    "'priority' is something else: its rank among the rules, a number",
                    rule=rule)]


def _parse_rule(raw: Any, file: str, document: Any, problems: list[Problem],
                deprecated: list[Problem]) -> Rule | None:
    """One rule, or None after recording its problems.

    A rule with problems outside what decides when and how it acts (its description, a
    queue on a keep_with_bot rule) is still returned, with its problems recorded: the
    floor check must see it, or a floor violation would show only once those are fixed.
    """
    line = getattr(raw, "line", None) or _key_line(document, "rules")
    if not isinstance(raw, dict):
        problems.append(Problem(file, line, "each entry under 'rules' must be a rule "
                                            "(id, description, priority, when, then)"))
        return None
    rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    ok = True
    try:
        data = RuleSchema().load(raw)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, raw, file, rule_id, RuleSchema))
        data = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        ok = False
    where = _Where(file, rule_id, problems)
    when: Condition | None = None
    if "when" in raw:
        when = parse_condition(raw["when"], where, _key_line(raw, "when"))
    then = data.get("then")
    written = raw["then"] if isinstance(raw.get("then"), dict) else {}
    if then is not None and then.get("decision") == KEEP:
        for key in ("queue", "urgency", OLD_URGENCY, "customer_message"):
            if key in written:
                where.add(_key_line(raw.get("then"), key),
                          f"a keep_with_bot rule does not hand over, so '{key}' has no effect; "
                          "remove it")
                ok = False
    else:
        deprecated.extend(_old_urgency(written, "then", file, rule_id))
    if when is None:
        return None
    assert line is not None
    if ok:
        return Rule(id=data["id"], description=data["description"], priority=data["priority"],
                    when=when, then=Outcome(**then), file=file, line=line)
    # Enough of it for the floor check (the set is refused anyway: problems were recorded).
    decision = raw["then"].get("decision") if isinstance(raw.get("then"), dict) else None
    priority = data.get("priority")
    if rule_id is None or priority is None or decision not in (ROUTE, KEEP):
        return None
    return Rule(id=rule_id, description=data.get("description", ""), priority=priority,
                when=when, then=Outcome(decision), file=file, line=line)


# What a handoff says when neither the rule nor the set's default does: every route to a
# person names a queue and an urgency and gives the bot a sentence (DESIGN principle 2),
# without making a policy owner spell them out in every rule.
BUILTIN_HANDOFF = Outcome(ROUTE, queue="support", urgency="normal",
                          customer_message=BUILTIN_HANDOFF_MESSAGE)


def _with_builtin_handoff(default: Outcome) -> Outcome:
    """The default with the built-in queue, urgency and customer message filled in."""
    return replace(
        default,
        queue=default.queue or BUILTIN_HANDOFF.queue,
        urgency=default.urgency or BUILTIN_HANDOFF.urgency,
        customer_message=default.customer_message or BUILTIN_HANDOFF.customer_message,
    )


# ---------------------------------------------------------------------------- the floor

def floor_problems(rules: list[Rule], file: str, unreadable: int = 0) -> list[Problem]:
    """Problems with the floor (DESIGN principle 1); empty when a way out always exists.

    (a) Some route_to_human rule is certainly true whenever requested_human is true, and
    (b) some route_to_human rule is certainly true whenever loop.fallback_streak >= 5 (so a
    cap of at most 5 failures); "certainly" means whatever the other facts are.
    (c) No keep_with_bot rule that could also match then has a strictly higher priority
    than the best such rule (equal priorities go to route_to_human).
    """
    problems: list[Problem] = []
    later = (f" ({unreadable} rule(s) could not be read; the missing rule may be among them)"
             if unreadable else "")
    streak = "loop.fallback_streak"
    checks: tuple[tuple[Callable[[Rule], bool], Callable[[Rule], bool], str, str], ...] = (
        (lambda rule: truth_when(rule.when, "requested_human", True) is True,
         lambda rule: truth_when(rule.when, "requested_human", True) is not False,
         "routes an explicit request for a person (requested_human is true) to a person",
         "honours an explicit request for a person"),
        # Every streak from the cap up, however large: reasoned over segments of values.
        (lambda rule: all(truth is True for _, truth in
                          truth_from(rule.when, streak, FLOOR_MAX_FALLBACK_STREAK)),
         lambda rule: any(truth is not False for _, truth in
                          truth_from(rule.when, streak, FLOOR_MAX_FALLBACK_STREAK)),
         "hands the conversation to a person after at most "
         f"{FLOOR_MAX_FALLBACK_STREAK} bot failures in a row "
         f"(e.g. loop.fallback_streak gte {FLOOR_MAX_FALLBACK_STREAK} or less)",
         "caps consecutive bot failures"),
    )
    for always, possible, what, role in checks:
        floor = [r for r in rules if r.then.decision == ROUTE and always(r)]
        if not floor:
            problems.append(Problem(file, None, f"the rule set has no rule that {what}; add one "
                                                f"({FLOOR_DOC}){later}"))
            continue
        best = max(floor, key=lambda r: r.priority)
        for rule in rules:
            if rule.then.decision == KEEP and rule.priority > best.priority and possible(rule):
                problems.append(Problem(
                    rule.file, rule.line,
                    f"this keep_with_bot rule (priority {rule.priority}) could override "
                    f"'{best.id}' (priority {best.priority}), the rule that {role}; give it a "
                    f"priority of {best.priority} or less, or make it not apply then "
                    f"({FLOOR_DOC})", rule=rule.id))
    return problems
