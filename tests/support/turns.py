"""Turns through the Flask test client, as a chatbot platform sends them."""

from __future__ import annotations

import json
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


# Words a customer might type that are in no lexicon, rule or message of the default policy
# (tests check it): one of them in a brief or a log came from what the customer wrote.
SENT_WORDS = ("zorblaxian", "quiffleworth", "snargleblat", "vexdrumple", "plonquist")
# A conversation that uses them and ends with a request for a person.
SENT_TEXTS = (
    f"My {SENT_WORDS[0]} from {SENT_WORDS[1]} never arrived",
    f"I want to cancel the {SENT_WORDS[2]} subscription, this is a scam!!",
    f"{SENT_WORDS[3].upper()} {SENT_WORDS[4]}: let me talk to a human now",
)
# All of them in one message that asks for a person.
SENT_IN_ONE = f"{', '.join(SENT_WORDS)}!! This is useless, let me talk to a human now"


def sent_words_in(value: Any) -> list[str]:
    """The SENT_WORDS found anywhere in a JSON-like value (any case)."""
    text = json.dumps(value, default=str).casefold()
    return [word for word in SENT_WORDS if word in text]
