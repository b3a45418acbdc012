"""Edits of one rule inside a rule file's text, leaving the rest of the file as written.

A form edit replaces the lines of one entry under `rules:` (from its dash to the line
before the next entry, comments above the next entry kept with it) with the rule written
afresh: block style, conditions on one line each (`- {fact: turn_index, gte: 3}`), as
the default policy writes them. Comments inside the replaced rule are not kept; every
other line of the file is left byte for byte.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml


class RuleTextError(ValueError):
    """The file cannot be edited by form (unreadable YAML, or rules not in block style);
    the message says what to do instead."""


@dataclass(frozen=True)
class Entry:
    """Where one entry of `rules:` is: its id, lines [start, end) (0-based) and indent."""

    rule_id: str | None
    start: int
    end: int
    indent: int


class _Flow(dict[str, Any]):
    """A mapping written on one line ({fact: x, gte: 1})."""


class _Dumper(yaml.SafeDumper):
    """Block style, with conditions in flow style, in the order written; lists indented
    under their key, long text folded (`>-`) as the default policy writes messages."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = ">" if len(data) > 72 and "\n" not in data and data == data.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _block(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


_Dumper.add_representer(_Flow, _flow)
_Dumper.add_representer(dict, _block)
_Dumper.add_representer(str, _text)


def _flowed(condition: Any) -> Any:
    """Conditions with every comparison marked for one-line writing."""
    if isinstance(condition, dict):
        if "fact" in condition:
            return _Flow(condition)
        return {key: _flowed(value) for key, value in condition.items()}
    if isinstance(condition, list):
        return [_flowed(item) for item in condition]
    return condition


def dump_rule(rule: dict[str, Any], indent: int) -> list[str]:
    """A rule as the lines of one `rules:` entry, its dash at column `indent`."""
    data = dict(rule)
    if "when" in data:
        data["when"] = _flowed(data["when"])
    text = yaml.dump([data], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=80,
                     default_flow_style=False, indent=2)
    pad = " " * indent
    # PyYAML writes a top-level list item's keys at column 2 ("- id: x" then "  description").
    return [pad + line if line else line for line in text.rstrip("\n").split("\n")]


def entries(text: str) -> list[Entry]:
    """The entries of the file's `rules:` list, in order."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise RuleTextError("the file is not valid YAML yet; fix it in the YAML editor "
                            "first") from exc
    if not isinstance(root, yaml.MappingNode):
        return []
    lines = text.split("\n")
    for key, value in root.value:
        if key.value != "rules":
            continue
        if not isinstance(value, yaml.SequenceNode):
            return []
        if value.flow_style and value.value:
            raise RuleTextError("the rules of this file are written on one line ([...]); "
                                "edit them in the YAML editor")
        found: list[Entry] = []
        items = value.value
        for index, item in enumerate(items):
            start = item.start_mark.line
            if index + 1 < len(items):
                end = items[index + 1].start_mark.line
            else:
                mark = value.end_mark
                end = mark.line + (1 if mark.column else 0)
            end = min(end, len(lines))
            # Comments and blank lines before the next entry belong to it (its heading).
            while end > start + 1 and (not lines[end - 1].strip()
                                       or lines[end - 1].lstrip().startswith("#")):
                end -= 1
            rule_id = None
            if isinstance(item, yaml.MappingNode):
                for k, v in item.value:
                    if k.value == "id" and isinstance(v, yaml.ScalarNode):
                        rule_id = v.value
            dash = lines[start].find("-")
            found.append(Entry(rule_id, start, end, max(dash, 0)))
        return found
    return []


def find(text: str, rule_id: str) -> Entry:
    """The entry of one rule; RuleTextError when the file has none with that id."""
    for entry in entries(text):
        if entry.rule_id == rule_id:
            return entry
    raise RuleTextError(f"there is no rule '{rule_id}' in this file")


def raw_rule(text: str, rule_id: str) -> dict[str, Any]:
    """The rule as written (plain dicts and lists)."""
    for rule in (yaml.safe_load(text) or {}).get("rules") or []:
        if isinstance(rule, dict) and rule.get("id") == rule_id:
            return copy.deepcopy(rule)
    raise RuleTextError(f"there is no rule '{rule_id}' in this file")


def _joined(lines: list[str], had_newline: bool) -> str:
    text = "\n".join(lines)
    return text + "\n" if had_newline and not text.endswith("\n") else text


def replace_rule(text: str, rule_id: str, rule: dict[str, Any]) -> tuple[str, int]:
    """The file with one rule rewritten, and the 1-based line where it now starts."""
    entry = find(text, rule_id)
    lines = text.split("\n")
    lines[entry.start:entry.end] = dump_rule(rule, entry.indent)
    return "\n".join(lines), entry.start + 1


def insert_rule(text: str, rule: dict[str, Any], after: str | None = None) -> tuple[str, int]:
    """The file with a new rule after rule `after` (or at the end of `rules:`), and the
    1-based line where it starts."""
    found = entries(text)
    lines = text.split("\n")
    if after is not None:
        entry = find(text, after)
        position, indent = entry.end, entry.indent
    elif found:
        position, indent = found[-1].end, found[-1].indent
    else:
        data = yaml.safe_load(text) if text.strip() else {}
        if isinstance(data, dict) and "rules" in data and data["rules"]:
            raise RuleTextError("cannot find where the rules of this file are; edit it in "
                                "the YAML editor")
        # No rules yet: a `rules:` key (an empty one is replaced).
        lines = [line for line in lines if line.strip() not in ("rules:", "rules: []")]
        while lines and not lines[-1].strip():
            lines.pop()
        lines.append("rules:")
        position, indent = len(lines), 2
    block = ["", *dump_rule(rule, indent)] if position and lines[position - 1].strip() \
        else dump_rule(rule, indent)
    lines[position:position] = block
    start = position + (2 if block[0] == "" else 1)
    return _joined(lines, text.endswith("\n")), start


def delete_rule(text: str, rule_id: str) -> str:
    """The file without one rule (the blank line before it too)."""
    entry = find(text, rule_id)
    lines = text.split("\n")
    start = entry.start
    if start > 0 and not lines[start - 1].strip():
        start -= 1
    del lines[start:entry.end]
    return "\n".join(lines)


def set_version(text: str, version: str) -> str | None:
    """The file with its top-level `version:` set (None if it declares none)."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line.startswith("version:"):
            comment = ""
            if " #" in line:
                comment = "  #" + line.split(" #", 1)[1]
            lines[number] = f"version: {_quoted(version)}{comment}"
            return "\n".join(lines)
    return None


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def condition_lines(rule_start: int, rule: dict[str, Any]) -> list[int]:
    """The 1-based line of each comparison of a flat rule written by dump_rule at
    `rule_start` (to put a problem next to the form row it is about)."""
    lines = dump_rule(rule, 0)
    return [rule_start + offset for offset, line in enumerate(lines)
            if line.lstrip().startswith("- {fact:") or line.lstrip().startswith("{fact:")
            or line.lstrip().startswith("when: {fact:")]
