"""YAML loading that remembers line numbers, so errors can point at the line to fix.

Limits first: a file may nest lists and mappings at most MAX_YAML_DEPTH levels deep, and
may hold at most MAX_YAML_NODES values once every alias (`*name`) is replaced by what its
anchor (`&name`) holds. Anchors are allowed (a shared list of intents is a fair use), and
counted as many times as they are used: a few lines of aliases of aliases would otherwise
stand for billions of values. Mapping keys must be plain text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

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


# The default rule files nest at most 9 levels and hold at most 1,137 values (lexicons);
# conditions may nest 16 all/any levels, two YAML levels each, under a rule's 4.
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 20_000
KEY_PROBLEM = "a key must be plain text, not a list or a mapping"
DEPTH_PROBLEM = (f"lists and mappings are nested more than {MAX_YAML_DEPTH} levels deep "
                 "here; simplify")


class YamlLimitError(yaml.YAMLError):
    """A file over one of the limits above; `limit` names which."""

    def __init__(self, limit: str, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.limit = limit
        self.problem = problem
        self.problem_mark = mark


_Mixin: Any = object


class _Limits(_Mixin):  # type: ignore[misc]
    """Refuses deep nesting while composing (PyYAML's composer recurses once per level, so
    a thousand brackets end in a RecursionError) and counts the document's values with
    aliases expanded before building anything from it."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YamlLimitError("yaml_depth", DEPTH_PROBLEM, self.peek_event().start_mark)
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return self.construct_document(node)


class _LineLoader(_Limits, yaml.SafeLoader):
    """All in Python: the parser whose messages explain_yaml_error recognises."""


_FastLoader: Any = _LineLoader
if yaml.__with_libyaml__:  # else PyYAML was built without libyaml: all in Python
    from yaml._yaml import CParser

    class _CLineLoader(_Limits, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's C scanner and parser under PyYAML's own composer: five times faster
        on the rule files and lexicons, and no quadratic look-ahead on a line of a
        thousand brackets (0.4-1 s in pure Python). A file it cannot parse is parsed
        again by _LineLoader, for an explanation in the words explain_yaml_error knows."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _FastLoader = _CLineLoader


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse a document whose values, aliases expanded, number more than MAX_YAML_NODES,
    or whose anchor holds an alias to itself; linear in the nodes as written.

    Each list and mapping is sized once: an alias is a node already sized (its anchor
    comes first in the document), so the recursion is no deeper than the nesting."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if isinstance(node, yaml.ScalarNode):
            return 1
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in open_nodes:
            raise YamlLimitError("yaml_nodes", "an alias (*name) is used inside the anchor "
                                 "(&name) it refers to", node.start_mark)
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        else:
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
        if total > MAX_YAML_NODES:
            raise YamlLimitError(
                "yaml_nodes", f"this holds more than {MAX_YAML_NODES} values once every "
                              "alias (*name) is replaced by its anchor (&name); use fewer "
                              "aliases or a smaller list", node.start_mark)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


# YAML 1.1 (PyYAML) reads `1e-5` and `2.5e3` as strings: it wants a dot and a signed
# exponent. Policy owners write thresholds in the short form, so read those as floats too.
for _loader in {_LineLoader, _FastLoader}:
    _loader.add_implicit_resolver(
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
        if not isinstance(key_node, yaml.ScalarNode):
            # `? [a, b] : c` or `{[a]: b}`: a list or mapping as a key means nothing here.
            raise yaml.constructor.ConstructorError(
                None, None, KEY_PROBLEM, key_node.start_mark)
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            first = result.key_lines.get(key) if isinstance(key, str) else None
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}"
                + (f" (first on line {first})" if first else ""), key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str):
            result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


for _loader in {_LineLoader, _FastLoader}:
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                            _construct_sequence)


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a YAML mapping or sequence started on, if known."""
    return getattr(value, "line", default)


def key_line(node: Any, key: str) -> int | None:
    """The line `key` was written on in a YAML mapping, else the line the node started on."""
    if isinstance(node, LineDict):
        return node.line_of_key(key)
    return getattr(node, "line", None)


def load_yaml(path: Path | bytes, display_name: str | None = None) -> Any:
    """Parse one YAML file (a path, or its bytes already read) safely; a syntax error
    becomes a PolicyError with its line."""
    name = display_name or str(path)
    try:
        text = (path if isinstance(path, bytes) else path.read_bytes()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(name, None, f"cannot read file: {exc}",
                                   code="file_unreadable")]) from exc
    try:
        return _parse(text)
    except YamlLimitError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise PolicyError([Problem(name, line, exc.problem, code="budget",
                                   limit=exc.limit)]) from None
    except yaml.YAMLError as exc:
        line, message = explain_yaml_error(exc, text)
        raise PolicyError([Problem(name, line, message, code="yaml_syntax")]) from exc
    except (ValueError, OverflowError) as exc:
        # A value PyYAML reads but Python refuses: an integer of 5,000 digits, 2026-13-45.
        reason = str(exc).split(";")[0]
        raise PolicyError([Problem(name, None, f"a value cannot be read ({reason})",
                                   code="yaml_syntax")]) from None


def _parse(text: str) -> Any:
    """The document, read by libyaml when it can; a syntax error as PyYAML's own parser
    words it (libyaml's messages differ, and a file with a mistake is rare enough to be
    read twice)."""
    try:
        return yaml.load(text, Loader=_FastLoader)
    except YamlLimitError:
        raise
    except yaml.YAMLError as exc:
        if _FastLoader is _LineLoader:
            raise
        mark = getattr(exc, "problem_mark", None)
        if getattr(exc, "problem", None) == "exceeded maximum nesting depth":  # libyaml's
            raise YamlLimitError("yaml_depth", DEPTH_PROBLEM, mark) from None
        return yaml.load(text, Loader=_LineLoader)


# ---------------------------------------------------------------------------- syntax errors
# The parser's own words ("mapping values are not allowed here") mean nothing to a policy
# owner. The common mistakes are recognised from the message and the text around it, and
# said in plain words with the line to fix and what to do; anything else keeps the
# parser's words, still with its line and a general hint.

# `key:value` with no space: YAML reads it as one word, not as a key and a value.
_NO_SPACE = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_.-]*):(?![\s:/]|$)(\S*)")
_DASH_NO_SPACE = re.compile(r"^\s*-(?=[A-Za-z_{\[\"'])")
_VALUE_WITH_COLON = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_.-]*):\s+[^\"'{\[].*:\s")
_BRACKETS = {"flow mapping": ("{", "}"), "flow sequence": ("[", "]")}
_GENERAL_HINT = ("check the indentation (spaces only, keys of one mapping lined up), a space "
                 "after each colon, and that quotes and brackets are closed")


def explain_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line to fix and a plain-language explanation with a hint, for a YAML error."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    context = str(getattr(exc, "context", None) or "")
    lines = text.splitlines()
    line = problem_mark.line + 1 if problem_mark is not None else None
    opened = context_mark.line + 1 if context_mark is not None else None

    def source(number: int | None) -> str:
        return lines[number - 1] if number is not None and 0 < number <= len(lines) else ""

    if "'\\t'" in problem or "\t" in problem:
        return line, ("there is a tab here; YAML indents with spaces only: replace the tab "
                      "with spaces")
    if problem == KEY_PROBLEM:
        return line, ("a key here is a list or a mapping (such as '? [a, b]' or '{[a]: b}'); "
                      "keys are plain words, such as 'id' or 'fact'")
    if problem.startswith("duplicate key"):
        key = problem.removeprefix("duplicate key ").split(" (first")[0]
        first = problem.split("first on line ")[1].rstrip(")") if "first on" in problem else ""
        at = f" (first on line {first})" if first else ""
        return line, (f"the key {key} is written twice in the same place{at}; keep one of "
                      "them, or if they belong to different rules, check the indentation "
                      "and the '- ' that starts each rule")
    # A missing space after a colon on this line or the few before it: the commonest cause
    # of "could not find expected ':'" and "mapping values are not allowed here".
    if line is not None:
        for number in range(line, max(1, line - 3, opened or 1) - 1, -1):
            found = _NO_SPACE.match(source(number))
            if found:
                key, rest = found.groups()
                return number, (f"'{key}:{rest}' needs a space after the colon: write "
                                f"'{key}: {rest}'")
            if _DASH_NO_SPACE.match(source(number)):
                return number, ("a list item needs a space after its dash: write '- ' "
                                "(for example '- id: my-rule')")
    if "quoted scalar" in context:
        quote = source(opened)[context_mark.column] if context_mark is not None and \
            context_mark.column < len(source(opened)) else '"'
        return opened, (f"the quote {quote} opened on this line is never closed; add the "
                        f"closing {quote} (and inside '...', write an apostrophe as '')")
    for kind, (left, right) in _BRACKETS.items():
        if kind in context and "expected ','" in problem:
            got = problem.rsplit("but got ", 1)[-1]
            if got == "':'" and line == opened:
                return line, ("a value inside { } or [ ] contains a colon; put that value in "
                              "quotes (for example customer_message: \"Sorry: one moment\")")
            return opened, (f"the '{left}' opened on this line is not closed where it should "
                            f"be (the parser found {_token(got)} on line {line}); check that "
                            f"every '{left}' has its '{right}' and items are separated by commas")
    if problem == "mapping values are not allowed here":
        found = _VALUE_WITH_COLON.match(source(line))
        if found:
            return line, (f"the value of '{found.group(1)}' contains ': ', which YAML reads "
                          "as the start of another key; put the whole value in quotes")
        return line, ("this line is indented more than the key above it, or a value on it "
                      "contains ': '; line keys of one mapping up under each other, and put "
                      "a value that contains ': ' in quotes")
    if problem.startswith("expected <block end>"):
        got = problem.rsplit("but found ", 1)[-1]
        if got == "'<scalar>'" and "'" in source(line):
            return line, ("a text in single quotes contains an apostrophe, which ends it; "
                          "write the text in double quotes (\"it's\") or double the "
                          "apostrophe ('it''s')")
        what = "this list item" if got in ("'-'", "'<block sequence start>'") else "this line"
        return line, (f"{what} is not lined up with the lines above it (the block started "
                      f"on line {opened}); indent it exactly like the other items or keys "
                      "at its level, with spaces")
    if problem.startswith("could not find expected ':'"):
        return opened or line, ("a key on this line has no ':' after it, or the line "
                                "continues a value that should be in quotes; write 'key: "
                                "value' (with a space after the colon)")
    if problem.startswith("found undefined alias"):
        return line, ("a value starts with '*', which YAML reads as a reference to an "
                      "anchor; put the value in quotes")
    if problem.startswith("found character") and "cannot start any token" in problem:
        char = problem.split("'")[1] if "'" in problem else "this character"
        return line, (f"a value cannot start with '{char}' in YAML; put the value in quotes")
    if problem.startswith(("did not find expected key", "did not find expected '-'")):
        return line, ("this line is not lined up with the keys or list items above it; "
                      "indent it like the others at its level, with spaces")
    return line, f"the file is not valid YAML here ({problem}); {_GENERAL_HINT}"


def _token(got: str) -> str:
    names = {"'<stream end>'": "the end of the file", "'<scalar>'": "a value",
             "'<block mapping start>'": "a new key", "'<block end>'": "the end of a block"}
    return names.get(got, got)
