"""Studio fixtures: the local studio on a copy of the default rules, and a page reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import copy_rules
from support.studio import CORPUS

from escalator.studio import create_local_app
from escalator.studio.views import EXTENSION


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A copy of the default rules, with their rule tests, that the studio may change."""
    return copy_rules(tmp_path / "rules", with_tests=True)


@pytest.fixture
def studio_app(rules: Path) -> Iterator[Flask]:
    """The local studio over the copy, with the synthetic corpus."""
    app = create_local_app(rules, [CORPUS])
    yield app
    app.extensions[EXTENSION].close()


@pytest.fixture
def studio(studio_app: Flask) -> FlaskClient:
    """A browser of the local studio (addressed as 127.0.0.1, as the server is)."""
    client = studio_app.test_client()
    client.environ_base["HTTP_HOST"] = "127.0.0.1:5000"
    return client
