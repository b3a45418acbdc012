"""The Amazon Lex V2 code hook: events in the shape of the public examples, answers checked
against the Lex V2 runtime service model shipped in botocore, end to end on escalator."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from support.integrations import BRIEF, Front, brief_of, fixture_json, require_extra, unique
from support.turns import SENT_TEXTS, sent_words_in

from escalator.integrations import lex
from escalator.integrations.client import EscalatorClient
from escalator.integrations.ids import IdMapper
from escalator.integrations.lex import LexHook, confidence, fit_brief

botocore_session = require_extra("botocore.session", "lex")
botocore_validate = require_extra("botocore.validate", "lex")
MODEL = botocore_session.get_session().get_service_model("lexv2-runtime")
FIXTURES = ["request_for_agent.json", "calm_score_object.json", "fallback.json", "voice.json"]


def without_nulls(value: Any) -> Any:
    """The value without null members: Lex writes an unfilled slot as null, the model omits it."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def check_shape(value: Any, shape_name: str) -> None:
    """Fails unless value is valid for the botocore shape (unknown members refused)."""
    report = botocore_validate.ParamValidator().validate(without_nulls(value),
                                                        MODEL.shape_for(shape_name))
    assert not report.has_errors(), report.generate_report()


def enum(shape: str) -> list[str]:
    return list(MODEL.shape_for(shape).enum)


def check_answer(answer: dict[str, Any]) -> None:
    """A Lambda answer Lex accepts: the PutSession body shape (sessionState, messages,
    requestAttributes) of the runtime model, plus the enums its validator does not enforce."""
    params = {"botId": "ABCDEFGHIJ", "botAliasId": "TSTALIASID", "localeId": "en_US",
              "sessionId": "s-1", **answer}
    report = botocore_validate.ParamValidator().validate(
        params, MODEL.operation_model("PutSession").input_shape)
    assert not report.has_errors(), report.generate_report()
    state = answer["sessionState"]
    assert state["dialogAction"]["type"] in enum("DialogActionType")
    if "intent" in state and "state" in state["intent"]:
        assert state["intent"]["state"] in enum("IntentState")
    if state["dialogAction"]["type"] == "Close":
        # Lex refuses to close an intent that is still in progress.
        assert state["intent"]["state"] in ("Fulfilled", "Failed")
    for message in answer.get("messages", []):
        assert message["contentType"] in enum("MessageContentType")
    assert all(isinstance(v, str) for v in state.get("sessionAttributes", {}).values())


def event(name: str, session: str | None = None, request: str | None = None) -> dict[str, Any]:
    """A fixture event, for a fresh session and request unless given."""
    data: dict[str, Any] = copy.deepcopy(fixture_json(f"lex/{name}"))
    data["sessionId"] = session or unique("lex-")
    data["sessionState"]["originatingRequestId"] = request or unique("req-")
    return data


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_event_has_the_shapes_of_the_lex_runtime_model(name: str) -> None:
    data = fixture_json(f"lex/{name}")
    check_shape(data["sessionState"], "SessionState")
    for interpretation in data["interpretations"]:
        shaped = dict(interpretation)
        if isinstance(shaped.get("nluConfidence"), int | float):
            # The Lambda event flattens ConfidenceScore to a number.
            shaped["nluConfidence"] = {"score": shaped["nluConfidence"]}
        check_shape(shaped, "Interpretation")
    assert data["invocationSource"] in ("DialogCodeHook", "FulfillmentCodeHook")
    assert data["inputMode"] in ("DTMF", "Speech", "Text")


def test_both_confidence_shapes_read_the_same() -> None:
    assert confidence({"nluConfidence": 0.93}) == confidence({"nluConfidence": {"score": 0.93}})
    assert confidence({"intent": {"name": "FallbackIntent"}}) is None
    hook = LexHook(EscalatorClient("http://127.0.0.1:9"))
    calm = hook.turn(fixture_json("lex/calm_score_object.json"))
    asked = hook.turn(fixture_json("lex/request_for_agent.json"))
    assert calm is not None and calm.intent_confidence == 0.93 and calm.language == "en_GB"
    assert asked is not None and asked.intent_confidence == 0.42
    assert asked.context == {"lex_sentiment": "negative", "lex_negative": 0.9402,
                             "lex_input_mode": "text"}
    assert asked.turn_id == "2b6d0c3e-5a7f-4c1e-9d3b-8f2e6a1c4b70"


def test_a_request_for_an_agent_closes_the_dialog_for_amazon_connect(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    hook = LexHook(EscalatorClient(escalator_url))
    asked = event("request_for_agent.json")
    platform_ids(asked["sessionId"])
    answer = hook(asked, None)
    check_answer(answer)
    state = answer["sessionState"]
    assert state["dialogAction"] == {"type": "Close"}
    assert state["intent"]["name"] == "TransferToAgent" and state["intent"]["state"] == "Fulfilled"
    attributes = state["sessionAttributes"]
    assert attributes["escalator_decision"] == "route_to_human"
    assert attributes["escalator_queue"] and attributes["escalator_urgency"]
    assert len(attributes["escalator_decision_id"]) == 32
    assert attributes["escalator_rule"] == "explicit-human-request"
    assert answer["messages"][0]["contentType"] == "PlainText"
    assert answer["messages"][0]["content"]


def test_a_calm_turn_delegates_back_to_lex_and_remembers_the_prompt(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    hook = LexHook(EscalatorClient(escalator_url))
    calm = event("calm_score_object.json")
    platform_ids(calm["sessionId"])
    answer = hook(calm, None)
    check_answer(answer)
    state = answer["sessionState"]
    assert state["dialogAction"] == {"type": "Delegate"}
    assert state["intent"] == calm["sessionState"]["intent"]
    assert "messages" not in answer
    attributes = state["sessionAttributes"]
    assert attributes["customerTier"] == "gold"  # the bot's own attributes are kept
    assert "escalator_prompt" not in attributes  # Lex decides what to ask after Delegate
    assert attributes["escalator_fallback"] == "false"
    assert "escalator_decision" not in attributes


def test_fallback_turns_in_a_row_reach_a_person(escalator_url: str,
                                                platform_ids: Callable[[str], str]) -> None:
    # Each FallbackIntent turn tells the next one that the bot's reply was a fallback;
    # the default policy caps the bot's failures in a row.
    hook = LexHook(EscalatorClient(escalator_url))
    session = platform_ids(unique("lex-"))
    attributes: dict[str, str] = {}
    rules = []
    gibberish = ["blue lamp seventeen", "walrus sings at noon", "purple cactus quietly",
                 "seven ravens over glass", "mossy kettle drum", "ferry of lemons"]
    for text in gibberish:
        turn = event("fallback.json", session=session)
        turn["inputTranscript"] = text
        turn["sessionState"]["sessionAttributes"] = attributes
        answer = hook(turn, None)
        check_answer(answer)
        attributes = answer["sessionState"]["sessionAttributes"]
        rules.append(attributes.get("escalator_rule"))
        if answer["sessionState"]["dialogAction"]["type"] == "Close":
            break
    # Routed by the cap on the bot's failures, or earlier by the loop they make.
    assert rules[-1] in ("bot-fallback-cap", "conversation-looping"), rules
    assert len(rules) <= 4
    second = event("fallback.json")
    second["sessionState"]["sessionAttributes"] = {"escalator_fallback": "true"}
    assert LexHook(EscalatorClient(escalator_url)).turn(second).fallback is True  # type: ignore[union-attr]


def test_what_the_bot_asked_reaches_the_next_turn() -> None:
    hook = LexHook(EscalatorClient("http://127.0.0.1:9"))
    first = event("request_for_agent.json")
    carried = hook._carry(first)
    assert carried["escalator_prompt"] == "OrderStatus.orderNumber"
    second = event("calm_score_object.json")
    second["sessionState"]["sessionAttributes"] = carried
    turn = hook.turn(second)
    assert turn is not None and turn.prompt_id == "OrderStatus.orderNumber"
    assert turn.fallback is False


def test_a_retried_invocation_is_one_turn(escalator_url: str,
                                          platform_ids: Callable[[str], str]) -> None:
    client = EscalatorClient(escalator_url)
    hook = LexHook(client)
    calm = event("calm_score_object.json")
    platform_ids(calm["sessionId"])
    first, again = client.decide(hook.turn(calm)), client.decide(hook.turn(calm))  # type: ignore[arg-type]
    assert not first.replayed and again.replayed
    assert first.decision_id == again.decision_id


def test_the_handoff_brief_reaches_a_session_attribute(escalator_url: str,
                                                       platform_ids: Callable[[str], str]) -> None:
    asked = event("request_for_agent.json")
    platform_ids(asked["sessionId"])
    real = EscalatorClient(escalator_url).decide(LexHook(EscalatorClient(escalator_url))
                                                 .turn(asked))  # type: ignore[arg-type]
    with Front(None, ["canned"], canned=real.body()) as front:
        answer = LexHook(EscalatorClient(front.url))(asked, None)
    check_answer(answer)
    brief = json.loads(answer["sessionState"]["sessionAttributes"]["escalator_brief"])
    assert brief == brief_of(real.body())
    assert len(answer["sessionState"]["sessionAttributes"]["escalator_brief"]) <= 1024


def test_a_brief_too_long_for_lex_loses_its_oldest_labels_first() -> None:
    long = {**BRIEF, "intents": [f"intent_{i}" for i in range(200)]}
    fitted = fit_brief(long, 1024)
    assert fitted is not None and len(fitted) <= 1024
    kept = json.loads(fitted)
    assert kept["intents"][0] == "intent_0" and kept["tier"] == "gold"
    assert fit_brief({"why": "x" * 2000}, 1024) is None


def test_keep_with_bot_hands_the_event_to_the_next_handler(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    seen: list[dict[str, Any]] = []

    def fulfil(evt: dict[str, Any], _: Any) -> dict[str, Any]:
        seen.append(evt)
        return {"sessionState": {"dialogAction": {"type": "Close"},
                                 "intent": {"name": "OrderStatus", "state": "Fulfilled"},
                                 "sessionAttributes": {"orderFound": "true"}},
                "messages": [{"contentType": "PlainText", "content": "It arrives Tuesday."}]}

    calm = event("calm_score_object.json")
    platform_ids(calm["sessionId"])
    answer = LexHook(EscalatorClient(escalator_url), next_handler=fulfil)(calm, None)
    check_answer(answer)
    assert answer["messages"][0]["content"] == "It arrives Tuesday."
    attributes = answer["sessionState"]["sessionAttributes"]
    assert attributes["orderFound"] == "true" and attributes["escalator_fallback"] == "false"
    assert seen and seen[0]["sessionState"]["sessionAttributes"]["escalator_fallback"] == "false"


def test_the_lambda_entry_point_reads_its_settings_from_the_environment(
        escalator_url: str, platform_ids: Callable[[str], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_URL", escalator_url)
    monkeypatch.setenv("ESCALATOR_ID_KEY", "k")
    monkeypatch.setattr(lex, "_hook", None)
    voice = event("voice.json", session="+14155550100-" + unique(""))
    platform_ids(IdMapper(prefix="lex", key=b"k")(voice["sessionId"]))
    answer = lex.handler(voice, None)
    check_answer(answer)
    assert answer["sessionState"]["dialogAction"]["type"] == "Delegate"
    assert lex._hook is not None and lex._hook.client.ids.prefix == "lex"


def test_no_brief_lex_gets_holds_a_word_the_customer_wrote(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    hook = LexHook(EscalatorClient(escalator_url, ids=IdMapper(prefix="lex")))
    session = unique("lex-")
    platform_ids(IdMapper(prefix="lex")(session))
    attributes: dict[str, str] = {}
    answers = []
    for text in SENT_TEXTS:
        asked = event("request_for_agent.json", session=session)
        asked["inputTranscript"] = text
        asked["sessionState"]["sessionAttributes"] = attributes
        answers.append(hook(asked, None))
        attributes = answers[-1]["sessionState"]["sessionAttributes"]
    check_answer(answers[-1])
    assert answers[-1]["sessionState"]["dialogAction"]["type"] == "Close"
    assert json.loads(attributes["escalator_brief"])["why"]["decisive"]
    assert sent_words_in(answers) == []
