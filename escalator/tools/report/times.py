"""Times in the report: ISO 8601 text to unix seconds and back."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(text: str) -> float:
    """An ISO 8601 time (a date alone is its midnight; no zone is UTC) as unix seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-01 or "
                         f"2026-11-01T12:00:00Z)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
