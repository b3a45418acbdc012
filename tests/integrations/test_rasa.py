"""The Rasa custom action, served by rasa_sdk's own action server app and driven by its test
client with full trackers in the shape Rasa sends, end to end on escalator."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.integrations import (
    Front,
    brief_of,
    conversation_state,
    fixture_json,
    require_extra,
    unique,
)
from support.turns import SENT_IN_ONE, sent_words_in

from escalator.integrations.client import EscalatorClient
from escalator.integrations.ids import escalator_id

rasa_sdk = require_extra("rasa_sdk", "rasa")
require_extra("sanic_testing", "rasa")
from rasa_sdk import Tracker  # noqa: E402
from rasa_sdk.endpoint import create_app  # noqa: E402
from rasa_sdk.executor import ActionExecutor  # noqa: E402
from sanic import Sanic  # noqa: E402
from sanic_testing import TestManager  # noqa: E402

from escalator.integrations.rasa import ACTION_NAME, EscalatorAction  # noqa: E402

FIXTURES = ["calm.json", "request_for_person.json", "nlu_fallback.json"]
# rasa_sdk refuses to build two apps of one name unless in test mode.
Sanic.test_mode = True


def action_call(name: str, sender: str | None = None) -> dict[str, Any]:
    """A fixture action call for a fresh conversation, with fresh message ids."""
    call: dict[str, Any] = copy.deepcopy(fixture_json(f"rasa/{name}"))
    call.pop("_source")
    sender = sender or unique("rasa-")
    call["sender_id"] = call["tracker"]["sender_id"] = sender
    call["version"] = rasa_sdk.__version__
    for event in call["tracker"]["events"]:
        if event.get("event") == "user" and event.get("message_id"):
            event["message_id"] = event["parse_data"]["message_id"] = uuid.uuid4().hex
    users = [e for e in call["tracker"]["events"] if e.get("event") == "user"]
    call["tracker"]["latest_message"] = users[-1]["parse_data"]
    return call


def action_server(client: EscalatorClient) -> Any:
    """rasa_sdk's action server app with the action registered, and its test client."""
    executor = ActionExecutor()
    executor.register_action(EscalatorAction(client=client))
    app = create_app(executor)
    TestManager(app)
    return app.test_client


@pytest.fixture
def webhook(escalator_url: str, platform_ids: Callable[[str], str]
            ) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    test_client = action_server(EscalatorClient(escalator_url))

    def post(call: dict[str, Any]) -> dict[str, Any]:
        platform_ids(escalator_id(call["sender_id"]))
        _, response = test_client.post("/webhook", json=call)
        assert response.status == 200, response.body
        body: dict[str, Any] = response.json
        return body

    yield post


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_tracker_is_one_rasa_sdk_reads(name: str) -> None:
    call = fixture_json(f"rasa/{name}")
    tracker = Tracker.from_dict(call["tracker"])
    assert tracker.sender_id == call["sender_id"]
    assert tracker.latest_message["intent"]["name"]
    assert tracker.get_latest_input_channel() == "socketio"
    assert call["next_action"] == ACTION_NAME and ACTION_NAME in call["domain"]["actions"]


def test_the_action_server_lists_the_action(escalator_url: str) -> None:
    _, response = action_server(EscalatorClient(escalator_url)).get("/actions")
    assert {"name": ACTION_NAME} in response.json


def test_a_calm_message_stays_with_the_bot_silently(
        webhook: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    answer = webhook(action_call("calm.json"))
    assert answer == {"events": [], "responses": []}


def test_a_request_for_a_person_pauses_the_bot_with_the_handoff_message(
        webhook: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    answer = webhook(action_call("request_for_person.json"))
    assert [event["event"] for event in answer["events"]] == ["pause"]
    [message] = answer["responses"]
    assert message["text"]
    handoff = message["custom"]["handoff"]
    assert handoff["customer_message"] == message["text"]
    assert handoff["queue"] and handoff["urgency"] and len(handoff["decision_id"]) == 32
    assert handoff["reasons"][0] == "explicit-human-request"


def test_what_the_action_reads_from_the_tracker(escalator_url: str) -> None:
    action = EscalatorAction(client=EscalatorClient(escalator_url))
    asked = action.turn(Tracker.from_dict(fixture_json("rasa/request_for_person.json")["tracker"]))
    assert asked is not None
    assert (asked.intent, asked.intent_confidence) == ("complain", 0.7731)
    assert asked.prompt_id == "utter_ask_order_number" and asked.fallback is False
    assert asked.turn_id == "9b2e4d6f8a0c4e1b9d3f5a7c2e4b6d8f"
    assert (asked.tier, asked.channel) == ("gold", "socketio")
    # After the bot asked to rephrase an nlu_fallback message, and without a message id:
    again = action.turn(Tracker.from_dict(fixture_json("rasa/nlu_fallback.json")["tracker"]))
    assert again is not None and again.intent == "nlu_fallback"
    assert again.prompt_id == "utter_ask_rephrase" and again.fallback is True
    assert again.turn_id == "ts-1764255890.7"


def test_a_retried_action_call_is_one_turn(
        escalator_url: str, webhook: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    call = action_call("nlu_fallback.json")
    first, again = webhook(call), webhook(call)
    assert first == again
    stored = conversation_state(escalator_url, escalator_id(call["sender_id"]))
    assert stored is not None and stored["turn_index"] == 1


def test_the_handoff_brief_reaches_the_connector(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    call = action_call("request_for_person.json")
    platform_ids(escalator_id(call["sender_id"]))
    action = EscalatorAction(client=EscalatorClient(escalator_url))
    real = action.client.decide(action.turn(Tracker.from_dict(call["tracker"])))  # type: ignore[arg-type]
    with Front(None, ["canned"], canned=real.body()) as front:
        _, response = action_server(EscalatorClient(front.url)).post("/webhook", json=call)
    assert response.json["responses"][0]["custom"]["handoff"]["brief"] == brief_of(real.body())
    assert [e["event"] for e in response.json["events"]] == ["pause"]


def test_no_brief_rasa_gets_holds_a_word_the_customer_wrote(
        webhook: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    call = action_call("request_for_person.json")
    latest = [e for e in call["tracker"]["events"] if e.get("event") == "user"][-1]
    latest["text"] = latest["parse_data"]["text"] = SENT_IN_ONE
    call["tracker"]["latest_message"] = latest["parse_data"]
    response = webhook(call)
    assert response["responses"][0]["custom"]["handoff"]["brief"]["why"]["decisive"]
    assert sent_words_in(response) == []
