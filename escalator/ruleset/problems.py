"""What is wrong with a policy file, said so that a policy owner can act on it: marshmallow's
messages as located problems in plain words, and "did you mean" hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from marshmallow import Schema, ValidationError

from escalator.errors import Problem
from escalator.ruleset.yamlfile import LineDict

_SCHEMA_MESSAGES = {
    "Unknown field.": "unknown key",
    "Invalid input type.": "must be a mapping (key: value lines)",
}


def schema_problems(error: ValidationError, data: Any, file: str, rule: str | None,
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
                hint = did_you_mean(key, allowed)
                message = f"unknown key '{name}'{hint}; allowed here: {', '.join(allowed)}"
            else:
                message = f"'{name}' {text}" if name else text
            out.append(Problem(file, where, message, rule=rule))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    key, colon, value = str(word).partition(":")
    if colon and key in choices:
        # `{fact:x}` is one key "fact:x" to YAML: the space after the colon is missing.
        return f" (write '{key}: {value}', with a space after the colon)"
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"
