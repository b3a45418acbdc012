"""Structured logs: one JSON object per line, and one line per HTTP request.

Never customer text: a request line holds the request id, method, route pattern (not
the path, which carries the conversation id), status, duration and the decision id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed and logged, so it must look like an id, not text.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

request_log = logging.getLogger("escalator.requests")


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
        return json.dumps(entry, default=str)


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


def request_id() -> str:
    """The current request's id (from X-Request-ID, or generated)."""
    rid: str = g.get("request_id", "")
    return rid


def init_app(app: Flask) -> None:
    """Give every request an id, echo it, and log one line when it is answered."""

    @app.before_request
    def _start() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        request_log.info("request", extra={
            "request_id": request_id(),
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter()))
                                 * 1000, 3),
            "decision_id": g.get("decision_id"),
        })
        return response
