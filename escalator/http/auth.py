"""Bearer-key authentication: caller keys for the API, admin keys for admin routes.

Keys are compared in constant time and never logged. Probes and scrapes (/healthz,
/readyz, /metrics) and the API description (/openapi.json) stay open. With no key
configured, auth is off: the service warns loudly at start, and refuses to start when
ESCALATOR_ENV=production (Config.from_env refuses that environment without keys).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable

from flask import Flask, request

from escalator.http.errors import ApiError

log = logging.getLogger(__name__)

OPEN_ENDPOINTS = frozenset({"api.healthz", "api.readyz", "api.metrics_endpoint",
                            "api.openapi_document", "static"})
ADMIN_ENDPOINTS = frozenset({"api.reload_ruleset", "shadow.reload_shadow"})


# What a 401 says it wants (RFC 7235: every 401 names its challenge).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="escalator"'}


def _unauthorized(message: str) -> ApiError:
    """401: no key, or a key that is not valid."""
    return ApiError(401, "unauthorized", message, headers=CHALLENGE)


def _matches(offered: str, keys: Iterable[str]) -> bool:
    # Compare with every key, always: the time taken says nothing about which key (or
    # how much of one) matched.
    found = False
    for key in keys:
        found |= hmac.compare_digest(offered.encode(), key.encode())
    return found


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def caller_identity(auth_on: bool) -> str:
    """Who is calling, for per-caller limits: a one-way digest of the key (never the key
    itself), or the client's address when auth is off (any key would then do)."""
    offered = _bearer() if auth_on else None
    if offered is not None:
        return "key-" + hashlib.sha256(offered.encode()).hexdigest()[:24]
    return f"addr-{request.remote_addr or 'unknown'}"


def init_app(app: Flask, api_keys: tuple[str, ...], admin_keys: tuple[str, ...]) -> None:
    """Check the Bearer key of every request that is not a probe, scrape or the docs."""
    if not api_keys and not admin_keys:
        log.warning("AUTHENTICATION IS OFF: no ESCALATOR_API_KEYS or ESCALATOR_ADMIN_KEYS "
                    "set; anyone who can reach this service can read conversation state "
                    "and reload rules")
        return
    callers = api_keys + admin_keys  # an admin may do what a caller may

    @app.before_request
    def _authenticate() -> None:
        if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
            return  # unknown routes answer 404 without revealing anything
        if request.blueprint == "studio":
            return  # the studio's pages log in with an admin key of their own (a cookie)
        offered = _bearer()
        if offered is None:
            raise _unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
        if request.endpoint in ADMIN_ENDPOINTS:
            if _matches(offered, admin_keys):
                return
            if _matches(offered, api_keys):
                raise ApiError(403, "forbidden", "This route needs an admin key.")
            raise _unauthorized("The API key is not valid.")
        if not _matches(offered, callers):
            raise _unauthorized("The API key is not valid.")
