"""A handoff's urgency: the most urgent of the matching route rules, raised (never lowered)
while the conversation is with a person; named `urgency`, apart from a rule's `priority`.

Before, the decisive rule alone set it: a turn matching frustration-spike (high) went to a
person at normal because conversation-looping outranked it, and a later explicit request
during the handoff left it at normal. And both were called "priority".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import rules_folder
from support.turns import say

from escalator.app import create_app
from escalator.cli import main
from escalator.config import Config
from escalator.http.services import EXTENSION

# The shape in a small rule set: a loop rule with a normal handoff outranks a
# frustration rule with a high one, both match.
LOOPS_AND_FRUSTRATION = """
ruleset: urgency-test
version: "1"
default: {decision: keep_with_bot, queue: support, urgency: normal}
rules:
  - id: explicit-human-request
    description: The customer asked for a person.
    priority: 100
    when: {all: [{fact: requested_human, is: true}]}
    then: {decision: route_to_human, urgency: high}
  - id: bot-fallback-cap
    description: Three bot failures in a row.
    priority: 95
    when: {all: [{fact: loop.fallback_streak, gte: 3}]}
    then: {decision: route_to_human}
  - id: conversation-looping
    description: Going round in circles.
    priority: 76
    when: {all: [{fact: loop.fallbacks, gte: 1}]}
    then: {decision: route_to_human, queue: loops}
  - id: frustration-spike
    description: A very frustrated message.
    priority: 69
    when: {all: [{fact: frustration.score, gte: 0.6}]}
    then: {decision: route_to_human, queue: complaints, urgency: high}
  - id: mentions-safety
    description: Safety.
    priority: 50
    when: {all: [{fact: complexity.topics, contains: safety}]}
    then: {decision: route_to_human, urgency: urgent}
  - id: mentions-cancelling
    description: Cancelling, at low urgency.
    priority: 40
    when: {all: [{fact: complexity.topics, contains: cancellation}]}
    then: {decision: route_to_human, urgency: low}
"""

ANGRY = "This is ridiculous, useless, the worst service ever!!!"


@pytest.fixture
def small_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(rules_dir=rules_folder(tmp_path, LOOPS_AND_FRUSTRATION))


def test_the_most_urgent_matching_rule_sets_the_urgency_the_decisive_one_the_queue(
        small_app: Flask, new_conversation_id: Callable[..., str]) -> None:
    client = small_app.test_client()
    decided = say(client, new_conversation_id(), "t-1", ANGRY, bot={"fallback": True})
    assert [r["rule"] for r in decided["reasons"]] == ["conversation-looping",
                                                       "frustration-spike"]
    # Before: {"queue": "loops", "priority": "normal"}.
    assert decided["handoff"]["queue"] == "loops"
    assert decided["handoff"]["urgency"] == "high"
    assert decided["handoff"]["priority"] == "high"  # the deprecated name, the same value


def test_during_a_handoff_a_more_urgent_match_raises_the_urgency_and_nothing_lowers_it(
        small_app: Flask, new_conversation_id: Callable[..., str]) -> None:
    client = small_app.test_client()
    cid = new_conversation_id()
    first = say(client, cid, "t-1", "Where is my parcel?", bot={"fallback": True})
    assert (first["handoff"]["queue"], first["handoff"]["urgency"]) == ("loops", "normal")
    asked = say(client, cid, "t-2", "I want to talk to a person")
    # Before: still normal.
    assert asked["reasons"][0]["rule"] == "handoff-in-progress"
    assert (asked["handoff"]["queue"], asked["handoff"]["urgency"]) == ("loops", "high")
    assert "explicit-human-request" in asked["reasons"][0]["description"]
    unsafe = say(client, cid, "t-3", "I can smell gas in my kitchen")
    assert unsafe["handoff"]["urgency"] == "urgent"
    calmer = say(client, cid, "t-4", "I want to cancel my subscription")
    assert "mentions-cancelling" in [r["rule"] for r in calmer["reasons"]]
    assert calmer["handoff"]["urgency"] == "urgent"
    summary = client.get(f"/v1/conversations/{cid}").get_json()
    assert summary["handoff_urgency"] == "urgent"
    assert summary["handoff_priority"] == "urgent"  # deprecated alias


def test_the_default_policy_hands_over_at_the_most_urgent_matching_rule(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    decided = say(client, cid, "t-1",
                   "I want to talk to a person, I can smell gas in my kitchen")
    rules = [r["rule"] for r in decided["reasons"]]
    assert rules[0] == "explicit-human-request" and "safety-or-vulnerability" in rules
    assert decided["handoff"]["queue"] == "support"  # the decisive rule's queue
    assert decided["handoff"]["urgency"] == "urgent"  # safety-or-vulnerability's


def test_the_old_spelling_still_works_with_a_warning(
        redis_url: str, tmp_path: Path, new_conversation_id: Callable[..., str],
        caplog: pytest.LogCaptureFixture) -> None:
    old = (LOOPS_AND_FRUSTRATION.replace("urgency: normal", "priority: normal")
           .replace("urgency: high", "priority: high"))
    folder = rules_folder(tmp_path, old)
    result = CliRunner().invoke(main, ["rules", "check", str(folder), "--strict"])
    assert result.exit_code == 1
    deprecated = [line for line in result.output.splitlines() if "old name" in line]
    assert len(deprecated) == 3, result.output  # the default and two rules
    assert "ruleset.yaml:4:" in deprecated[0]
    assert "write 'urgency: normal'" in deprecated[0]
    assert "rule 'explicit-human-request'" in deprecated[1]
    assert CliRunner().invoke(main, ["rules", "check", str(folder)]).exit_code == 0

    with caplog.at_level(logging.WARNING, logger="escalator"):
        app = create_app(Config(redis_url=redis_url, env="test", rules_dir=folder))
    try:
        assert any("old name" in r.getMessage() for r in caplog.records)
        decided = say(app.test_client(), new_conversation_id(), "t-1", ANGRY,
                       bot={"fallback": True})
        assert decided["handoff"]["urgency"] == "high"
    finally:
        app.extensions[EXTENSION].close()


def test_a_handoff_keeps_its_first_queue_and_urgency_on_every_later_turn(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    # Neither is the default (support, normal): losing either shows.
    cid = new_conversation_id()
    first = say(client, cid, "t-1", "I can smell gas in my kitchen")
    assert first["reasons"][0]["rule"] == "safety-or-vulnerability"
    assert (first["handoff"]["queue"], first["handoff"]["urgency"]) == ("care", "urgent")
    # A rule routing elsewhere (explicit-human-request: support, high), then nothing.
    for n, text in ((2, "I want to talk to a person"), (3, "ok thanks, where is my parcel?")):
        later = say(client, cid, f"t-{n}", text)
        assert later["decision"] == "route_to_human"
        assert later["reasons"][0]["rule"] == "handoff-in-progress"
        assert (later["handoff"]["queue"], later["handoff"]["urgency"]) == ("care", "urgent"), n
    summary = client.get(f"/v1/conversations/{cid}").get_json()
    assert (summary["handoff_queue"], summary["handoff_urgency"]) == ("care", "urgent")
    assert summary["escalated"] is True


def test_priority_and_urgency_together_are_refused(tmp_path: Path) -> None:
    both = LOOPS_AND_FRUSTRATION.replace(
        "then: {decision: route_to_human, urgency: high}",
        "then: {decision: route_to_human, urgency: high, priority: low}")
    result = CliRunner().invoke(main, ["rules", "check", str(rules_folder(tmp_path, both))])
    assert result.exit_code == 1
    assert "'then.priority' is the old name of 'urgency'; write only urgency" in result.output


def test_rule_tests_check_the_urgency_under_either_name(tmp_path: Path) -> None:
    folder = rules_folder(tmp_path, LOOPS_AND_FRUSTRATION)
    (folder / "tests").mkdir()
    (folder / "tests" / "urgency.yaml").write_text("""
tests:
  - name: frustration raises the urgency of a loop handoff
    turns:
      - message: {text: "This is ridiculous, useless, the worst service ever!!!"}
        bot: {fallback: true}
    expect:
      - {turn: 1, decisive: conversation-looping, queue: loops, urgency: high}
      - {turn: 1, handoff_priority: high}
  - name: a wrong expectation fails with what the handoff was
    turns:
      - message: {text: "This is ridiculous, useless, the worst service ever!!!"}
        bot: {fallback: true}
    expect:
      - {turn: 1, urgency: normal}
""")
    result = CliRunner().invoke(main, ["rules", "test", str(folder)])
    assert result.output.strip().splitlines()[-1] == "1 passed, 1 failed", result.output
    assert "expected urgency normal" in result.output
    assert "queue loops, urgency high" in result.output


def test_the_decision_log_records_the_handoff(
        redis_url: str, tmp_path: Path, new_conversation_id: Callable[..., str]) -> None:
    path = tmp_path / "decisions.jsonl"
    app = create_app(Config(redis_url=redis_url, env="test", decision_log=str(path),
                            rules_dir=rules_folder(tmp_path, LOOPS_AND_FRUSTRATION)))
    try:
        client = app.test_client()
        cid = new_conversation_id()
        say(client, cid, "t-1", "Where is my parcel?")
        say(client, cid, "t-2", ANGRY, bot={"fallback": True})
    finally:
        app.extensions[EXTENSION].close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    handoffs = [r["handoff"] for r in records]
    assert handoffs[0] is None
    assert {k: handoffs[1][k] for k in ("queue", "urgency")} == {"queue": "loops",
                                                                  "urgency": "high"}
    assert handoffs[1]["brief"]["why"]["rule"] == "conversation-looping"


def test_openapi_marks_the_old_name_deprecated(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    handoff = schemas["Handoff"]
    assert "urgency" in handoff["required"]
    assert handoff["properties"]["priority"]["deprecated"] is True
    assert schemas["ConversationSummary"]["properties"]["handoff_priority"]["deprecated"] is True
