"""Routes that speak a chatbot platform's own webhook contract, so the platform needs no
glue code: `POST /v1/integrations/dialogflow-cx` (a Dialogflow CX webhook). The mapping
between the platform's JSON and escalator's turns and decisions is in
escalator.integrations; these routes parse, decide with the same pipeline as
`POST /v1/conversations/{id}/turns`, and answer in the platform's form."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify
from marshmallow import ValidationError

from escalator.errors import TurnIdReused, TurnSuperseded
from escalator.http.api import json_body
from escalator.http.errors import ApiError
from escalator.http.services import services
from escalator.integrations import dialogflow_cx
from escalator.turnschema import turn_schema

log = logging.getLogger(__name__)
bp = Blueprint("integrations", __name__)


@bp.post("/v1/integrations/dialogflow-cx")
def dialogflow_cx_webhook() -> Response:
    """A Dialogflow CX WebhookRequest decided as one customer turn; a WebhookResponse."""
    svc = services()
    try:
        cx_turn = dialogflow_cx.read_request(json_body())
    except dialogflow_cx.RequestError as exc:
        raise ApiError(400, "invalid_request", str(exc), exc.details) from exc
    if cx_turn is None:
        return jsonify({})  # an event or DTMF digits: nothing the customer said to judge
    try:
        turn = turn_schema(svc.config.max_context_keys).load(cx_turn.body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", "The WebhookRequest does not make a valid "
                       "turn.", exc.messages_dict) from exc
    try:
        decision = svc.pipeline.decide(cx_turn.conversation_id, turn)
    except (TurnIdReused, TurnSuperseded):
        # CX calls the webhook once per fulfillment that uses it, and one customer turn
        # (one detectIntentResponseId) can run several (a route's, then the next page's
        # entry): the turn was decided at the first call, whose answer already set the
        # session parameters, so a later call of the same turn from another page or tag
        # changes nothing. The same call again is a retry, answered by the pipeline.
        log.info("dialogflow-cx: turn %s of %s was already decided by an earlier call",
                 turn.turn_id, cx_turn.conversation_id)
        return jsonify({})
    g.decision_id = decision.decision_id
    return jsonify(dialogflow_cx.webhook_response(decision.to_dict()))
