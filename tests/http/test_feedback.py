"""POST /v1/conversations/{id}/feedback: kept once per decision and source, refused with a
stable code otherwise (and then nothing changes), logged beside the decisions, counted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from escalator import feedback
from escalator.app import create_app
from escalator.config import Config
from escalator.decisionlog import STREAM_KEY
from escalator.http.services import EXTENSION
from escalator.model import KEEP, ROUTE, Decision, Reason, RulesetRef, Scores
from escalator.pipeline import STICKY_RULE
from escalator.state.store import conversation_key

HUMAN = "I want to talk to a human please"
# Different questions, so that no loop rule routes a conversation of them.
QUESTIONS = ["Where is my parcel?", "Can I change the delivery address?",
             "Do you ship to Norway?", "How do I reset my password?",
             "What are your opening hours?", "Is the blue jacket in stock?"]


@pytest.fixture
def logged(redis_url: str, tmp_path: Path) -> Iterator[tuple[FlaskClient, Path]]:
    path = tmp_path / "decisions.jsonl"
    app = create_app(Config(redis_url=redis_url, env="test", decision_log=str(path)),
                     start_reloader=False)
    yield app.test_client(), path
    app.extensions[EXTENSION].close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A client that reads stored values as bytes (they are deflated)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def turn(client: FlaskClient, cid: str, turn_id: str, text: str = "Where is my parcel?",
         **extra: Any) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": turn_id, "message": {"text": text}, **extra})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def give(client: FlaskClient, cid: str, decision_id: str, label: str, source: str = "agent",
         **extra: Any) -> Any:
    return client.post(f"/v1/conversations/{cid}/feedback",
                       json={"decision_id": decision_id, "label": label, "source": source,
                             **extra})


def counted(rule: str, label: str) -> float:
    return REGISTRY.get_sample_value("escalator_feedback_total",
                                     {"rule": rule, "label": label}) or 0.0


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_feedback_is_kept_logged_and_counted_once(
        logged: tuple[FlaskClient, Path], new_conversation_id: Callable[..., str]) -> None:
    client, path = logged
    cid = new_conversation_id()
    decision = turn(client, cid, "t-1", HUMAN)
    assert decision["decision"] == "route_to_human"
    before = counted("explicit-human-request", "handoff_needed")
    response = give(client, cid, decision["decision_id"], "handoff_needed",
                    reasons=["customer_asked", "complex_issue", "customer_asked"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["replayed"] is False
    assert body["reasons"] == ["complex_issue", "customer_asked"]
    assert body["decision"] == "route_to_human"
    assert body["rules"][0] == "explicit-human-request"
    assert counted("explicit-human-request", "handoff_needed") == before + 1

    # The same again: the same answer, not logged or counted again.
    again = give(client, cid, decision["decision_id"], "handoff_needed",
                 reasons=["complex_issue", "customer_asked"])
    assert again.status_code == 200
    assert again.get_json() == {**body, "replayed": True}
    assert counted("explicit-human-request", "handoff_needed") == before + 1

    logged_feedback = [r for r in records(path) if r.get("kind") == "feedback"]
    assert len(logged_feedback) == 1
    record = logged_feedback[0]
    assert {k: v for k, v in record.items() if k != "time"} == {
        "kind": "feedback", "feedback_id": body["feedback_id"],
        "decision_id": decision["decision_id"], "conversation_id": cid,
        "label": "handoff_needed", "source": "agent",
        "reasons": ["complex_issue", "customer_asked"], "decision": "route_to_human",
        "rules": body["rules"]}
    decisions = [r for r in records(path) if r.get("kind") == "decision"]
    assert [r["decision_id"] for r in decisions] == [decision["decision_id"]]


def test_each_source_gives_its_own_and_a_second_opinion_is_refused(
        logged: tuple[FlaskClient, Path], new_conversation_id: Callable[..., str],
        raw: redis.Redis) -> None:
    client, path = logged
    cid = new_conversation_id()
    decision_id = turn(client, cid, "t-1", HUMAN)["decision_id"]
    assert give(client, cid, decision_id, "handoff_not_needed", "agent").status_code == 200
    assert give(client, cid, decision_id, "handoff_needed", "survey").status_code == 200
    stored = raw.get(conversation_key(cid))
    lines = len(path.read_text().splitlines())

    changed = give(client, cid, decision_id, "handoff_needed", "agent")
    assert changed.status_code == 409
    assert changed.get_json()["error"]["code"] == "feedback_conflict"
    other_reasons = give(client, cid, decision_id, "handoff_not_needed", "agent",
                         reasons=["bot_could_answer"])
    assert other_reasons.status_code == 409
    # Nothing changed: not the stored value, not the log.
    assert raw.get(conversation_key(cid)) == stored
    assert len(path.read_text().splitlines()) == lines


@pytest.mark.parametrize(("text", "wrong"), [
    (HUMAN, "should_have_escalated"), (HUMAN, "resolved_by_bot"),
    ("Where is my parcel?", "handoff_needed"), ("Where is my parcel?", "handoff_not_needed")])
def test_a_label_that_does_not_fit_the_decision_is_refused(
        client: FlaskClient, new_conversation_id: Callable[..., str],
        raw: redis.Redis, text: str, wrong: str) -> None:
    cid = new_conversation_id()
    decision_id = turn(client, cid, "t-1", text)["decision_id"]
    stored = raw.get(conversation_key(cid))
    response = give(client, cid, decision_id, wrong)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "feedback_label_mismatch"
    assert raw.get(conversation_key(cid)) == stored


def test_keep_with_bot_decisions_take_their_own_labels(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    decision = turn(client, cid, "t-1")
    assert decision["decision"] == "keep_with_bot"
    before = counted("none", "should_have_escalated")
    response = give(client, cid, decision["decision_id"], "should_have_escalated",
                    "platform", reasons=["customer_left"])
    assert response.status_code == 200
    assert response.get_json()["rules"] == []
    assert counted("none", "should_have_escalated") == before + 1
    assert give(client, cid, decision["decision_id"], "resolved_by_bot",
                "survey").status_code == 200


def test_unknown_and_no_longer_kept_decisions_are_not_found(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = turn(client, cid, "t-1")["decision_id"]
    for i in range(2, 2 + feedback.KEPT_DECISIONS):
        turn(client, cid, f"t-{i}", QUESTIONS[i])
    # Older than the last KEPT_DECISIONS (and not a handoff): gone.
    for decision_id, where in ((first, cid), ("never-made", cid), (first, "no-such-conv")):
        response = give(client, where, decision_id, "resolved_by_bot")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "decision_not_found"


def test_the_last_handoff_is_kept_for_feedback_through_a_long_conversation(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    handoff = turn(client, cid, "t-1", HUMAN)
    later = [turn(client, cid, f"t-{i}", QUESTIONS[i % 6]) for i in range(2, 12)]
    assert all(d["reasons"][0]["rule"] == STICKY_RULE for d in later)
    assert client.post(f"/v1/conversations/{cid}/release").status_code == 200
    after = [turn(client, cid, f"t-{i}", QUESTIONS[i - 12]) for i in range(12, 16)]
    assert all(d["decision"] == "keep_with_bot" for d in after)
    response = give(client, cid, handoff["decision_id"], "handoff_needed")
    assert response.status_code == 200
    # A sticky turn older than the last few is not kept.
    assert give(client, cid, later[0]["decision_id"],
                "handoff_needed").get_json()["error"]["code"] == "decision_not_found"


def decided(i: int, outcome: str, rule: str | None) -> Decision:
    reasons = () if rule is None else (Reason(rule, 100, ROUTE, "why"),)
    return Decision(outcome, f"d{i}", "c", f"t-{i}", i, None, reasons,  # type: ignore[arg-type]
                    Scores(0.0, 0.0, 0.0, 0.0), {}, RulesetRef("r", "1", "sha256:x"))


def test_the_kept_decisions_stay_bounded() -> None:
    entries = feedback.remember((), decided(0, ROUTE, "explicit-human-request"))
    for i in range(1, 40):
        entries = feedback.remember(entries, decided(i, ROUTE if i % 2 else KEEP,
                                                     STICKY_RULE if i % 2 else None))
        assert len(entries) <= feedback.KEPT_DECISIONS + 1
    # The last four, and the handoff long before them.
    assert [e[0] for e in entries] == ["d39", "d38", "d37", "d36", "d0"]
    # A new handoff replaces the old one.
    entries = feedback.remember(entries, decided(40, ROUTE, "frustration-spike"))
    for i in range(41, 50):
        entries = feedback.remember(entries, decided(i, KEEP, None))
    assert [e[0] for e in entries] == ["d49", "d48", "d47", "d46", "d40"]


@pytest.mark.parametrize("body", [
    {"decision_id": "d", "label": "maybe", "source": "agent"},
    {"decision_id": "d", "label": "handoff_needed", "source": "boss"},
    {"decision_id": "d", "label": "handoff_needed", "source": "agent",
     "reasons": ["the agent wrote this"]},
    {"decision_id": "d", "label": "handoff_needed", "source": "agent", "comment": "free text"},
    {"label": "handoff_needed", "source": "agent"},
    {"decision_id": "bad id", "label": "handoff_needed", "source": "agent"},
    [],
])
def test_bad_feedback_is_a_400_with_the_field(
        client: FlaskClient, new_conversation_id: Callable[..., str], body: Any) -> None:
    response = client.post(f"/v1/conversations/{new_conversation_id()}/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_feedback_needs_a_caller_key(redis_url: str,
                                     new_conversation_id: Callable[..., str]) -> None:
    app: Flask = create_app(Config(redis_url=redis_url, env="test", api_keys=("k-caller",)),
                            start_reloader=False)
    try:
        client = app.test_client()
        cid = new_conversation_id()
        body = {"turn_id": "t-1", "message": {"text": HUMAN}}
        decided = client.post(f"/v1/conversations/{cid}/turns", json=body,
                              headers={"Authorization": "Bearer k-caller"}).get_json()
        given = {"decision_id": decided["decision_id"], "label": "handoff_needed",
                 "source": "agent"}
        assert client.post(f"/v1/conversations/{cid}/feedback",
                           json=given).status_code == 401
        assert client.post(f"/v1/conversations/{cid}/feedback", json=given,
                           headers={"Authorization": "Bearer k-caller"}).status_code == 200
    finally:
        app.extensions[EXTENSION].close()


def test_the_sticky_rule_is_named_alike() -> None:
    assert feedback.STICKY_RULE == STICKY_RULE


def test_feedback_racing_a_turn_loses_neither(
        app: Flask, new_conversation_id: Callable[..., str]) -> None:
    """A turn committed between feedback's read and its write: the write is refused
    (compare-and-set), the feedback is applied again to the new state, and both stay."""
    svc = app.extensions[EXTENSION]
    client = app.test_client()
    cid = new_conversation_id()
    decision_id = turn(client, cid, "t-1", HUMAN)["decision_id"]
    calls = []

    def racing(state: Any) -> Any:
        calls.append(state.turn_index)
        if len(calls) == 1:
            turn(client, cid, "t-2", QUESTIONS[1])  # commits in between
        return feedback.apply(state, cid, feedback.Feedback(decision_id, "handoff_needed",
                                                            "agent"), lambda: "f-1")

    recorded = svc.store.update(cid, racing)
    assert calls == [1, 2]
    assert recorded.feedback_id == "f-1" and not recorded.replayed
    state, _ = svc.store.summary(cid)
    assert state.turn_index == 2
    kept = next(e for e in state.decided if e[0] == decision_id)
    assert kept[3] == {"agent": ["handoff_needed", [], "f-1"]}


def test_feedback_goes_to_the_redis_stream_beside_its_decision(
        redis_url: str, raw: redis.Redis, new_conversation_id: Callable[..., str]) -> None:
    app = create_app(Config(redis_url=redis_url, env="test", decision_log="redis:1000"),
                     start_reloader=False)
    try:
        client = app.test_client()
        cid = new_conversation_id()
        decision = turn(client, cid, "t-1", HUMAN)
        assert give(client, cid, decision["decision_id"], "handoff_needed").status_code == 200
        entries = raw.xrevrange(STREAM_KEY, count=2)
        newest, before = (json.loads(fields[b"r"]) for _, fields in entries)
        assert (before["kind"], before["decision_id"]) == ("decision", decision["decision_id"])
        assert (newest["kind"], newest["decision_id"]) == ("feedback", decision["decision_id"])
        assert newest["rules"] == before["rules"]
    finally:
        app.extensions[EXTENSION].close()
        raw.delete(STREAM_KEY)
