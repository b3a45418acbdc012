"""Bearer keys: callers and admins, constant-time checks, probes left open; and limits."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from escalator.app import create_app
from escalator.config import Config, ConfigError
from escalator.http.services import EXTENSION

CALLER = "caller-key-0123456789"
ADMIN = "admin-key-9876543210"


@pytest.fixture
def secured(make_app: Callable[..., Flask]) -> Flask:
    return make_app(api_keys=(CALLER, "second-key"), admin_keys=(ADMIN,))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


TURN = {"turn_id": "t-1", "message": {"text": "hello"}}


def test_caller_routes_need_a_valid_key(secured: Flask) -> None:
    client = secured.test_client()
    missing = client.post("/v1/conversations/auth-1/turns", json=TURN)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post("/v1/conversations/auth-1/turns", json=TURN, headers=bearer("nope"))
    assert wrong.status_code == 401
    basic = client.get("/v1/ruleset", headers={"Authorization": f"Basic {CALLER}"})
    assert basic.status_code == 401
    for key in (CALLER, "second-key", ADMIN):
        assert client.get("/v1/ruleset", headers=bearer(key)).status_code == 200
    ok = client.post("/v1/conversations/auth-1/turns", json=TURN, headers=bearer(CALLER))
    assert ok.status_code == 200
    assert client.delete("/v1/conversations/auth-1", headers=bearer(CALLER)).status_code == 204


def test_a_rejected_request_changes_nothing(secured: Flask) -> None:
    client = secured.test_client()
    client.post("/v1/conversations/auth-2/turns", json=TURN)
    assert client.get("/v1/conversations/auth-2", headers=bearer(CALLER)).status_code == 404


def test_reload_needs_an_admin_key(secured: Flask) -> None:
    client = secured.test_client()
    assert client.post("/v1/ruleset/reload").status_code == 401
    forbidden = client.post("/v1/ruleset/reload", headers=bearer(CALLER))
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "forbidden"
    assert client.post("/v1/ruleset/reload", headers=bearer("nope")).status_code == 401
    assert client.post("/v1/ruleset/reload", headers=bearer(ADMIN)).status_code == 200


def test_probes_and_scrapes_stay_open(secured: Flask) -> None:
    client = secured.test_client()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/nowhere").status_code == 404


def test_keys_never_reach_the_logs(secured: Flask, caplog: pytest.LogCaptureFixture) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("escalator").addHandler(handler)
    try:
        client = secured.test_client()
        client.get("/v1/ruleset", headers=bearer(CALLER))
        client.get("/v1/ruleset", headers=bearer("wrong-secret-value"))
    finally:
        logging.getLogger("escalator").removeHandler(handler)
    text = " ".join(str(vars(r)) for r in records)
    assert records and CALLER not in text and "wrong-secret-value" not in text


def test_no_keys_means_auth_off_with_a_warning(redis_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    warnings: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logging.getLogger("escalator").addHandler(handler)
    try:
        app = create_app(Config(redis_url=redis_url, env="test"))
    finally:
        logging.getLogger("escalator").removeHandler(handler)
    try:
        assert any("AUTHENTICATION IS OFF" in w for w in warnings)
        assert app.test_client().get("/v1/ruleset").status_code == 200
    finally:
        app.extensions[EXTENSION].close()


def test_production_refuses_to_start_without_keys() -> None:
    with pytest.raises(ConfigError, match="ESCALATOR_API_KEYS"):
        Config.from_env({"ESCALATOR_ENV": "production"})
    assert Config.from_env({"ESCALATOR_ENV": "production",
                            "ESCALATOR_API_KEYS": "k1"}).api_keys == ("k1",)


def test_deeply_nested_bodies_are_refused(client: FlaskClient) -> None:
    deep: dict[str, object] = {"turn_id": "t-1", "message": {"text": "hi"}}
    nested: object = 1
    for _ in range(12):
        nested = {"a": nested}
    deep["context"] = nested
    response = client.post("/v1/conversations/deep-1/turns", json=deep)
    assert response.status_code == 400
    assert "nested deeper" in response.get_json()["error"]["message"]
    brackets = "[" * 30000 + "]" * 30000  # deeper than the JSON parser itself can go
    response = client.post("/v1/conversations/deep-1/turns", data=brackets,
                           content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "The body is nested too deeply."
