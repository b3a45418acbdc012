"""The policy studio's tests: the synthetic corpus they replay, a page's CSRF token, and
waiting for the studio's replays."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from escalator.studio.views import EXTENSION
from support.servers import wait_for

CORPUS = Path(__file__).resolve().parents[1] / "studio" / "corpus.jsonl"


def token(client: FlaskClient, path: str = "/studio/") -> str:
    """The CSRF token of a page's forms (as a browser would post it)."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def finished(app: Flask, seconds: float = 60.0) -> None:
    """Wait (polling) until the studio's replays are finished."""
    jobs = app.extensions[EXTENSION].jobs

    def done() -> bool:
        job = jobs.latest(finished=False)
        return job is None or job.finished

    wait_for(done, seconds, "the studio's replay to finish", interval=0.05)
