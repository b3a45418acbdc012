"""Helpers for the platform adapter tests: the platform extras, fixtures on disk, a
misbehaving HTTP front for escalator, ids and state look-ups.

A missing platform package skips the tests that need it, with the extra that installs
it; .ci/run installs every extra and sets ESCALATOR_INTEGRATIONS_REQUIRE_EXTRAS=1, which
turns such a skip into a failure so that CI can never pass by skipping.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import urllib3

FIXTURES = Path(__file__).resolve().parents[1] / "integrations" / "fixtures"


def require_extra(module: str, extra: str) -> ModuleType:
    """The platform module, or skip (fail under ESCALATOR_INTEGRATIONS_REQUIRE_EXTRAS=1)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = (f"{module} is not installed ({exc}); pip install -e '.[{extra}]' "
                   "installs it (.ci/run does)")
        if os.environ.get("ESCALATOR_INTEGRATIONS_REQUIRE_EXTRAS") == "1":
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


def fixture_json(name: str) -> Any:
    """A JSON fixture of tests/integrations/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# A handoff brief in the shape escalator sends (escalator.brief), for tests of how an
# adapter fits one into its platform's limits; the adapters' end-to-end tests use the
# briefs the running service sends.
BRIEF: dict[str, Any] = {
    "why": {"decisive": "The customer asked to speak to a person.",
            "rule": "explicit-human-request",
            "others": ["The customer has been frustrated for several turns."]},
    "language": "en",
    "intents": ["cancel_order", "order_status"],
    "topics": ["cancellation", "complaint"],
    "conversation": {"turns": 4, "minutes": 3.5, "fallbacks": 2, "repeats": 1,
                     "frustration": {"now": 0.61, "mean": 0.41, "trend": 0.245,
                                     "recent": [0.61, 0.35, 0.12]}},
    "asked_for_person": True,
    "tier": "gold",
    "channel": "web",
}


def brief_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The handoff brief of one of escalator's route_to_human answers (it must have one)."""
    assert answer["decision"] == "route_to_human", answer
    brief: dict[str, Any] = answer["handoff"]["brief"]
    assert brief["why"]["decisive"], brief
    return brief


def unique(prefix: str) -> str:
    """A platform-looking id unique to this run."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def conversation_state(escalator_url: str, conversation_id: str) -> dict[str, Any] | None:
    """The stored state summary escalator keeps in Redis for a conversation, or None."""
    response = urllib3.request("GET", f"{escalator_url}/v1/conversations/{conversation_id}",
                               retries=False, timeout=10)
    if response.status == 404:
        return None
    assert response.status == 200, response.data
    state: dict[str, Any] = response.json()
    return state


class Front:
    """A real HTTP server in front of escalator that misbehaves as each test scripts.

    Each request takes the next step of `script` (the last one repeats):
    "forward" passes it to escalator; "lose" passes it, then answers 502 (the decision
    was made, its answer lost); "hang" answers nothing for `hang_seconds`; "close" drops
    the connection; "canned" answers 200 with the `canned` body; "429" and any other
    status answer that status in escalator's error envelope (429 with Retry-After:
    `retry_after`)."""

    def __init__(self, upstream: str | None, script: list[str], hang_seconds: float = 5.0,
                 retry_after: str = "0", canned: dict[str, Any] | None = None) -> None:
        self.upstream = upstream
        self.canned = canned
        self.script = script
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.requests: list[tuple[str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with front._lock:
                    step = front.script[min(len(front.requests), len(front.script) - 1)]
                    front.requests.append((self.path, body))
                    front.headers.append(dict(self.headers.items()))
                front.handle(self, step, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, handler: BaseHTTPRequestHandler, step: str, body: bytes) -> None:
        """Carry out one scripted step for one request."""
        if step in ("forward", "lose"):
            assert self.upstream is not None
            upstream = urllib3.request(
                "POST", self.upstream + handler.path, body=body, retries=False, timeout=10,
                headers={k: v for k, v in handler.headers.items()
                         if k.lower() in ("content-type", "authorization")})
            if step == "forward":
                self._answer(handler, upstream.status, upstream.data)
                return
            self._answer(handler, 502, b"<html>Bad Gateway</html>", "text/html")
            return
        if step == "canned":
            assert self.canned is not None
            self._answer(handler, 200, json.dumps(self.canned).encode())
            return
        if step == "hang":
            self._release.wait(self.hang_seconds)
            return
        if step == "close":
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        status = int(step)
        envelope = {"error": {"code": {429: "rate_limited", 503: "state_unavailable"}.get(
            status, "internal_error"), "message": "scripted", "details": {}}}
        extra = {"Retry-After": self.retry_after} if status == 429 else {}
        self._answer(handler, status, json.dumps(envelope).encode(), extra=extra)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, data: bytes,
                content_type: str = "application/json", extra: dict[str, str] | None = None
                ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> Front:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def elapsed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn()'s result and the seconds it took."""
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started
