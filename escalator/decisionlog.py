"""The decision log: one JSON record per decision, for audits; never any text.

Feedback on decisions (escalator.feedback) goes to the same log as records of
`"kind": "feedback"`; decision records say `"kind": "decision"` (a record without a kind
is a decision: older logs).

`ESCALATOR_DECISION_LOG` chooses where records go:
- `stdout`: one JSON line per decision on standard output (collected by the platform's
  log shipper);
- `redis` or `redis:<max records>`: a capped Redis stream, `escalator:decisions`
  (default cap 100,000), through the state store;
- anything else: a file path, appended to (one `write` per record, so records from
  several gunicorn workers do not interleave).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from escalator.model import Decision, Handoff, Turn, compact_json

STREAM_KEY = "escalator:decisions"
DEFAULT_STREAM_LENGTH = 100_000


def log_record(decision: Decision, turn: Turn, at: float | None = None) -> dict[str, Any]:
    """The record of one decision: ids, outcome, handoff (with its brief), rules, rule set,
    facts and segment labels, and the shadow rule set's verdict if one judged it."""
    facts = decision.to_dict()["facts"]
    handoff = decision.handoff
    record = {
        "kind": "decision",
        "decision_id": decision.decision_id,
        "time": round(at if at is not None else time.time(), 3),
        "conversation_id": decision.conversation_id,
        "turn_id": decision.turn_id,
        "turn_index": decision.turn_index,
        "decision": decision.decision,
        # Where and how urgently, and what the person taking over was told (the brief:
        # labels and numbers); not what the customer was told (the rule set says that).
        "handoff": None if handoff is None else _handoff(handoff),
        "rules": [r.rule for r in decision.reasons],
        "ruleset": {"name": decision.ruleset.name, "version": decision.ruleset.version,
                    "digest": decision.ruleset.digest},
        "degraded": decision.degraded,
        "segment": {
            "channel": turn.channel,
            "language": facts.get("message.language"),
            "tier": turn.tier,
            "segment": turn.segment,
        },
        "facts": facts,
    }
    if decision.shadow is not None:
        # What the shadow rule set decided (escalator.shadow): "agrees" compares decisions.
        record["shadow"] = decision.shadow.to_dict()
    return record


def _handoff(handoff: Handoff) -> dict[str, Any]:
    record: dict[str, Any] = {"queue": handoff.queue, "urgency": handoff.urgency}
    if handoff.brief is not None:
        record["brief"] = handoff.brief
    return record


class DecisionLog(Protocol):
    """Somewhere decision records go."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def _line(record: Mapping[str, Any]) -> bytes:
    return compact_json(record) + b"\n"


class FileLog:
    """Appends JSON lines to a file (or standard output) with one write per record."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        if path is None:
            self._fd = sys.stdout.fileno()
            self._owned = False
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._owned = True

    def write(self, record: Mapping[str, Any]) -> None:
        data = _line(record)
        with self._lock:
            os.write(self._fd, data)

    def close(self) -> None:
        if self._owned:
            os.close(self._fd)
            self._owned = False


class StreamWriter(Protocol):
    def append_decision(self, key: str, record: bytes, max_length: int) -> None: ...


class RedisStreamLog:
    """Adds records to a capped Redis stream through the state store."""

    def __init__(self, store: StreamWriter, max_length: int = DEFAULT_STREAM_LENGTH) -> None:
        self._store = store
        self._max_length = max_length

    def write(self, record: Mapping[str, Any]) -> None:
        self._store.append_decision(STREAM_KEY, _line(record).rstrip(), self._max_length)

    def close(self) -> None:
        """Nothing to release: the state store is closed by its owner."""


def open_decision_log(spec: str | None, store: StreamWriter | None) -> DecisionLog | None:
    """The decision log that ESCALATOR_DECISION_LOG names (None: no log)."""
    if not spec:
        return None
    if spec == "stdout":
        return FileLog(None)
    if spec == "redis" or spec.startswith("redis:"):
        if store is None:
            raise ValueError("a Redis decision log needs the state store")
        length = int(spec.split(":", 1)[1]) if ":" in spec else DEFAULT_STREAM_LENGTH
        if length <= 0:
            raise ValueError("the Redis decision log's length must be positive")
        return RedisStreamLog(store, length)
    return FileLog(spec)
