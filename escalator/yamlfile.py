"""YAML loading that remembers line numbers, so errors can point at the line to fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from escalator.errors import PolicyError, Problem


class LineDict(dict[str, Any]):
    """A mapping read from YAML; `line` is the 1-based line where it starts."""

    line: int = 0
    # 1-based line of each key, so an error about one key can point at that key's line.
    key_lines: dict[str, int]

    def line_of_key(self, key: str) -> int:
        """The line a key was written on, or the mapping's own line."""
        key_lines: dict[str, int] = getattr(self, "key_lines", {})
        return key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence read from YAML; `line` is the 1-based line where it starts."""

    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


# YAML 1.1 (PyYAML) reads `1e-5` and `2.5e3` as strings: it wants a dot and a signed
# exponent. Policy owners write thresholds in the short form, so read those as floats too.
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str):
            result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a YAML mapping or sequence started on, if known."""
    return getattr(value, "line", default)


def load_yaml(path: Path, display_name: str | None = None) -> Any:
    """Parse one YAML file safely; a syntax error becomes a PolicyError with its line."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(name, None, f"cannot read file: {exc}")]) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([Problem(name, line, f"invalid YAML: {problem}")]) from exc
