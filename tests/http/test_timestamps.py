"""Caller-supplied timestamps: a live turn's must be plausible, and conversation.minutes
never exceeds the state's TTL whatever the timestamps say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

NewId = Callable[..., str]


def at(offset: timedelta) -> str:
    """An ISO timestamp this far from now."""
    return (datetime.now(UTC) + offset).isoformat()


def send(client: FlaskClient, cid: str, turn_id: str, timestamp: str | None) -> Any:
    body: dict[str, Any] = {"turn_id": turn_id, "message": {"text": "where is my parcel?"}}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return client.post(f"/v1/conversations/{cid}/turns", json=body)


@pytest.mark.parametrize("timestamp", [
    "1859-06-01T00:00:00Z",  # gave conversation.minutes = 5,258,964,959 on the next turn
    -timedelta(hours=24, minutes=1),  # older than the state TTL
    timedelta(minutes=16),  # ahead of the service's clock by more than a skew
    "9999-12-31T23:59:59+00:00",
])
def test_an_implausible_timestamp_is_refused_and_changes_nothing(
        client: FlaskClient, new_conversation_id: NewId, timestamp: str | timedelta) -> None:
    cid = new_conversation_id()
    response = send(client, cid, "t-1",
                    at(timestamp) if isinstance(timestamp, timedelta) else timestamp)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    (problem,) = error["details"]["timestamp"]
    assert problem.startswith("must be within 24 h before and 15 min after the service's clock")
    assert problem.endswith("leave it out to use the service's clock")
    assert client.get(f"/v1/conversations/{cid}").status_code == 404


def test_a_plausible_timestamp_sets_the_conversation_clock(
        client: FlaskClient, new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    assert send(client, cid, "t-1", at(-timedelta(hours=2))).status_code == 200
    minutes = send(client, cid, "t-2", None).get_json()["facts"]["conversation.minutes"]
    assert 119.9 < minutes < 121


@pytest.fixture
def short_ttl_client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(state_ttl_seconds=600).test_client()


def test_conversation_minutes_never_exceed_the_state_ttl(
        short_ttl_client: FlaskClient, new_conversation_id: NewId) -> None:
    # Both timestamps lie inside the window (10 min TTL back, 15 min ahead), 24 min apart.
    cid = new_conversation_id()
    first = send(short_ttl_client, cid, "t-1", at(-timedelta(minutes=9)))
    assert first.status_code == 200
    later = send(short_ttl_client, cid, "t-2", at(timedelta(minutes=14))).get_json()
    assert later["facts"]["conversation.minutes"] == 10.0


def test_a_transcript_keeps_its_own_dates_and_minutes_stay_within_the_ttl(
        client: FlaskClient) -> None:
    # Dry runs and replays decide old conversations: no window, but the same cap.
    turns = [{"message": {"text": "where is my parcel?"}, "timestamp": "1859-06-01T00:00:00Z"},
             {"message": {"text": "still waiting"}, "timestamp": "2026-11-27T15:04:05Z"}]
    response = client.post("/v1/evaluate", json={"turns": turns})
    assert response.status_code == 200
    minutes = [d["facts"]["conversation.minutes"] for d in response.get_json()["decisions"]]
    assert minutes == [0.0, 1440.0]  # the default TTL, 24 h
