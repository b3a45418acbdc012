"""Every error the API answers: JSON `{"error": {"code", "message", "details"}}` with a
stable code (the contract callers branch on), for the service's own refusals, the domain
errors the pipeline raises, Werkzeug's HTTP errors and unexpected faults alike."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from escalator.errors import StateUnavailable, StateUnreadable, TurnIdReused, TurnSuperseded

log = logging.getLogger(__name__)

# Werkzeug's own HTTP errors, mapped to the stable codes of the API contract.
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "state_unavailable",
}


class ApiError(Exception):
    """An error answered as {"error": {"code", "message", "details"}}, with these headers
    (a refused key's WWW-Authenticate, a rate limit's Retry-After)."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str,
                   details: dict[str, Any] | None = None) -> Response:
    """The JSON answer of an error."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    return response


def register_errors(app: Flask) -> None:
    """JSON errors for everything, including Werkzeug's 404/405/413 and unexpected faults."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(StateUnavailable)
    def _state_unavailable(exc: StateUnavailable) -> Response:
        # Counted where it was met (escalator.pipeline), once per request.
        return error_response(503, "state_unavailable",
                              "The state store is unavailable; try again shortly.")

    @app.errorhandler(StateUnreadable)
    def _state_unreadable(exc: StateUnreadable) -> Response:
        # Not a 503: Redis is fine and trying again will not help. The next turn of the
        # conversation starts it afresh; DELETE erases it now.
        return error_response(409, "state_unreadable", "The stored state of this conversation "
                              "cannot be read; its next turn starts it afresh, and DELETE "
                              "erases it.", {"reason": exc.reason})

    @app.errorhandler(TurnSuperseded)
    def _turn_superseded(exc: TurnSuperseded) -> Response:
        return error_response(409, "turn_superseded", "This turn was already decided; newer "
                              "turns have followed.")

    @app.errorhandler(TurnIdReused)
    def _turn_id_reused(exc: TurnIdReused) -> Response:
        # Like an idempotency key reused with another request body: the caller's bug, not
        # a retry, so neither the old decision nor a new one is the right answer.
        return error_response(422, "idempotency_key_reused", "This turn id was already "
                              "used for a different turn in this conversation; a retry "
                              f"must resend the same turn (turn {exc.turn_id}). Give each "
                              "new turn a new turn_id.", {"turn_id": [
                                  "already decided with other content"]})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "invalid_request")
        response = error_response(status, code, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
