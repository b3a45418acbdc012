"""Structured request logs and request ids: useful to SREs, silent about customers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

from escalator.logs import JsonFormatter, request_log


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def request_records() -> Iterator[list[logging.LogRecord]]:
    handler = Records()
    request_log.addHandler(handler)
    yield handler.records
    request_log.removeHandler(handler)


def test_a_request_id_is_echoed_and_logged_with_the_decision(
        client: FlaskClient, new_conversation_id: Callable[..., str],
        request_records: list[logging.LogRecord]) -> None:
    cid = new_conversation_id()
    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": "t-1", "message": {"text": "Bartholomew here"}},
                           headers={"X-Request-ID": "req-123"})
    assert response.headers["X-Request-ID"] == "req-123"
    (record,) = request_records
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-123"
    assert line["route"] == "/v1/conversations/<conversation_id>/turns"
    assert line["status"] == 200 and line["method"] == "POST"
    assert line["decision_id"] == response.get_json()["decision_id"]
    assert line["duration_ms"] > 0
    assert "Bartholomew" not in json.dumps(line) and cid not in json.dumps(line)


def test_a_request_id_that_is_not_an_id_is_replaced(
        client: FlaskClient, request_records: list[logging.LogRecord]) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "my name is Ann <script>"})
    echoed = response.headers["X-Request-ID"]
    assert echoed != "my name is Ann <script>" and len(echoed) == 32
    assert request_records[0].request_id == echoed  # type: ignore[attr-defined]


def test_errors_are_logged_too(client: FlaskClient,
                               request_records: list[logging.LogRecord]) -> None:
    client.get("/v1/nowhere")
    assert request_records[0].status == 404  # type: ignore[attr-defined]
    assert request_records[0].route == "unmatched"  # type: ignore[attr-defined]


def test_the_formatter_writes_one_json_object_with_extras() -> None:
    record = logging.makeLogRecord({"name": "escalator.x", "levelname": "WARNING",
                                    "msg": "rules reload refused", "rule": "r1"})
    assert json.loads(JsonFormatter().format(record)) == {
        "time": pytest.approx(record.created, abs=0.01), "level": "WARNING",
        "logger": "escalator.x", "message": "rules reload refused", "rule": "r1"}
