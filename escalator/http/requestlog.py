"""Every HTTP request: an id (the caller's X-Request-ID if it looks like an id, else a new
one), echoed in the answer; one log line when it is answered; and its count and duration
in the metrics.

Never customer text: a request line holds the request id, method, route pattern (not
the path, which carries the conversation id), status, duration and the decision id.
"""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request

from escalator import metrics
from escalator.logs import request_log

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed and logged, so it must look like an id, not text.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def request_id() -> str:
    """The current request's id (from X-Request-ID, or generated)."""
    rid: str = g.get("request_id", "")
    return rid


def init_app(app: Flask) -> None:
    """Give every request an id, echo it, and count and log it when it is answered."""

    @app.before_request
    def _start() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started = g.get("started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        metrics.observe_request(route, response.status_code,
                                seconds if started is not None else None)
        request_log.info("request", extra={
            "request_id": request_id(),
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 3),
            "decision_id": g.get("decision_id"),
        })
        return response
