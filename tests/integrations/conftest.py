"""Fixtures for the platform adapter tests: a running `escalator serve` on the test Redis
(shared by the session: it takes seconds to start) and ids whose keys are cleaned up."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support.servers import serve


@pytest.fixture(scope="session")
def escalator_url(redis_url: str) -> Iterator[str]:
    """A real `escalator serve` (one worker, default policy) on the test Redis."""
    folder = Path(tempfile.mkdtemp(prefix="escalator-integrations-"))
    try:
        with serve(folder, redis_url, workers=1) as base:
            yield base
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def platform_ids(redis_client: redis.Redis) -> Iterator[Callable[[str], str]]:
    """Registers escalator conversation ids whose keys are deleted after the test."""
    issued: list[str] = []

    def track(escalator_id: str) -> str:
        issued.append(escalator_id)
        return escalator_id

    yield track
    for cid in issued:
        keys = list(redis_client.scan_iter(match=f"escalator:{{{cid}}}:*"))
        if keys:
            redis_client.delete(*keys)


