"""The studio's report page: `escalator report` on a log the studio was opened with, with
the thresholds of the rules in the studio, or how to make one when it has none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from escalator.studio import create_local_app
from escalator.studio.views import EXTENSION

T0 = 1_793_491_200.0


def _record(decision_id: str, outcome: str, rules: list[str], score: float) -> str:
    return json.dumps({
        "decision_id": decision_id, "time": T0, "conversation_id": "c", "turn_index": 1,
        "decision": outcome, "rules": rules,
        "ruleset": {"name": "default", "version": "x", "digest": "sha256:x"},
        "segment": {"channel": "web", "language": "en", "tier": "gold"},
        "facts": {"frustration.fitted": score, "turn_index": 1}})


@pytest.fixture
def client_with_log(rules: Path, tmp_path: Path) -> Iterator[FlaskClient]:
    log = tmp_path / "decisions.jsonl"
    log.write_text("\n".join([
        _record("d1", "route_to_human", ["frustration-spike"], 0.9),
        _record("d2", "keep_with_bot", [], 0.3),
        json.dumps({"kind": "feedback", "time": T0 + 5, "decision_id": "d1",
                    "label": "handoff_needed", "source": "agent", "decision": "route_to_human",
                    "rules": ["frustration-spike"]}),
    ]) + "\n")
    app = create_local_app(rules, [], [log])
    client = app.test_client()
    client.environ_base["HTTP_HOST"] = "127.0.0.1:5000"
    yield client
    app.extensions[EXTENSION].close()


def test_the_report_page_shows_a_log_with_the_studio_rules(client_with_log: FlaskClient
                                                           ) -> None:
    index = client_with_log.get("/studio/report").get_data(as_text=True)
    assert 'href="/studio/report?log=0">decisions.jsonl' in index
    page = client_with_log.get("/studio/report?log=0")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="handoff-rate">50.0%</strong>' in html
    assert "frustration.fitted &gt;= 0.85" in html  # the studio's rules' threshold
    assert html.count("<svg") >= 5
    assert client_with_log.get("/studio/report?log=3").status_code == 404


def test_without_a_log_the_page_says_how_to_make_a_report(studio: FlaskClient,
                                                          rules: Path) -> None:
    html = studio.get("/studio/report").get_data(as_text=True)
    assert f"escalator studio {rules.resolve()} --log decisions.jsonl" in html
    assert "escalator report decisions.jsonl --rules" in html
    assert 'href="/studio/report" aria-current="page">Report</a>' in html
