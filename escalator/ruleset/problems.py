"""What is wrong with a policy file, said so that a policy owner can act on it.

`validation_problems` is the one way a marshmallow ValidationError (or its messages)
becomes located problems in plain words, code "schema": the rule files, the lexicons and
the rule tests all go through it, so an unknown key, a missing one or a value of the
wrong kind reads the same in every file. `did_you_mean` is the hint they all give.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields

from escalator.errors import Problem
from escalator.ruleset.yamlfile import LineDict, line_of

UNKNOWN_KEY = "Unknown field."

# marshmallow's own messages, as the end of a sentence that starts with the key's name.
# Schemas may give their own ("is missing (a whole number from 0 to 1000)"): those are
# written to follow the name already, and pass unchanged.
_PLAIN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words) for pattern, words in (
        (r"Missing data for required field\.", "is missing"),
        (r"Field may not be null\.", "is empty"),
        (r"Invalid input type\.|Not a valid mapping type\.|Invalid type\.",
         "must be a mapping (key: value lines)"),
        (r"Not a valid string\.", "must be text (put it in quotes)"),
        (r"Not a valid utf-8 string\.", "must be UTF-8 text"),
        (r"Not a valid integer\.", "must be a whole number"),
        (r"Not a valid number\.", "must be a number"),
        (r"Special numeric values \(nan or infinity\) are not permitted\.",
         "must be a finite number"),
        (r"Not a valid boolean\.", "must be true or false"),
        (r"Not a valid list\.", "must be a list (one '- ' line per item)"),
        (r"Not a valid datetime\.", "must be a date and time such as 2026-11-04T10:00:00Z"),
        (r"String does not match expected pattern\.|Invalid value\.", "is not valid here"),
        (r"Shorter than minimum length (\d+)\.", r"must have at least \1 (characters or items)"),
        (r"Longer than maximum length (\d+)\.", r"must have at most \1 (characters or items)"),
        (r"Length must be (\d+)\.", r"must have exactly \1 (characters or items)"),
        (r"Length must be between (\d+) and (\d+)\.",
         r"must have from \1 to \2 (characters or items)"),
        (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.",
         r"must be from \1 to \2"),
        (r"Must be one of: (.*)\.", r"must be one of: \1"),
    ))
# Range's bounds, alone or together ("Must be greater than 0 and less than or equal to 1.").
_BOUND = re.compile(r"(greater|less) than( or equal to)? (\S+?)\.?$")
_BOUNDS = {("greater", False): "more than", ("greater", True): "at least",
           ("less", False): "less than", ("less", True): "at most"}


def validation_problems(error: ValidationError | Mapping[Any, Any] | list[Any], data: Any,
                        file: str, *, schema: Schema | type[Schema] | None = None,
                        rule: str | None = None, lead: str = "") -> list[Problem]:
    """marshmallow's nested messages about `data` (as read from YAML) as problems in plain
    words, each at the line of the key it is about, sorted by line.

    `schema` (the one that loaded `data`) lets an unknown key be answered with the keys
    allowed there and a "did you mean"; `lead` starts every message (e.g. "test 'x': ")."""
    messages = error.messages if isinstance(error, ValidationError) else error
    if not isinstance(messages, Mapping):
        messages = {"_schema": messages}
    shape = schema() if isinstance(schema, type) else schema
    out: list[Problem] = []
    _walk(messages, data, shape, "", line_of(data), _Target(file, rule, lead, out))
    return sorted(out, key=lambda p: p.line or 0)


class _Target:
    """Where the walk's problems go, and what each of them shares."""

    def __init__(self, file: str, rule: str | None, lead: str, out: list[Problem]) -> None:
        self.file, self.rule, self.lead, self.out = file, rule, lead, out

    def add(self, line: int | None, message: str) -> None:
        self.out.append(Problem(self.file, line, self.lead + message, rule=self.rule,
                                code="schema"))


def _walk(messages: Mapping[Any, Any], data: Any, shape: Any, path: str, line: int | None,
          target: _Target) -> None:
    """Messages keyed like `data` (a mapping or list read from YAML), whose loader is
    `shape` (a Schema, a field, or None when unknown)."""
    for key, value in messages.items():
        child, child_path, child_line, child_shape = _step(data, shape, key, path, line)
        if isinstance(value, Mapping):
            _walk(value, child, child_shape, child_path, child_line, target)
            continue
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, Mapping):  # a list of nested messages (many=True)
                _walk(text, child, child_shape, child_path, child_line, target)
            elif text != UNKNOWN_KEY or key in ("_schema", "key", "value"):
                words = _plain(str(text))
                target.add(child_line, f"'{child_path}' {words}" if child_path else words)
            else:
                allowed = _allowed(shape)
                hint = did_you_mean(str(key), allowed)
                listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
                target.add(child_line, f"unknown key '{child_path}'{hint}{listed}")


def _step(data: Any, shape: Any, key: Any, path: str, line: int | None
          ) -> tuple[Any, str, int | None, Any]:
    """One level down, to `key`: its value, the name it is shown by, its line, its shape.

    A list item or mapping with a line of its own is named from there (the line locates
    it); a dict field's "key" and "value" stay on the entry they are about."""
    shape = _inner(shape)
    if key in ("_schema", "key", "value"):
        sub = (shape.value_field if key == "value" else shape.key_field
               ) if isinstance(shape, fields.Dict) else shape
        return data, path, line, sub
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        item = data[key]
        sub = shape.inner if isinstance(shape, fields.List) else None
        own = line_of(item)
        return item, "" if own else f"{path}[{key}]", own or line, sub
    name = f"{path}.{key}" if path else str(key)
    # A key not written (a missing one) is placed at the start of its mapping.
    where = data.line_of_key(key) if isinstance(data, LineDict) else line_of(data, line)
    child = data.get(key) if isinstance(data, Mapping) else None
    if isinstance(shape, Schema):
        sub = shape.fields.get(key)
    elif isinstance(shape, fields.Dict):
        sub = shape  # {entry: {"key"/"value": ...}}: the entry's messages come next
    else:
        sub = None
    return child, name, where, sub


def _inner(shape: Any) -> Any:
    """A Nested field as the schema it nests."""
    return shape.schema if isinstance(shape, fields.Nested) else shape


def _allowed(shape: Any) -> list[str]:
    """The keys a schema takes, old names still read left out (they are not offered)."""
    shape = _inner(shape)
    if not isinstance(shape, Schema):
        return []
    old = getattr(shape, "OLD_NAMES", ())
    return sorted(name for name in shape.fields if name not in old)


def _plain(text: str) -> str:
    """marshmallow's own message in plain words; any other as it is."""
    for pattern, words in _PLAIN:
        if pattern.fullmatch(text):
            return pattern.sub(words, text)
    if text.startswith("Must be ") and (" than " in text):
        bounds = [_BOUND.search(part) for part in text[len("Must be "):].split(" and ")]
        if all(bounds):
            return "must be " + " and ".join(
                f"{_BOUNDS[(b.group(1), bool(b.group(2)))]} {b.group(3)}"
                for b in bounds if b is not None)
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for the closest choice, or "" when none is close."""
    choices = list(choices)
    key, colon, value = str(word).partition(":")
    if colon and key in choices:
        # `{fact:x}` is one key "fact:x" to YAML: the space after the colon is missing.
        return f" (write '{key}: {value}', with a space after the colon)"
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"
