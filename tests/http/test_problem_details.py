"""The API's rule-set problems come as text (the fields callers already read) and, beside
them, as structured diagnostics: each with its code, severity, file, line, rule, limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import copy_rules

from escalator.config import default_rules_dir
from escalator.http.response_schemas import ProblemSchema

TURNS = [{"message": {"text": "hello"}}]


def files_with(old: str, new: str) -> dict[str, str]:
    """The default rule files sent inline, one text replaced."""
    files = {p.name: p.read_text(encoding="utf-8") for p in default_rules_dir().glob("*.yaml")}
    (name,) = [name for name, text in files.items() if old in text][:1]
    files[name] = files[name].replace(old, new, 1)
    return files


def diagnostics(details: dict[str, Any], text_key: str) -> list[dict[str, Any]]:
    """details' diagnostics, checked against the OpenAPI Problem shape and against the
    text it stands beside (one each, in the same order)."""
    found: list[dict[str, Any]] = details["diagnostics"]
    assert all(ProblemSchema().validate(d) == {} for d in found), found
    assert len(found) == len(details[text_key])
    for item, text in zip(found, details[text_key], strict=True):
        assert item["message"] in text
    return found


def test_an_invalid_rule_set_sent_inline_has_diagnostics(client: FlaskClient) -> None:
    response = client.post("/v1/evaluate", json={"turns": TURNS, "ruleset": {
        "files": files_with("{fact: frustration.mean, gte: 0.65}",
                            "{fact: frustration.meen, gte: 0.65}")}})
    assert response.status_code == 400
    error = response.get_json()["error"]
    (item,) = diagnostics(error["details"], "ruleset")
    assert (item["code"], item["severity"], item["file"], item["rule"], item["limit"]) == (
        "unknown_fact", "error", "frustration.yaml", "sustained-frustration", None)
    assert isinstance(item["line"], int)


def test_a_rule_set_sent_inline_over_a_limit_has_budget_diagnostics(
        client: FlaskClient) -> None:
    values = ", ".join(str(n) for n in range(101))
    response = client.post("/v1/evaluate", json={"turns": TURNS, "ruleset": {
        "files": files_with("{fact: turn_index, gte: 3}",
                            f"{{fact: turn_index, in: [{values}]}}")}})
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    assert details["limits"] == ["list_values"]
    assert [(d["code"], d["limit"]) for d in diagnostics(details, "ruleset")] == [
        ("budget", "list_values")]


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return copy_rules(tmp_path / "rules")


@pytest.fixture
def reloading(make_app: Callable[..., Flask], rules: Path) -> Flask:
    # No reload thread before the test asks (see asked_app in tests/policy/test_reload.py).
    return make_app(rules_dir=rules, reload_settle_seconds=0, start_reloader=False)


def test_a_refused_reload_has_diagnostics_named_inside_the_folder(
        reloading: Flask, rules: Path) -> None:
    loops = rules / "loops.yaml"
    loops.write_text(loops.read_text().replace("loop.bot_repeats", "loop.bot_repeat"))
    scoring = rules / "lexicons" / "scoring.yaml"
    scoring.write_text(scoring.read_text().replace("  trend_window: 5\n",
                                                   "  trend_windw: 5\n"))
    response = reloading.test_client().post("/v1/ruleset/reload")
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]
    found = diagnostics(details, "problems")
    assert {(d["code"], d["file"]) for d in found} == {
        ("unknown_fact", "loops.yaml"), ("schema", "lexicons/scoring.yaml")}
    assert any(text.startswith(f"{rules}/lexicons/scoring.yaml:")
               for text in details["problems"])


def test_a_reload_under_the_same_version_has_a_warning_diagnostic(
        reloading: Flask, rules: Path) -> None:
    loops = rules / "loops.yaml"
    loops.write_text(loops.read_text().replace("description: ", "description: Edited. ", 1))
    response = reloading.test_client().post("/v1/ruleset/reload")
    assert response.status_code == 200
    body = response.get_json()
    (item,) = diagnostics(body, "warnings")
    assert (item["code"], item["severity"], item["file"]) == (
        "version_unchanged", "warning", ".")


def test_a_rule_set_sent_inline_in_the_wrong_shape_has_a_diagnostic(
        client: FlaskClient) -> None:
    response = client.post("/v1/evaluate", json={"turns": TURNS, "ruleset": {"file": {}}})
    assert response.status_code == 400
    (item,) = diagnostics(response.get_json()["error"]["details"], "ruleset")
    assert (item["code"], item["file"], item["line"]) == ("schema", "ruleset", None)
