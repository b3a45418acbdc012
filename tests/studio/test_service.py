"""The studio under the running service: read-only, and nothing of it without an admin key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import default_version
from support.studio import token

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION

ADMIN = "studio-admin-key-1234567890"
CALLER = "studio-caller-key-1234567890"


@pytest.fixture
def service(redis_url: str) -> Iterator[Flask]:
    app = create_app(Config(redis_url=redis_url, env="test", api_keys=(CALLER,),
                            admin_keys=(ADMIN,)), start_reloader=False)
    yield app
    app.extensions[EXTENSION].close()


def _login(client: FlaskClient, key: str) -> int:
    return client.post("/studio/login", data={"csrf_token": token(client, "/studio/login"),
                                              "admin_key": key}).status_code


def test_nothing_of_the_studio_is_reachable_without_the_admin_key(service: Flask) -> None:
    client = service.test_client()
    for path in ("/studio/", "/studio/try", "/studio/tests", "/studio/files/loops.yaml",
                 "/studio/rules/frustration-spike", "/studio/save"):
        response = client.get(path)
        assert response.status_code == 302 and "/studio/login" in response.headers["Location"]
    bearer = client.get("/studio/", headers={"Authorization": f"Bearer {ADMIN}"})
    assert bearer.status_code == 302  # a link cannot send a header: the login is the way
    assert _login(client, CALLER) == 401  # a caller's key is not an admin key
    assert client.get("/studio/").status_code == 302


def test_an_admin_reads_the_active_rules_and_cannot_change_them(service: Flask) -> None:
    client = service.test_client()
    assert _login(client, ADMIN) == 302
    page = client.get("/studio/").get_data(as_text=True)
    assert "read-only: what the service runs" in page
    assert default_version() in page and "urgency <em>high</em>" in page
    assert "Move up" not in page and "Delete" not in page
    csrf = token(client)
    tried = client.post("/studio/try", data={"csrf_token": csrf, "text-1": "I want a human"})
    assert "Decided by <strong>explicit-human-request</strong>" in tried.get_data(as_text=True)
    for path in ("/studio/files/loops.yaml", "/studio/rules/frustration-spike/delete",
                 "/studio/save"):
        response = client.post(path, data={"csrf_token": csrf, "text": "x", "action": "save"})
        assert response.status_code == 409, path
    assert client.post("/studio/api/check", json={"file": "a.yaml", "text": "x"},
                       headers={"X-CSRF-Token": csrf}).status_code == 403
    assert client.post("/studio/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/studio/").status_code == 302


def test_the_login_needs_the_pages_token(service: Flask) -> None:
    client = service.test_client()
    response = client.post("/studio/login", data={"csrf_token": "x", "admin_key": ADMIN})
    assert response.status_code == 403
    assert client.get("/studio/").status_code == 302


def test_the_api_still_needs_its_bearer_key(service: Flask) -> None:
    client = service.test_client()
    assert _login(client, ADMIN) == 302
    assert client.get("/v1/ruleset").status_code == 401  # the studio's cookie opens no API


def test_without_an_admin_key_the_service_serves_no_studio(client: FlaskClient) -> None:
    assert client.get("/studio/").status_code == 404
