"""POST /v1/conversations/{id}/feedback: feedback on one of the conversation's decisions
(escalator.feedback keeps, logs and counts it)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from marshmallow import ValidationError

from escalator import feedback
from escalator.http.api import _needs_store, checked_id, json_body
from escalator.http.errors import ApiError
from escalator.http.schemas import FeedbackSchema
from escalator.http.services import services

bp = Blueprint("feedback", __name__)


@bp.post("/v1/conversations/<conversation_id>/feedback")
def post_feedback(conversation_id: str) -> Response:
    """Keep feedback on a decision; the same again is answered alike (`replayed`)."""
    svc = services()
    _needs_store(svc)
    checked_id(conversation_id)
    payload = json_body()
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    try:
        given: feedback.Feedback = FeedbackSchema().load(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", "The feedback is not valid.",
                       exc.messages_dict) from exc
    assert svc.store is not None  # _needs_store
    known = {rule.id for rule in svc.policies.current.ruleset.rules}
    try:
        recorded = feedback.record(svc.store, svc.pipeline.decision_log, known,
                                   conversation_id, given)
    except feedback.FeedbackError as exc:
        raise ApiError(exc.status, exc.code, str(exc),
                       {"decision_id": given.decision_id}) from exc
    return jsonify(recorded.to_dict())
