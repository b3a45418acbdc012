"""The Dialogflow CX webhook escalator serves: WebhookRequests in the shape agents send,
read by the official google-cloud-dialogflow-cx types, and every answer re-parsed strictly
as a WebhookResponse by the same types (a field CX would reject fails the test)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from flask.testing import FlaskClient
from support.integrations import brief_of, conversation_state, fixture_json, require_extra
from support.turns import SENT_TEXTS, sent_words_in

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.integrations import dialogflow_cx
from escalator.integrations.ids import VALID_ID

cx = require_extra("google.cloud.dialogflowcx_v3.types", "dialogflow")
ROUTE = "/v1/integrations/dialogflow-cx"
FIXTURES = sorted(p.name for p in (Path(__file__).parent / "fixtures" / "dialogflow_cx")
                  .glob("*.json"))


def webhook_request(name: str, session: str | None = None, **changes: Any) -> dict[str, Any]:
    """A fixture request for a fresh session (or `session`) and a fresh turn id."""
    data: dict[str, Any] = copy.deepcopy(fixture_json(f"dialogflow_cx/{name}"))
    path = data["sessionInfo"]["session"]
    data["sessionInfo"]["session"] = session or path.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    data["detectIntentResponseId"] = str(uuid.uuid4())
    data.update(changes)
    return data


def conversation_of(request: dict[str, Any]) -> str:
    return dialogflow_cx.CONVERSATIONS(request["sessionInfo"]["session"])


def checked(body: dict[str, Any]) -> Any:
    """The answer parsed strictly as a WebhookResponse (unknown or mistyped fields fail)."""
    return cx.WebhookResponse.from_json(json.dumps(body))


def call(client: FlaskClient, request: dict[str, Any], track: Callable[[str], str],
         **headers: str) -> dict[str, Any]:
    track(conversation_of(request))
    response = client.post(ROUTE, json=request, headers=headers)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    checked(body)
    return body


def parameters(answer: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = answer["sessionInfo"]["parameters"]
    return found


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_is_a_webhook_request(name: str) -> None:
    raw = json.dumps(fixture_json(f"dialogflow_cx/{name}"))
    parsed = cx.WebhookRequest.from_json(raw, ignore_unknown_fields=True)
    assert parsed.detect_intent_response_id and parsed.session_info.session


def test_some_fixtures_carry_fields_the_published_types_do_not_know() -> None:
    undocumented = []
    for name in FIXTURES:
        try:
            cx.WebhookRequest.from_json(json.dumps(fixture_json(f"dialogflow_cx/{name}")))
        except Exception:  # the protobuf JSON parser's ParseError
            undocumented.append(name)
    assert set(undocumented) == {"text_order_status.json", "no_match.json"}


def test_a_calm_message_stays_with_the_bot_undisturbed(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    answer = call(client, webhook_request("text_order_status.json"), platform_ids)
    # No message, no transition: only the decision, for the flow to branch on.
    assert set(answer) == {"sessionInfo"}
    assert parameters(answer)["escalator_decision"] == "keep_with_bot"
    assert parameters(answer)["escalator_queue"] is None
    parsed = checked(answer)
    assert not parsed.fulfillment_response.messages and not parsed.target_page


def test_a_request_for_a_person_hands_over_with_the_brief(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    answer = call(client, webhook_request("request_for_agent.json"), platform_ids)
    fulfillment = answer["fulfillmentResponse"]
    assert fulfillment["mergeBehavior"] == "REPLACE"
    text, handoff = fulfillment["messages"]
    assert text["text"]["text"][0].startswith("Of course.")
    metadata = handoff["liveAgentHandoff"]["metadata"]
    assert metadata["decision"] == "route_to_human" and metadata["reasons"][0] == \
        "explicit-human-request"
    assert (metadata["queue"], metadata["urgency"]) == (
        parameters(answer)["escalator_queue"], parameters(answer)["escalator_urgency"])
    assert parameters(answer)["escalator_decision"] == "route_to_human"
    assert parameters(answer)["escalator_rule"] == "explicit-human-request"
    brief = metadata["brief"]
    assert brief["why"]["rule"] == "explicit-human-request" and brief["asked_for_person"]
    assert (brief["tier"], brief["channel"], brief["intents"]) == ("gold", "web", ["Live_Agent"])
    # What CX makes of it: a LiveAgentHandoff whose metadata Struct holds the same brief.
    parsed = checked(answer)
    struct = type(parsed.fulfillment_response.messages[1].live_agent_handoff).to_dict(
        parsed.fulfillment_response.messages[1].live_agent_handoff)["metadata"]
    assert struct["brief"]["why"] == brief["why"]
    assert parsed.fulfillment_response.merge_behavior.name == "REPLACE"


def test_no_matches_in_a_row_are_bot_fallbacks_and_the_third_routes(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    first = webhook_request("no_match.json")
    session = first["sessionInfo"]["session"]
    answers = [call(client, first, platform_ids)]
    answers += [call(client, webhook_request("no_match.json", session=session), platform_ids)
                for _ in range(2)]
    decisions = [parameters(a)["escalator_decision"] for a in answers]
    assert decisions == ["keep_with_bot", "keep_with_bot", "route_to_human"]
    assert parameters(answers[2])["escalator_rule"] == "bot-fallback-cap"
    brief = brief_of({"decision": "route_to_human", "handoff": answers[2]["fulfillmentResponse"]
                      ["messages"][1]["liveAgentHandoff"]["metadata"]})
    assert brief["conversation"]["fallbacks"] == 3 and brief["intents"] == []


def test_a_voice_call_is_read_from_its_transcript_and_sentiment(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    request = webhook_request("voice_transcript.json")
    turn = dialogflow_cx.read_request(request)
    assert turn is not None
    assert turn.body["message"] == {"text": request["transcript"], "intent": "billing.dispute",
                                    "intent_confidence": 0.61, "language": "en-us"}
    assert turn.body["bot"] == {"prompt_id": "Billing_Menu"}
    assert turn.body["channel"] == "voice"
    assert turn.body["context"] == {"cx_sentiment": -0.7, "cx_sentiment_magnitude": 0.7}
    assert "2025550143" not in json.dumps(turn.body)  # the caller's number stays out
    assert VALID_ID.match(turn.conversation_id) and turn.conversation_id.startswith("cx:h:")
    answer = call(client, request, platform_ids)
    assert parameters(answer)["escalator_decision"] in ("keep_with_bot", "route_to_human")


def test_an_event_without_text_or_intent_is_not_a_turn(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    request = webhook_request("welcome_event.json")
    assert call(client, request, platform_ids) == {}
    assert client.get(f"/v1/conversations/{conversation_of(request)}").status_code == 404


def test_one_turn_called_twice_is_decided_once(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    request = webhook_request("request_for_agent.json")
    first = call(client, request, platform_ids)
    assert call(client, request, platform_ids) == first  # CX or a proxy retrying
    # The same customer turn reaching the webhook again from another fulfillment (the
    # next page's entry, another tag): already decided, so nothing changes.
    moved = {**request, "pageInfo": {"displayName": "Live Agent Handoff"},
             "fulfillmentInfo": {"tag": "escalator-entry"}}
    assert call(client, moved, platform_ids) == {}
    summary = client.get(f"/v1/conversations/{conversation_of(request)}").get_json()
    assert summary["turn_index"] == 1


def test_a_body_that_is_not_a_webhook_request_is_refused(client: FlaskClient) -> None:
    request = webhook_request("text_order_status.json")
    del request["sessionInfo"]
    response = client.post(ROUTE, json=request)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and "sessionInfo.session" in error["details"]
    assert client.post(ROUTE, json=["not", "an", "object"]).status_code == 400


def test_the_webhook_needs_a_caller_key_when_keys_are_set(
        redis_url: str, platform_ids: Callable[[str], str]) -> None:
    app = create_app(Config(redis_url=redis_url, env="test", api_keys=("cx-caller-key",)))
    try:
        client = app.test_client()
        request = webhook_request("text_order_status.json")
        assert client.post(ROUTE, json=request).status_code == 401
        answer = call(client, request, platform_ids, Authorization="Bearer cx-caller-key")
        assert parameters(answer)["escalator_decision"] == "keep_with_bot"
    finally:
        app.extensions[EXTENSION].close()


def test_a_session_is_one_conversation_whatever_its_path() -> None:
    path = fixture_json("dialogflow_cx/voice_transcript.json")["sessionInfo"]["session"]
    assert dialogflow_cx.CONVERSATIONS(path) == dialogflow_cx.CONVERSATIONS(path)
    assert dialogflow_cx.CONVERSATIONS(path) != dialogflow_cx.CONVERSATIONS(path + "x")
    assert len(dialogflow_cx.CONVERSATIONS(path)) <= 128


def test_the_route_is_documented(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    operation = document["paths"][ROUTE]["post"]
    assert {"200", "400", "401"} <= set(operation["responses"])


def test_end_to_end_on_escalator_serve(escalator_url: str,
                                       platform_ids: Callable[[str], str]) -> None:
    calm = webhook_request("text_order_status.json")
    session = calm["sessionInfo"]["session"]
    platform_ids(conversation_of(calm))
    asked = webhook_request("request_for_agent.json", session=session)
    answers = []
    for request in (calm, asked):
        response = urllib3.request("POST", escalator_url + ROUTE, json=request, retries=False,
                                   timeout=10)
        assert response.status == 200, response.data
        answers.append(response.json())
        checked(answers[-1])
    assert parameters(answers[0])["escalator_decision"] == "keep_with_bot"
    handoff = answers[1]["fulfillmentResponse"]["messages"][1]["liveAgentHandoff"]["metadata"]
    assert handoff["brief"]["intents"] == ["Live_Agent", "order.status"]
    assert handoff["brief"]["conversation"]["turns"] == 2
    stored = conversation_state(escalator_url, conversation_of(calm))
    assert stored is not None and stored["escalated"] and stored["turn_index"] == 2


def test_no_brief_cx_gets_holds_a_word_the_customer_wrote(
        client: FlaskClient, platform_ids: Callable[[str], str]) -> None:
    first = webhook_request("text_order_status.json")
    session = first["sessionInfo"]["session"]
    answers = [call(client, {**webhook_request("text_order_status.json", session=session),
                             "text": text}, platform_ids) for text in SENT_TEXTS]
    assert parameters(answers[-1])["escalator_decision"] == "route_to_human"
    metadata = answers[-1]["fulfillmentResponse"]["messages"][-1]["liveAgentHandoff"]["metadata"]
    assert metadata["brief"]["why"]["decisive"]
    assert sent_words_in(answers) == []
