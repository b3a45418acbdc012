"""The decision log (file, stdout, Redis stream): one record per decision, never text, and
a record that cannot be written is counted, never a failed turn. The audit that reads it is
in tests/tools/test_audit.py."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY

from escalator.app import create_app
from escalator.config import Config
from escalator.decisionlog import STREAM_KEY
from escalator.http.services import EXTENSION


@pytest.fixture
def logged_app(make_app: Callable[..., Flask], tmp_path: Path) -> tuple[Flask, Path]:
    path = tmp_path / "decisions.jsonl"
    return make_app(decision_log=str(path)), path


def send(app: Flask, cid: str, turn_id: str, text: str, **extra: Any) -> dict[str, Any]:
    response = app.test_client().post(f"/v1/conversations/{cid}/turns", json={
        "turn_id": turn_id, "message": {"text": text}, **extra})
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def test_every_decision_is_logged_once_without_text(
        logged_app: tuple[Flask, Path], new_conversation_id: Callable[..., str]) -> None:
    app, path = logged_app
    cid = new_conversation_id()
    first = send(app, cid, "t-1", "Can I add a zucchini casserole to my order?",
                 channel="web", customer={"tier": "silver"})
    # A retry of the same turn is not a new decision: it is not logged again.
    send(app, cid, "t-1", "Can I add a zucchini casserole to my order?",
         channel="web", customer={"tier": "silver"})
    second = send(app, cid, "t-2", "Let me talk to a human")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["decision_id"] for r in records] == [first["decision_id"],
                                                   second["decision_id"]]
    assert records[1]["decision"] == "route_to_human"
    assert records[1]["rules"][0] == "explicit-human-request"
    assert records[0]["decision"] == "keep_with_bot"
    assert records[0]["segment"] == {"channel": "web", "language": "en", "tier": "silver",
                                     "segment": None}
    assert records[0]["ruleset"]["digest"].startswith("sha256:")
    assert records[0]["facts"]["turn_index"] == 1
    assert "zucchini" not in path.read_text().lower()


def logging_errors() -> float:
    return REGISTRY.get_sample_value("escalator_decision_log_errors_total") or 0.0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_record_that_cannot_be_written_is_counted_and_the_turn_still_answered(
        make_app: Callable[..., Flask], new_conversation_id: Callable[..., str]) -> None:
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    app = make_app(decision_log="/dev/full")
    cid = new_conversation_id()
    before = logging_errors()
    first = send(app, cid, "t-1", "Let me talk to a human")
    assert first["decision"] == "route_to_human" and first["degraded"] is False
    assert logging_errors() == before + 1
    send(app, cid, "t-2", "thanks")
    assert logging_errors() == before + 2
    # A retry is answered with the stored decision: not a decision, so no record lost.
    retry = send(app, cid, "t-1", "Let me talk to a human")
    assert retry["decision_id"] == first["decision_id"]
    assert logging_errors() == before + 2


def test_a_bad_decision_log_setting_refuses_to_start(redis_url: str) -> None:
    with pytest.raises(Exception, match="ESCALATOR_DECISION_LOG"):
        create_app(Config(redis_url=redis_url, env="test", decision_log="redis:lots"))


def test_the_redis_stream_log_is_capped() -> None:
    from escalator.state.embedded import start_embedded

    embedded = start_embedded(Path(tempfile.mkdtemp(prefix="escalator-log-")))
    try:
        app = create_app(Config(redis_url=embedded.url, env="test", decision_log="redis:5"))
        for i in range(40):
            send(app, f"c-{i}", "t-1", "hello there")
        raw = redis.Redis.from_url(embedded.url)
        length = raw.xlen(STREAM_KEY)
        assert 5 <= length < 40  # approximate trimming keeps about the cap
        entry = raw.xrevrange(STREAM_KEY, count=1)[0][1][b"r"]
        assert json.loads(entry)["conversation_id"] == "c-39"
        raw.close()
        app.extensions[EXTENSION].close()
    finally:
        embedded.shutdown()


def test_stdout_log_writes_json_lines(capfd: pytest.CaptureFixture[str]) -> None:
    from escalator.decisionlog import open_decision_log

    sink = open_decision_log("stdout", None)
    assert sink is not None
    sink.write({"decision_id": "d1", "decision": "keep_with_bot"})
    sink.close()
    assert json.loads(capfd.readouterr().out) == {"decision_id": "d1",
                                                  "decision": "keep_with_bot"}


def test_a_log_line_is_ascii_json_whatever_the_text_in_it(tmp_path: Path) -> None:
    from escalator.decisionlog import open_decision_log

    # A rule set's version may be any text; a lone surrogate is valid JSON but not UTF-8.
    record = {"decision_id": "d1", "ruleset": {"version": "2026.11 été \ud800"}}
    sink = open_decision_log(str(tmp_path / "decisions.jsonl"), None)
    assert sink is not None
    sink.write(record)
    sink.close()
    line = (tmp_path / "decisions.jsonl").read_bytes()
    assert line.isascii() and line.endswith(b"\n")
    assert json.loads(line) == record
