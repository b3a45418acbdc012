"""Turns through the Flask test client, as a chatbot platform sends them."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def say(client: FlaskClient, cid: str, turn_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """Post a customer turn saying `text` (other fields of the turn in `extra`); its decision
    (the answer must be a 200)."""
    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": turn_id, "message": {"text": text}, **extra})
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body
