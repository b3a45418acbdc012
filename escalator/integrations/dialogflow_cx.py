"""Dialogflow CX webhook: a CX `WebhookRequest` in, a `WebhookResponse` out.

escalator serves it itself at `POST /v1/integrations/dialogflow-cx` (escalator.http.
integrations), so a CX agent needs no glue code: the webhook of the fulfillments that
should be judged points there. This module is the mapping, plain Python on JSON as CX
sends and reads it; it imports no Google package.

From a WebhookRequest it makes one escalator turn:

    sessionInfo.session (a session path)      the conversation (IdMapper, prefix "cx")
    detectIntentResponseId                    turn_id: one customer turn, retries included
    text, or transcript for voice             message.text (scored, never stored)
    intentInfo.displayName, .confidence       message.intent, intent_confidence
    languageCode (or languageInfo's)          message.language
    pageInfo.displayName (else the page id)   bot.prompt_id: the page the customer answered
    fulfillmentInfo.tag ending in "no-match"  bot.fallback true (and no intent is read)
    sentimentAnalysisResult.score, magnitude  context.cx_sentiment, cx_sentiment_magnitude
    session parameters escalator_tier,        customer.tier, customer.segment, channel
      escalator_segment, escalator_channel      (channel "voice" for a transcript if unset)
    session parameter escalator_store_state   consent.store_state false, when it is false

Anything else CX sends (including fields it does not document, the payload of a
telephony or messaging integration, other session parameters) is ignored. A request
with neither text nor a matched intent (an event such as the welcome event, DTMF digits)
is not a customer turn: it is answered with an empty WebhookResponse.

The WebhookResponse:
- **route_to_human**: `fulfillmentResponse` with escalator's sentence for the customer as
  a text message and a `liveAgentHandoff` message whose `metadata` carries the decision,
  its id, the conversation, `queue`, `urgency`, `reasons` (rule ids) and the handoff
  `brief`; `mergeBehavior: REPLACE`, so the bot's own queued reply (a no-match prompt,
  say) is not said over the handoff; and the session parameters below.
- **keep_with_bot**: the session parameters only: no message, no transition, so the flow
  goes on as it would have.

Session parameters, so that a route of the flow can branch on the decision
(`$session.params.escalator_decision = "route_to_human"`): `escalator_decision`,
`escalator_decision_id`, `escalator_rule` (the decisive rule), and `escalator_queue` and
`escalator_urgency` (null, which removes them, on keep_with_bot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalator.integrations.ids import IdMapper, label, language_tag

ROUTE_TO_HUMAN = "route_to_human"
CONVERSATIONS = IdMapper(prefix="cx")
TURNS = IdMapper(prefix="cx-turn")
# The tag a no-match event handler's fulfillment sets when it calls the webhook; any tag
# ending like this counts ("escalator-no-match", "no-match", "billing.no-match").
NO_MATCH_SUFFIX = "no-match"
PARAMETER_PREFIX = "escalator_"
MAX_TEXT_CHARS = 8000


class RequestError(ValueError):
    """A WebhookRequest that cannot be a turn; `details` names the fields (as the API's
    invalid_request details do)."""

    def __init__(self, message: str, details: Mapping[str, list[str]]) -> None:
        super().__init__(message)
        self.details = dict(details)


@dataclass(frozen=True)
class CxTurn:
    """The escalator turn of a WebhookRequest: its conversation id and the turn as
    `POST /v1/conversations/{id}/turns` takes it."""

    conversation_id: str
    body: dict[str, Any]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _prompt_id(page: Mapping[str, Any]) -> str | None:
    """The page as a prompt id: its display name, else the last part of its path, made to
    fit a label (a display name may hold spaces)."""
    name = _string(page.get("displayName"))
    if name is None:
        path = _string(page.get("currentPage"))
        name = path.rsplit("/", 1)[-1] if path else None
    return label(name)


def is_no_match(tag: Any) -> bool:
    """True when a fulfillment tag marks a call from a no-match event handler."""
    return isinstance(tag, str) and tag.strip().casefold().endswith(NO_MATCH_SUFFIX)


def read_request(payload: Any, conversations: IdMapper = CONVERSATIONS,
                 turns: IdMapper = TURNS) -> CxTurn | None:
    """The escalator turn of a CX WebhookRequest, or None when the request carries nothing
    the customer said or chose (RequestError when it is not a WebhookRequest at all)."""
    if not isinstance(payload, Mapping):
        raise RequestError("The body is not a Dialogflow CX WebhookRequest.",
                           {"_schema": ["must be a JSON object"]})
    response_id = _string(payload.get("detectIntentResponseId"))
    session = _string(_mapping(payload.get("sessionInfo")).get("session"))
    missing = {name: ["missing or empty: CX always sends it"] for name, value in (
        ("detectIntentResponseId", response_id), ("sessionInfo.session", session))
        if value is None}
    if response_id is None or session is None:
        raise RequestError("The body is not a Dialogflow CX WebhookRequest.", missing)

    no_match = is_no_match(_mapping(payload.get("fulfillmentInfo")).get("tag"))
    transcript = _string(payload.get("transcript"))
    text = _string(payload.get("text")) or transcript
    intent_info = {} if no_match else _mapping(payload.get("intentInfo"))
    intent = label(_string(intent_info.get("displayName")))
    if text is None and intent is None:
        return None

    message: dict[str, Any] = {}
    if text is not None:
        message["text"] = text[:MAX_TEXT_CHARS]
    if intent is not None:
        message["intent"] = intent
        confidence = _number(intent_info.get("confidence"))
        if confidence is not None:
            message["intent_confidence"] = min(1.0, max(0.0, confidence))
    language = (language_tag(_string(payload.get("languageCode")))
                or language_tag(_string(_mapping(payload.get("languageInfo"))
                                        .get("resolvedLanguageCode"))))
    if language is not None:
        message["language"] = language
    body: dict[str, Any] = {"turn_id": turns(response_id), "message": message}

    bot: dict[str, Any] = {}
    prompt = _prompt_id(_mapping(payload.get("pageInfo")))
    if prompt is not None:
        bot["prompt_id"] = prompt
    if no_match:
        bot["fallback"] = True
    if bot:
        body["bot"] = bot

    parameters = _mapping(_mapping(payload.get("sessionInfo")).get("parameters"))
    p = PARAMETER_PREFIX
    customer = {key: value for key, value in (
        ("tier", label(_string(parameters.get(f"{p}tier")))),
        ("segment", label(_string(parameters.get(f"{p}segment"))))) if value is not None}
    if customer:
        body["customer"] = customer
    channel = label(_string(parameters.get(f"{p}channel"))) or (
        "voice" if transcript is not None else None)
    if channel is not None:
        body["channel"] = channel
    sentiment = _mapping(payload.get("sentimentAnalysisResult"))
    context = {key: value for key, value in (
        ("cx_sentiment", _number(sentiment.get("score"))),
        ("cx_sentiment_magnitude", _number(sentiment.get("magnitude")))) if value is not None}
    if context:
        body["context"] = {key: round(value, 4) for key, value in context.items()}
    if parameters.get(f"{p}store_state") is False:
        body["consent"] = {"store_state": False}
    return CxTurn(conversations(session), body)


def webhook_response(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The WebhookResponse for escalator's decision (a decision as the API answers it)."""
    p = PARAMETER_PREFIX
    reasons = [reason["rule"] for reason in decision.get("reasons") or ()]
    parameters: dict[str, Any] = {
        f"{p}decision": decision["decision"],
        f"{p}decision_id": decision["decision_id"],
        f"{p}rule": reasons[0] if reasons else None,
        f"{p}queue": None,
        f"{p}urgency": None,
    }
    answer: dict[str, Any] = {"sessionInfo": {"parameters": parameters}}
    handoff = decision.get("handoff")
    if decision["decision"] != ROUTE_TO_HUMAN or not isinstance(handoff, Mapping):
        return answer
    parameters.update({f"{p}queue": handoff["queue"], f"{p}urgency": handoff["urgency"]})
    metadata: dict[str, Any] = {
        "decision": decision["decision"],
        "decision_id": decision["decision_id"],
        "conversation_id": decision["conversation_id"],
        "queue": handoff["queue"],
        "urgency": handoff["urgency"],
        "reasons": reasons,
        "degraded": bool(decision.get("degraded", False)),
    }
    if handoff.get("brief") is not None:
        metadata["brief"] = handoff["brief"]
    messages: list[dict[str, Any]] = []
    if handoff.get("customer_message"):
        messages.append({"text": {"text": [handoff["customer_message"]]}})
    messages.append({"liveAgentHandoff": {"metadata": metadata}})
    answer["fulfillmentResponse"] = {"messages": messages, "mergeBehavior": "REPLACE"}
    return answer
