"""What the HTTP API takes beyond a turn's own fields (escalator.turnschema): a release's
body, feedback on a decision, and the window a live turn's timestamp must fall in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, post_load, validate

from escalator import feedback
from escalator.turnschema import ID_PATTERN
from escalator.validators import Exactly

# How far ahead of the service's clock a live turn's timestamp may be: NTP keeps clocks
# within seconds, so this only forgives a badly kept one.
MAX_TIMESTAMP_AHEAD_SECONDS = 15 * 60


def timestamp_problem(timestamp: datetime, now: float, ttl_seconds: int) -> str | None:
    """Why a live turn's timestamp cannot be used, or None: it must lie between the state
    TTL before the service's clock and MAX_TIMESTAMP_AHEAD_SECONDS after it."""
    # Outside that window the timestamp is a caller's bug (a wrong clock, time zone or
    # unit), and it would silently skew conversation.minutes for the rest of the
    # conversation; a turn older than the TTL is older than any state kept for it.
    offset = timestamp.timestamp() - now
    if -ttl_seconds <= offset <= MAX_TIMESTAMP_AHEAD_SECONDS:
        return None
    return (f"must be within {_duration(ttl_seconds)} before and "
            f"{MAX_TIMESTAMP_AHEAD_SECONDS // 60} min after the service's clock "
            f"(this one is {abs(offset) / 3600:,.1f} h {'behind' if offset < 0 else 'ahead'}); "
            "leave it out to use the service's clock")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


class ReleaseSchema(Schema):
    """POST /v1/conversations/{id}/release: no fields yet ({} or no body at all)."""

    class Meta:
        unknown = RAISE


class FeedbackSchema(Schema):
    """POST /v1/conversations/{id}/feedback: which decision, what about it, who says so."""

    class Meta:
        unknown = RAISE

    decision_id = fields.String(required=True, validate=Exactly(ID_PATTERN), metadata={
        "description": "The decision_id of one of the conversation's decisions."})
    label = fields.String(required=True, validate=validate.OneOf(feedback.LABELS), metadata={
        "description": "handoff_needed or handoff_not_needed for a route_to_human "
                       "decision; should_have_escalated or resolved_by_bot for a "
                       "keep_with_bot one."})
    source = fields.String(required=True, validate=validate.OneOf(feedback.SOURCES),
                           metadata={"description": "Who says so: an agent, a customer "
                                                    "survey or a platform rule."})
    reasons = fields.List(
        fields.String(validate=validate.OneOf(tuple(feedback.REASONS))),
        load_default=list, validate=validate.Length(max=len(feedback.REASONS)),
        metadata={"description": "Reason codes from a fixed list (never free text): "
                  + ", ".join(feedback.REASONS) + "."})

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> feedback.Feedback:
        return feedback.Feedback(data["decision_id"], data["label"], data["source"],
                                 tuple(data["reasons"]))
