"""Who may use a studio, and proof that a change comes from its own pages.

- Every page sets a signed cookie (HttpOnly, SameSite=Strict, path /studio, Secure over
  HTTPS) that holds a random CSRF token; every POST must carry the same token (a form
  field, or the X-CSRF-Token header of the page's own script), so another site cannot
  make the owner's browser change anything.
- On the service, the studio needs an admin key: a browser cannot send a Bearer header
  from a link, so a login form takes the key once and the cookie then carries a one-way
  digest of it (never the key) for SESSION_SECONDS. A key removed from the service's
  settings ends its sessions at the next request. The login gets a fresh token, so a
  token seen before the login is worth nothing after it.
- The local studio listens on 127.0.0.1 only and answers only requests addressed to
  127.0.0.1 or localhost (a web page cannot reach it under another name by DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

COOKIE = "escalator_studio"
SESSION_SECONDS = 30 * 60
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def key_digest(key: str) -> str:
    """A one-way digest of an admin key, to keep in a cookie instead of the key."""
    return hashlib.sha256(b"escalator-studio\0" + key.encode()).hexdigest()


@dataclass
class Session:
    """What the cookie says: the CSRF token and, on the service, whose key logged in."""

    csrf: str
    admin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"csrf": self.csrf, "admin": self.admin}


class Guard:
    """Signs and reads the studio's cookie; checks tokens and keys."""

    def __init__(self, secret: bytes, admin_keys: Iterable[str] = (), *,
                 local: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="escalator-studio")
        self._admin_digests = tuple(key_digest(key) for key in admin_keys)
        self.local = local

    @property
    def needs_login(self) -> bool:
        """Whether pages need an admin key first (on the service)."""
        return not self.local

    def session(self) -> Session | None:
        """The request's session, if its cookie is genuine and fresh."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        return Session(data["csrf"], data.get("admin"))

    def logged_in(self, session: Session | None) -> bool:
        """Whether the session belongs to an admin key still configured."""
        if self.local:
            return True
        if session is None or not session.admin:
            return False
        found = False
        for digest in self._admin_digests:
            found |= hmac.compare_digest(session.admin, digest)
        return found

    def admin_key_ok(self, offered: str) -> bool:
        """Whether `offered` is one of the admin keys (compared in constant time)."""
        offered_digest = key_digest(offered)
        found = False
        for digest in self._admin_digests:
            found |= hmac.compare_digest(offered_digest, digest)
        return found and bool(offered)

    def new_session(self, admin_key: str | None = None) -> Session:
        """A fresh session (a new token), logged in with `admin_key` if given."""
        return Session(secrets.token_urlsafe(24),
                       key_digest(admin_key) if admin_key else None)

    def set_cookie(self, response: Response, session: Session) -> None:
        """Write the session into the response's cookie."""
        response.set_cookie(COOKIE, self._serializer.dumps(session.as_dict()),
                            max_age=SESSION_SECONDS, path="/studio", httponly=True,
                            samesite="Strict", secure=request.is_secure)

    @staticmethod
    def clear_cookie(response: Response) -> None:
        """End the session."""
        response.delete_cookie(COOKIE, path="/studio", httponly=True, samesite="Strict")

    @staticmethod
    def token_ok(session: Session | None) -> bool:
        """Whether the POST carries the session's CSRF token."""
        offered = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
        return session is not None and hmac.compare_digest(offered.encode(),
                                                           session.csrf.encode())

    def host_ok(self) -> bool:
        """Whether a local studio's request is addressed to this machine by name."""
        if not self.local:
            return True
        host = (request.host or "").rsplit(":", 1)[0].strip("[]")
        return host in LOCAL_HOSTS


def secure_headers(response: Response) -> Response:
    """Headers of every studio page: its own scripts and styles only, no framing, nothing
    cached or referred elsewhere."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
