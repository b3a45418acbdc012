"""`escalator rules check --format json`: one JSON document on stdout for editors and CI,
the same problems the text output lists, the same exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.rulesets import copy_rules

from escalator.cli import main
from escalator.http.response_schemas import ProblemSchema

DOCUMENT_KEYS = {"ok", "folder", "ruleset", "comparison", "errors", "warnings", "problems"}


def check(folder: Path, *options: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["rules", "check", str(folder), *options])
    return result.exit_code, result.stdout, result.stderr


def check_json(folder: Path, *options: str) -> tuple[int, dict[str, Any]]:
    code, stdout, stderr = check(folder, "--format", "json", *options)
    assert stderr == ""
    document = json.loads(stdout)
    assert set(document) == DOCUMENT_KEYS
    for problem in document["problems"]:
        assert ProblemSchema().validate(problem) == {}, problem
    return code, document


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return copy_rules(tmp_path / "rules")


def test_a_rule_set_that_loads_is_ok_with_no_problems(rules: Path) -> None:
    code, document = check_json(rules)
    assert code == 0
    assert document["ok"] is True and document["problems"] == []
    assert (document["errors"], document["warnings"]) == (0, 0)
    assert document["folder"] == str(rules)
    assert document["ruleset"]["name"] == "default"
    assert document["ruleset"]["digest"].startswith("sha256:")
    assert document["ruleset"]["rules"] > 10


def test_a_broken_rule_set_lists_each_problem_with_its_code_as_the_text_does(
        rules: Path) -> None:
    edit(rules / "frustration.yaml", "{fact: frustration.mean, gte: 0.65}",
         "{fact: frustration.meen, gte: 0.65}")
    edit(rules / "capacity.yaml", "eq: 0}", "eq: 0, channel: web}")
    edit(rules / "lexicons" / "scoring.yaml", "  trend_window: 5\n", "  trend_windw: 5\n")
    (rules / "web.yaml").write_text(
        "rules:\n  - id: web-only\n    description: d\n    priority: 1\n"
        "    when: {fact: channel, eq: webchat}\n    then: {decision: keep_with_bot}\n")

    code, document = check_json(rules)
    assert code == 1
    assert document["ok"] is False and document["ruleset"] is None
    found = [(p["code"], p["severity"], p["file"], p["rule"]) for p in document["problems"]]
    # In the text's order: errors by file as the text names them (lexicons by their path).
    assert found == [
        ("schema", "error", "lexicons/scoring.yaml", None),
        ("schema", "error", "lexicons/scoring.yaml", None),
        ("unknown_operator", "error", "capacity.yaml", "no-agents-available"),
        ("unknown_fact", "error", "frustration.yaml", "sustained-frustration"),
        ("unknown_channel", "warning", "web.yaml", "web-only"),
    ]
    assert (document["errors"], document["warnings"]) == (4, 1)

    text_code, _, text = check(rules)
    assert text_code == code
    listed = [re.match(r"(?:warning: )?(\S+?):(\d+)?:? ", line) for line in text.splitlines()]
    located = [(m.group(1), int(m.group(2))) for m in listed if m and m.group(2)]
    assert [(str(rules / p["file"]) if p["file"].startswith("lexicons/") else p["file"],
             p["line"]) for p in document["problems"]] == located


def test_warnings_fail_only_with_strict_as_in_text(rules: Path) -> None:
    (rules / "web.yaml").write_text(
        "rules:\n  - id: web-only\n    description: d\n    priority: 1\n"
        "    when: {fact: channel, eq: webchat}\n    then: {decision: keep_with_bot}\n")
    code, document = check_json(rules)
    assert code == 0 and document["ok"] is True
    assert (document["errors"], document["warnings"]) == (0, 1)
    assert check_json(rules, "--strict")[0] == 1
    assert check(rules, "--strict")[0] == 1


def test_a_problem_of_the_folder_itself_is_named_dot(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, document = check_json(empty)
    assert code == 1
    assert {"code": "file_missing", "severity": "error", "file": ".", "line": None,
            "rule": None, "limit": None,
            "message": "there are no rule files (*.yaml) here"} in document["problems"]


def test_a_change_without_a_new_version_is_a_warning_with_its_code(
        rules: Path, tmp_path: Path) -> None:
    before = copy_rules(tmp_path / "before")
    edit(rules / "frustration.yaml", "gte: 0.85}", "gte: 0.8}")
    code, document = check_json(rules, "--against", str(before))
    assert code == 0
    assert "version unchanged" in document["comparison"]
    (warning,) = document["problems"]
    assert (warning["code"], warning["severity"], warning["file"]) == (
        "version_unchanged", "warning", "ruleset.yaml")
    assert warning["line"] is not None
