"""What the HTTP API takes beyond a turn's own fields (escalator.turnschema): a release's
body, and the window a live turn's timestamp must fall in."""

from __future__ import annotations

from datetime import datetime

from marshmallow import RAISE, Schema

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
