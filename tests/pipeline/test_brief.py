"""The handoff brief: every route_to_human answer tells the person taking over why, in
the rules' words, what the customer wanted and how the conversation went, in labels and
numbers only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from support.turns import SENT_TEXTS, SENT_WORDS, say, sent_words_in

from escalator.app import create_app
from escalator.config import Config, default_rules_dir
from escalator.http.services import EXTENSION


def descriptions(client: FlaskClient) -> dict[str, str]:
    """Rule id -> description, as the active rule set says them."""
    rules = client.get("/v1/ruleset").get_json()["rules"]
    return {rule["id"]: rule["description"] for rule in rules}


def test_a_routed_turn_briefs_the_person_taking_over(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = client.post(f"/v1/conversations/{cid}/turns", json={
            "turn_id": "t-1", "channel": "WhatsApp", "customer": {"tier": "Gold"},
            "message": {"text": "Where is my parcel?", "intent": "order_status",
                        "intent_confidence": 0.92}}).get_json()
    assert first["decision"] == "keep_with_bot" and first["handoff"] is None

    routed = client.post(f"/v1/conversations/{cid}/turns", json={
        "turn_id": "t-2", "channel": "WhatsApp", "customer": {"tier": "Gold"},
        "message": {"text": "I want to cancel my subscription.", "intent": "cancel_subscription",
                    "intent_confidence": 0.88}}).get_json()
    assert routed["decision"] == "route_to_human", routed["reasons"]
    brief = routed["handoff"]["brief"]
    decisive = routed["reasons"][0]
    assert brief["why"] == {"decisive": descriptions(client)[decisive["rule"]],
                            "rule": decisive["rule"],
                            "others": [r["description"] for r in routed["reasons"][1:]
                                       if r["decision"] == "route_to_human"]}
    assert brief["language"] == "en"
    assert brief["intents"] == ["cancel_subscription", "order_status"]
    assert "cancellation" in brief["topics"]
    assert (brief["tier"], brief["channel"], brief["asked_for_person"]) == ("gold", "whatsapp",
                                                                           False)
    conversation = brief["conversation"]
    assert conversation["turns"] == 2 and conversation["fallbacks"] == 0
    frustration = conversation["frustration"]
    scores = [round(d["facts"]["frustration.score"], 2) for d in (routed, first)]
    assert frustration["recent"] == scores and frustration["now"] == scores[0]
    assert frustration["mean"] == round(routed["facts"]["frustration.mean"], 2)
    assert frustration["trend"] == round(scores[0] - scores[1], 3)


def test_the_turns_of_a_conversation_with_a_person_carry_the_brief_updated(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    routed = say(client, cid, "t-1", "I want to talk to a human")
    assert routed["handoff"]["brief"]["asked_for_person"] is True
    later = client.post(f"/v1/conversations/{cid}/turns", json={
        "turn_id": "t-2", "message": {"text": "Hello? My card was charged twice.",
                                      "intent": "billing_issue"},
        "bot": {"fallback": True}}).get_json()
    brief = later["handoff"]["brief"]
    assert later["reasons"][0]["rule"] == "handoff-in-progress"
    assert brief["why"]["rule"] == "handoff-in-progress"
    assert brief["why"]["decisive"] == later["reasons"][0]["description"]
    assert brief["intents"] == ["billing_issue"]
    assert brief["conversation"]["turns"] == 2 and brief["conversation"]["fallbacks"] == 1
    assert brief["asked_for_person"] is True  # at turn 1: still true at turn 2
    assert len(brief["conversation"]["frustration"]["recent"]) == 2


def test_what_the_customer_wanted_is_bounded_most_recent_first(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    intents = ["track_order", "change_address", "refund_status", "track_order",
               "nlu_fallback", "affirm", "loyalty_points", "gift_card", "opening_hours",
               "deny"]
    for n, intent in enumerate(intents, 1):
        client.post(f"/v1/conversations/{cid}/turns", json={
            "turn_id": f"t-{n}", "message": {"intent": intent, "intent_confidence": 0.9}})
    routed = say(client, cid, "t-99", "Can I speak to an agent please")
    # Distinct, most recent first, at most 5; a fallback, a yes and a no say nothing of
    # what the customer wanted.
    assert routed["handoff"]["brief"]["intents"] == [
        "opening_hours", "gift_card", "loyalty_points", "track_order", "refund_status"]


def test_a_retry_gets_the_same_brief(client: FlaskClient,
                                     new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = say(client, cid, "t-1", "I need to speak to someone, my account was hacked")
    again = say(client, cid, "t-1", "I need to speak to someone, my account was hacked")
    assert again["replayed"] is True
    assert again["handoff"]["brief"] == first["handoff"]["brief"]


def test_a_release_keeps_what_the_customer_wanted(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    client.post(f"/v1/conversations/{cid}/turns", json={
        "turn_id": "t-1", "message": {"text": "I want a person", "intent": "refund_status"}})
    assert client.post(f"/v1/conversations/{cid}/release").status_code == 200
    again = client.post(f"/v1/conversations/{cid}/turns", json={
        "turn_id": "t-2", "message": {"text": "Let me talk to a human again",
                                      "intent": "change_address"}}).get_json()
    assert again["reasons"][0]["rule"] != "handoff-in-progress"
    assert again["handoff"]["brief"]["intents"] == ["change_address", "refund_status"]
    summary = client.get(f"/v1/conversations/{cid}").get_json()
    assert "seen" not in summary and "scoring" not in summary


def test_dry_runs_brief_every_handoff_too(client: FlaskClient) -> None:
    response = client.post("/v1/evaluate", json={"turns": [
        {"message": {"text": "hi there"}},
        {"message": {"text": "this is useless, get me a human"}},
        {"message": {"text": "hello?"}}]})
    decisions = response.get_json()["decisions"]
    assert [d["decision"] for d in decisions] == ["keep_with_bot", "route_to_human",
                                                   "route_to_human"]
    assert decisions[0]["handoff"] is None
    assert [d["handoff"]["brief"]["conversation"]["turns"] for d in decisions[1:]] == [2, 3]


def test_no_brief_holds_a_word_the_customer_wrote(
        redis_url: str, tmp_path: Path, new_conversation_id: Callable[..., str]) -> None:
    policy_text = "\n".join(p.read_text(encoding="utf-8").casefold()
                            for p in default_rules_dir().rglob("*.yaml"))
    for word in SENT_WORDS:  # honest: nothing escalator knows could say these words
        assert word not in policy_text
    log = tmp_path / "decisions.jsonl"
    app = create_app(Config(redis_url=redis_url, env="test", decision_log=str(log)))
    answers: list[dict[str, Any]] = []
    try:
        client = app.test_client()
        cid = new_conversation_id()
        texts = [*SENT_TEXTS, f"Still waiting: {SENT_WORDS[0]}, {SENT_WORDS[2]}, {SENT_WORDS[4]}"]
        for n, text in enumerate(texts, 1):
            answers.append(client.post(f"/v1/conversations/{cid}/turns", json={
                "turn_id": f"t-{n}", "message": {"text": text, "intent": "order_issue"},
                "customer": {"tier": "gold"}, "channel": "web"}).get_json())
        answers.append(client.post("/v1/evaluate", json={"turns": [
            {"message": {"text": text}} for text in texts]}).get_json())
    finally:
        app.extensions[EXTENSION].close()
    briefs = [a["handoff"]["brief"] for a in answers[:-1] if a["handoff"]]
    briefs += [d["handoff"]["brief"] for d in answers[-1]["decisions"] if d["handoff"]]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    briefs += [r["handoff"]["brief"] for r in records if r["handoff"]]
    assert len(briefs) >= 6
    assert sent_words_in([answers, records, briefs]) == []
    # What the briefs do say: labels (ours and the caller's) and numbers.
    assert {"order_issue"} == {i for b in briefs for i in b["intents"]}
