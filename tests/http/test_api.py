"""The HTTP contract: what a chatbot platform sends and gets back, and every error code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import REGISTRY


def turn(turn_id: str, text: str | None = "Where is my parcel?", **extra: Any) -> dict[str, Any]:
    message = {"text": text} if text is not None else {}
    message.update(extra.pop("message", {}))
    return {"turn_id": turn_id, "message": message, **extra}


def post_turn(client: FlaskClient, cid: str, body: Any, **kwargs: Any) -> Any:
    return client.post(f"/v1/conversations/{cid}/turns", json=body, **kwargs)


def test_a_turn_gets_an_explained_decision(client: FlaskClient,
                                           new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    response = post_turn(client, cid, turn("t-1", channel="web",
                                           customer={"tier": "gold", "segment": "consumer"}))
    assert response.status_code == 200
    body = response.get_json()
    assert body["decision"] == "keep_with_bot"
    assert body["conversation_id"] == cid and body["turn_id"] == "t-1"
    assert body["turn_index"] == 1
    assert len(body["decision_id"]) >= 16
    assert set(body["scores"]) == {"sentiment", "frustration", "complexity", "loop"}
    assert body["facts"]["turn_index"] == 1
    assert body["facts"]["customer.tier"] == "gold"
    assert body["facts"]["channel"] == "web"
    assert body["ruleset"]["name"] == "default"
    assert body["ruleset"]["digest"].startswith("sha256:")
    assert body["degraded"] is False and body["replayed"] is False
    assert body["handoff"] is None


def test_an_explicit_request_routes_with_a_sentence_for_the_customer(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    body = post_turn(client, new_conversation_id(),
                     turn("t-1", "I want to talk to a human please")).get_json()
    assert body["decision"] == "route_to_human"
    assert body["reasons"][0]["rule"] == "explicit-human-request"
    assert body["reasons"][0]["description"]
    assert body["handoff"]["queue"]
    assert body["handoff"]["urgency"] in {"low", "normal", "high", "urgent"}
    assert body["handoff"]["customer_message"]


def test_turn_indexes_count_up(client: FlaskClient,
                               new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    indexes = [post_turn(client, cid, turn(f"t-{i}", f"question number {i}"))
               .get_json()["turn_index"] for i in range(1, 4)]
    assert indexes == [1, 2, 3]


def test_a_retried_turn_gets_its_stored_decision_and_changes_nothing(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = post_turn(client, cid, turn("t-1")).get_json()
    state_before = client.get(f"/v1/conversations/{cid}").get_json()
    again = post_turn(client, cid, turn("t-1")).get_json()
    assert again["replayed"] is True
    assert again["decision_id"] == first["decision_id"]
    assert again["turn_index"] == 1
    assert client.get(f"/v1/conversations/{cid}").get_json() == state_before


def test_retries_are_counted_as_retries_not_decisions(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    routed = {"decision": "route_to_human", "channel": "sms"}
    before = (count("escalator_decisions_total", **routed),
              count("escalator_retried_turns_total", channel="sms"),
              count("escalator_rule_matches_total", rule="explicit-human-request"),
              count("escalator_decision_duration_seconds_count"))
    cid = new_conversation_id()
    body = turn("t-1", "I want to talk to a human", channel="sms")
    for _ in range(200):  # one turn and 199 retries of it
        assert post_turn(client, cid, body).status_code == 200
    after = (count("escalator_decisions_total", **routed),
             count("escalator_retried_turns_total", channel="sms"),
             count("escalator_rule_matches_total", rule="explicit-human-request"),
             count("escalator_decision_duration_seconds_count"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 199, 1, 1]


def test_intent_only_turns_are_accepted(client: FlaskClient,
                                        new_conversation_id: Callable[..., str]) -> None:
    body = post_turn(client, new_conversation_id(), turn(
        "t-1", None, message={"intent": "order_status", "intent_confidence": 0.9},
        bot={"prompt_id": "ask_order_number", "fallback": False},
    ))
    assert body.status_code == 200
    assert body.get_json()["facts"]["intent.confidence"] == 0.9


def test_state_summary_and_erasure(client: FlaskClient,
                                   new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    post_turn(client, cid, turn("t-1"))
    summary = client.get(f"/v1/conversations/{cid}")
    assert summary.status_code == 200
    assert summary.get_json()["turn_index"] == 1
    assert client.delete(f"/v1/conversations/{cid}").status_code == 204
    gone = client.get(f"/v1/conversations/{cid}")
    assert gone.status_code == 404
    assert gone.get_json()["error"]["code"] == "not_found"


def test_handoff_is_sticky_until_released(client: FlaskClient,
                                          new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    assert post_turn(client, cid, turn("t-1", "agent please")).get_json()["decision"] == \
        "route_to_human"
    calm = post_turn(client, cid, turn("t-2", "thanks, that's all")).get_json()
    assert calm["decision"] == "route_to_human"
    assert calm["reasons"][0]["rule"] == "handoff-in-progress"
    released = client.post(f"/v1/conversations/{cid}/release")
    assert released.status_code == 200
    assert released.get_json()["escalated"] is False
    after = post_turn(client, cid, turn("t-3", "thanks, that's all")).get_json()
    assert after["decision"] == "keep_with_bot"
    assert after["turn_index"] == 3


def test_an_unreadable_stored_value_is_reported_and_the_next_turn_starts_afresh(
        client: FlaskClient, redis_client: redis.Redis,
        new_conversation_id: Callable[..., str]) -> None:
    # Before: every turn degraded with turn index 1, GET and release 503 "try again
    # shortly" while Redis was fine, the key kept for ever, and nothing logged.
    cid = new_conversation_id()
    redis_client.set(f"escalator:{{{cid}}}:conversation", "3:5:not deflate")
    for response in (client.get(f"/v1/conversations/{cid}"),
                     client.post(f"/v1/conversations/{cid}/release")):
        assert response.status_code == 409
        assert error_code(response) == "state_unreadable"
        assert response.get_json()["error"]["details"] == {"reason": "deflate"}
    first = post_turn(client, cid, turn("t-1")).get_json()
    assert (first["turn_index"], first["degraded"]) == (1, False)
    second = post_turn(client, cid, turn("t-2")).get_json()
    assert (second["turn_index"], second["degraded"]) == (2, False)
    summary = client.get(f"/v1/conversations/{cid}").get_json()
    assert summary["turn_index"] == 2
    assert 0 < redis_client.ttl(f"escalator:{{{cid}}}:conversation") <= 86400


def test_release_of_an_unknown_conversation_is_404(client: FlaskClient) -> None:
    response = client.post("/v1/conversations/never-seen-0001/release")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_no_state_is_kept_without_consent(client: FlaskClient,
                                          new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    post_turn(client, cid, turn("t-1"))
    body = post_turn(client, cid, turn("t-2", consent={"store_state": False})).get_json()
    assert body["turn_index"] == 1  # decided without memory
    assert client.get(f"/v1/conversations/{cid}").status_code == 404  # and earlier state erased


def test_ruleset_and_probes(client: FlaskClient) -> None:
    ruleset = client.get("/v1/ruleset").get_json()
    assert ruleset["name"] == "default"
    assert any(rule["id"] == "explicit-human-request" for rule in ruleset["rules"])
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert b"escalator_decisions_total" in metrics.data


# --- errors: always JSON, always a stable code, never a state change -------------------

def error_code(response: Any) -> str:
    assert response.is_json, response.data
    code: str = response.get_json()["error"]["code"]
    return code


@pytest.mark.parametrize("body, field", [
    ({"message": {"text": "hi"}}, "turn_id"),
    ({"turn_id": "t-1"}, "message"),
    ({"turn_id": "t-1", "message": {}}, "message"),
    ({"turn_id": "t 1", "message": {"text": "hi"}}, "turn_id"),
    ({"turn_id": "t-1", "message": {"text": "hi"}, "surprise": 1}, "surprise"),
    ({"turn_id": "t-1", "message": {"text": "hi", "mood": "bad"}}, "message"),
    ({"turn_id": "t-1", "message": {"text": "x" * 8001}}, "message"),
    ({"turn_id": "t-1", "message": {"intent": "a", "intent_confidence": "0.5"}}, "message"),
    ({"turn_id": "t-1", "message": {"intent": "a", "intent_confidence": 1.5}}, "message"),
    ({"turn_id": "t-1", "message": {"text": "hi"}, "bot": {"fallback": "yes"}}, "bot"),
    ({"turn_id": "t-1", "message": {"text": "hi"}, "context": {"note": "free text here"}},
     "context"),
    ({"turn_id": "t-1", "message": {"text": "hi"}, "context": {"nested": {"a": 1}}}, "context"),
    ({"turn_id": "t-1", "message": {"text": "hi"}, "timestamp": "yesterday"}, "timestamp"),
])
def test_invalid_turns_are_400_with_field_details(
        client: FlaskClient, new_conversation_id: Callable[..., str],
        body: dict[str, Any], field: str) -> None:
    cid = new_conversation_id()
    response = post_turn(client, cid, body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert field in response.get_json()["error"]["details"]
    assert client.get(f"/v1/conversations/{cid}").status_code == 404  # nothing stored


def test_too_many_context_keys_is_400(client: FlaskClient) -> None:
    context = {f"k{i}": i for i in range(33)}
    response = post_turn(client, "c-ctx", turn("t-1", context=context))
    assert response.status_code == 400
    assert "context" in response.get_json()["error"]["details"]


def test_bad_conversation_id_is_400(client: FlaskClient) -> None:
    response = post_turn(client, "has space", turn("t-1"))
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    long_id = "c" * 129
    assert client.get(f"/v1/conversations/{long_id}").status_code == 400


def test_not_json_is_415(client: FlaskClient) -> None:
    response = client.post("/v1/conversations/c-1/turns", data="turn_id=t-1",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


def test_malformed_json_is_400(client: FlaskClient) -> None:
    for raw in ('{"turn_id": ', '[1, 2]', '{"turn_id": "t", "message": {"intent": "a", '
                '"intent_confidence": NaN}}'):
        response = client.post("/v1/conversations/c-1/turns", data=raw,
                               content_type="application/json")
        assert response.status_code == 400, raw
        assert error_code(response) == "invalid_request"


def test_oversized_body_is_413(client: FlaskClient) -> None:
    big = turn("t-1", "x" * 100, context={"pad": 1})
    big["message"]["text"] = "word " * 20000  # ~100 KB, over the 64 KB default
    response = post_turn(client, "c-big", big)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def test_unknown_route_is_404_and_wrong_method_is_405(client: FlaskClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong = client.put("/v1/ruleset")
    assert wrong.status_code == 405 and error_code(wrong) == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
