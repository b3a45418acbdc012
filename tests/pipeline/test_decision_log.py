"""The decision log (file, stdout, Redis stream) and the fairness audit read from it."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask import Flask

from escalator.app import create_app
from escalator.cli import main
from escalator.config import Config
from escalator.decisionlog import STREAM_KEY
from escalator.http.services import EXTENSION
from escalator.tools.audit import audit, report


@pytest.fixture
def logged_app(redis_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Path]]:
    path = tmp_path / "decisions.jsonl"
    app = create_app(Config(redis_url=redis_url, env="test", decision_log=str(path)))
    yield app, path
    app.extensions[EXTENSION].close()


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


def record(channel: str, routed: bool, frustration: float,
           escalated: bool = False) -> dict[str, Any]:
    return {"decision": "route_to_human" if routed else "keep_with_bot",
            "segment": {"channel": channel, "language": "en", "tier": None},
            "facts": {"frustration.score": frustration, "conversation.escalated": escalated}}


def test_the_audit_flags_a_segment_below_four_fifths_within_a_band() -> None:
    records = (
        # Highly frustrated customers: web routed 20 of 40, sms only 6 of 40.
        [record("web", i < 20, 0.8) for i in range(40)]
        + [record("sms", i < 6, 0.8) for i in range(40)]
        # Calm customers: both rarely routed, and alike.
        + [record("web", i < 2, 0.1) for i in range(40)]
        + [record("sms", i < 2, 0.1) for i in range(40)]
        # Turns already with a person do not count.
        + [record("sms", True, 0.9, escalated=True) for _ in range(50)]
    )
    result = audit(records, min_count=30)
    assert result.overall.decisions == 160 and result.skipped_with_person == 50
    assert [(d.dimension, d.band, d.segment, d.best_segment) for d in result.disparities] == [
        ("channel", "high frustration", "sms", "web")]
    assert result.disparities[0].ratio == pytest.approx(0.3)
    assert "(ratio 0.30, below 0.8)" in result.disparities[0].explain()
    assert "'sms' was routed to a person 15% of the time, against 50%" in \
        result.disparities[0].explain()


def test_small_segments_are_not_compared() -> None:
    records = [record("web", True, 0.8) for _ in range(40)] + \
              [record("fax", False, 0.8) for _ in range(5)]
    assert audit(records, min_count=30).disparities == []


def test_an_audit_that_compared_nothing_says_the_data_was_too_small(tmp_path: Path) -> None:
    # The case: 24 decisions, no segment near the 30-decision minimum.
    records = [record("web" if i % 2 else "sms", i % 3 == 0, 0.1 + 0.3 * (i % 3))
               for i in range(24)]
    result = audit(records, min_count=30)
    assert result.disparities == [] and result.verdict == "too_little_data"
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    text = CliRunner().invoke(main, ["audit", str(path)]).output
    assert "No disparity" not in text
    assert "Too little data to compare: no band of frustration held two segments of the same " \
           "channel or language or tier with at least 30 decisions each, so a disparity can " \
           "be neither found nor ruled out." in text
    assert "- in the low frustration band, by channel: 'sms' (4 decisions), 'web' (4 " \
           "decisions): too few decisions to compare (fewer than 30 each)" in text
    assert "- in the low frustration band, by language: only 'en' appears, so there is " \
           "nothing to compare it with" in text

    body = json.loads(CliRunner().invoke(main, ["audit", str(path), "--json"]).output)
    assert body["verdict"] == "too_little_data" and body["disparities"] == []
    low_channel = next(c for c in body["comparisons"]
                       if (c["dimension"], c["band"]) == ("channel", "low frustration"))
    assert low_channel == {"dimension": "channel", "band": "low frustration", "made": False,
                           "compared": [], "too_small": {"sms": 4, "web": 4}}


def test_segments_left_out_of_a_comparison_are_named() -> None:
    records = ([record("web", True, 0.8) for _ in range(40)]
               + [record("sms", True, 0.8) for _ in range(40)]
               + [record("fax", False, 0.8) for _ in range(5)])
    result = audit(records, min_count=30)
    assert result.verdict == "no_disparity"
    text = report(result)
    assert text.count("No disparity among the segments compared") == 1
    assert "- in the high frustration band, by channel: 'fax' (5 decisions): too few " \
           "decisions (fewer than 30)" in text


def test_audit_command_reads_the_log_and_explains(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(record("web" if i % 2 else "app", i % 2 == 1, 0.7))
                              for i in range(100)) + "\n")
    result = CliRunner().invoke(main, ["audit", str(path)])
    assert result.exit_code == 0, result.output
    assert "100 decisions audited" in result.output
    assert "channel 'app' was routed to a person 0%" in result.output
    result = CliRunner().invoke(main, ["audit", str(path), "--json"])
    assert json.loads(result.output)["by_segment"]["channel"]["web"]["rate"] == 1.0
    path.write_text("garbage\n")
    result = CliRunner().invoke(main, ["audit", str(path)])
    assert result.exit_code != 0 and "log.jsonl:1: not JSON" in result.output


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
