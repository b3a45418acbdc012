"""Structured logs: one JSON object per line, for the service's own lines and gunicorn's.

Never customer text. The HTTP layer logs one line per request to `request_log`
(escalator.http.requestlog), and so does the worker when it refuses a slow client.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# One encoder for every line: json.dumps(entry, default=str) builds a new one per call.
_ENCODER = json.JSONEncoder(default=str)

request_log = logging.getLogger("escalator.requests")


def _no_caller(*args: object, **kwargs: object) -> tuple[str, int, str, None]:
    return "(unknown file)", 0, "(unknown function)", None


# A request line is always logged from the same place, and no line shows where it was
# logged from (JsonFormatter leaves pathname, lineno and funcName out): looking it up,
# a walk up the stack for every request, is skipped.
request_log.findCaller = _no_caller  # type: ignore[method-assign]


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


def configure(level: str) -> None:
    """Send the service's logs, as JSON lines, to standard error at `level` (idempotent)."""
    root = logging.getLogger("escalator")
    root.setLevel(level)
    if not any(getattr(h, "escalator_json", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.escalator_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
