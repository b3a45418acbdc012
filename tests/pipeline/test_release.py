"""Release: an agent hands a conversation back to the bot, which gets a fair new start.

Before, release reset only the handoff: the loop and streak counters kept counting the
whole conversation, so the next ordinary turn was routed straight back to a person by the
same rules (`customer-repeating`, `bot-repeating-prompt`) and only DELETE got out of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient

ADDRESS = "My address is 12 Baker Street, London NW1 6XE"


def when(minutes_ago: float) -> str:
    """An ISO timestamp this many minutes before now (the service's clock)."""
    return datetime.fromtimestamp(time.time() - minutes_ago * 60, UTC).isoformat()


def post(client: FlaskClient, cid: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{cid}/turns", json=body)
    assert response.status_code == 200, response.data
    decided: dict[str, Any] = response.get_json()
    return decided


def asked_for_the_address(client: FlaskClient, cid: str, first: int, minutes_ago: float
                          ) -> list[dict[str, Any]]:
    """Three turns in which the bot asks ask_address and the customer gives it each time."""
    return [post(client, cid, {
        "turn_id": f"t-{n}", "message": {"text": ADDRESS, "intent": "inform"},
        "bot": {"prompt_id": "ask_address"}, "timestamp": when(minutes_ago - n)})
        for n in range(first, first + 3)]


def rules_of(decision: dict[str, Any]) -> list[str]:
    return [reason["rule"] for reason in decision["reasons"]]


def test_after_a_release_the_next_ordinary_turn_stays_with_the_bot(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    looping = asked_for_the_address(client, cid, 1, minutes_ago=20)
    assert looping[-1]["decision"] == "route_to_human"
    assert {"customer-repeating", "bot-repeating-prompt"} & set(rules_of(looping[-1]))

    released = client.post(f"/v1/conversations/{cid}/release")
    assert released.status_code == 200
    summary = released.get_json()
    assert (summary["escalated"], summary["escalations"], summary["turn_index"]) == (False, 1, 3)

    after = post(client, cid, {"turn_id": "t-4", "bot": {"prompt_id": "anything_else"},
                               "message": {"text": "Thanks. When will the parcel arrive?"}})
    # Before: route_to_human by customer-repeating and bot-repeating-prompt, for good.
    assert after["decision"] == "keep_with_bot", rules_of(after)
    facts = after["facts"]
    # What release resets ...
    assert (facts["loop.repeats"], facts["loop.bot_repeats"], facts["loop.score"]) == (0, 0, 0)
    # ... and what it keeps.
    assert facts["turn_index"] == 4
    assert facts["conversation.escalations"] == 1
    assert facts["conversation.escalated"] is False
    assert facts["conversation.minutes"] >= 17


def test_the_bot_may_ask_again_after_a_release_and_the_caps_still_hold(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    asked_for_the_address(client, cid, 1, minutes_ago=30)
    assert client.post(f"/v1/conversations/{cid}/release").status_code == 200
    again = asked_for_the_address(client, cid, 4, minutes_ago=10)
    # The bot asking once more for what it needs is a fair start, not a loop ...
    assert again[0]["decision"] == "keep_with_bot", rules_of(again[0])
    # ... but going round in circles again reaches a person again, as the first time.
    assert again[-1]["decision"] == "route_to_human"
    assert again[-1]["facts"]["conversation.escalations"] == 1
    summary = client.get(f"/v1/conversations/{cid}").get_json()
    assert (summary["escalated"], summary["escalations"], summary["turn_index"]) == (True, 2, 6)


def test_a_frustrated_customer_handed_back_is_not_routed_on_a_calm_turn(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    # The decayed frustration mean is reset too: kept, one calm turn after a release left
    # it above sustained-frustration's threshold and sent the customer straight back.
    cid = new_conversation_id()
    angry = ["This is ridiculous, my parcel never came!!!",
             "I'm furious, this is the worst service ever, nobody helps!!!",
             "Absolutely useless. I have waited two weeks, this is a joke!!!"]
    for n, text in enumerate(angry, 1):
        decided = post(client, cid, {"turn_id": f"t-{n}", "message": {"text": text}})
    assert decided["decision"] == "route_to_human"
    assert decided["facts"]["frustration.mean"] >= 0.65
    assert client.post(f"/v1/conversations/{cid}/release").status_code == 200
    calm = post(client, cid, {"turn_id": "t-4",
                              "message": {"text": "Ok, the agent sorted it out, thank you"}})
    assert calm["decision"] == "keep_with_bot", rules_of(calm)
    assert calm["facts"]["frustration.mean"] == calm["facts"]["frustration.score"]
