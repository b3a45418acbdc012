"""turn_id is an idempotency key: a retry gets the stored decision, a reused key with other
content is refused.

Before, a turn id sent again with a different body silently got the first body's decision
back, and release took any body at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

WHERE = {"turn_id": "t-1", "message": {"text": "Where is my parcel?"}, "channel": "web"}


def post(client: FlaskClient, cid: str, body: Any) -> Any:
    return client.post(f"/v1/conversations/{cid}/turns", json=body)


def stored(client: FlaskClient, cid: str) -> dict[str, Any]:
    summary: dict[str, Any] = client.get(f"/v1/conversations/{cid}").get_json()
    return summary


def test_a_turn_id_reused_with_other_content_is_refused_and_changes_nothing(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    assert post(client, cid, WHERE).status_code == 200
    before = stored(client, cid)
    other = {**WHERE, "message": {"text": "I want to talk to a human"}}

    response = post(client, cid, other)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "t-1" in error["message"]
    assert stored(client, cid) == before


def test_a_retry_with_the_same_content_written_differently_is_a_retry(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    first = post(client, cid, WHERE).get_json()
    # Other key order, other spacing, the channel in capitals (read in lower case): the
    # same turn, so the same decision.
    same = json.dumps({"channel": "WEB", "message": {"text": "Where is my parcel?"},
                       "turn_id": "t-1"}, indent=2)
    again = client.post(f"/v1/conversations/{cid}/turns", data=same,
                        content_type="application/json").get_json()
    assert again["replayed"] is True
    assert again["decision_id"] == first["decision_id"]


@pytest.mark.parametrize("change", [
    {"bot": {"prompt_id": "ask_order_number"}},
    {"message": {"text": "Where is my parcel?", "language": "es"}},
    {"customer": {"tier": "gold"}},
    {"context": {"agents_available": 0}},
])
def test_any_change_of_what_is_decided_counts_as_other_content(
        client: FlaskClient, new_conversation_id: Callable[..., str],
        change: dict[str, Any]) -> None:
    cid = new_conversation_id()
    assert post(client, cid, WHERE).status_code == 200
    response = post(client, cid, {**WHERE, **change})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"


def test_the_window_in_which_a_turn_id_is_recognised(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    bodies = [{"turn_id": f"t-{n}", "message": {"text": f"question {n}"}} for n in range(1, 21)]
    for body in bodies:
        assert post(client, cid, body).status_code == 200
    # The last 2 turns get their stored decision; the 14 before them are recognised and
    # refused, with 422 when the content differs; older ids are forgotten and decided as new
    # turns.
    assert post(client, cid, bodies[19]).get_json()["replayed"] is True
    assert post(client, cid, bodies[18]).get_json()["replayed"] is True
    assert post(client, cid, bodies[17]).get_json()["error"]["code"] == "turn_superseded"
    assert post(client, cid, bodies[4]).get_json()["error"]["code"] == "turn_superseded"
    changed = {**bodies[4], "message": {"text": "something else"}}
    assert post(client, cid, changed).get_json()["error"]["code"] == "idempotency_key_reused"
    assert stored(client, cid)["turn_index"] == 20
    forgotten = post(client, cid, bodies[3]).get_json()
    assert (forgotten["turn_index"], forgotten["replayed"]) == (21, False)


@pytest.mark.parametrize("body", [None, {}])
def test_release_takes_an_empty_body(client: FlaskClient,
                                     new_conversation_id: Callable[..., str],
                                     body: Any) -> None:
    cid = new_conversation_id()
    assert post(client, cid, {**WHERE, "message": {"text": "agent please"}}).status_code == 200
    response = client.post(f"/v1/conversations/{cid}/release", json=body) if body is not None \
        else client.post(f"/v1/conversations/{cid}/release")
    assert response.status_code == 200
    assert response.get_json()["escalated"] is False


@pytest.mark.parametrize("body, field", [
    ({"reason": "resolved"}, "reason"),
    ({"agent": {"id": 7}}, "agent"),
    ([], "_schema"),
    ("released", "_schema"),
])
def test_release_refuses_what_it_does_not_take_and_changes_nothing(
        client: FlaskClient, new_conversation_id: Callable[..., str], body: Any,
        field: str) -> None:
    cid = new_conversation_id()
    assert post(client, cid, {**WHERE, "message": {"text": "agent please"}}).status_code == 200
    before = stored(client, cid)
    response = client.post(f"/v1/conversations/{cid}/release", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["details"]
    assert stored(client, cid) == before


def test_release_refuses_a_body_that_is_not_json(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    assert post(client, cid, WHERE).status_code == 200
    response = client.post(f"/v1/conversations/{cid}/release", data="resolved",
                           content_type="text/plain")
    assert response.status_code == 415
