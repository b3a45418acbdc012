"""While Redis cannot be read, a conversation already with a person stays with the person:
in one process (the Flask test client) and across the two workers of `escalator serve`.

Each test runs its own redis-server, so it may kill it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from support.servers import RedisServer, http, needs_redis_server, serve
from support.turns import say

from escalator.pipeline import STICKY_RULE
from escalator.ruleset.messages import BUILTIN_IN_PROGRESS_MESSAGE

pytestmark = [pytest.mark.slow, needs_redis_server]

ASK = "I want to talk to a human"
CALM = "ok thanks, where is my parcel?"
GAS = "I can smell gas in my kitchen"


def assert_with_a_person(body: dict[str, Any]) -> None:
    assert body["decision"] == "route_to_human", body["reasons"]
    assert body["degraded"] is True
    assert body["reasons"][0]["rule"] == STICKY_RULE
    assert body["handoff"]["customer_message"] == BUILTIN_IN_PROGRESS_MESSAGE.get("en")


def test_a_conversation_with_a_person_stays_there_while_redis_is_down(
        own_app: Flask, own_redis: RedisServer) -> None:
    client = own_app.test_client()
    handed = say(client, "with-person", "t-1", ASK)
    assert handed["decision"] == "route_to_human" and handed["degraded"] is False
    # A handoff to a queue and at an urgency that are not the defaults (support, normal).
    cared = say(client, "with-care", "t-1", GAS)["handoff"]
    assert (cared["queue"], cared["urgency"]) == ("care", "urgent")
    assert say(client, "with-bot", "t-1", CALM)["decision"] == "keep_with_bot"
    for cid in ("released", "erased", "withdrawn"):
        assert say(client, cid, "t-1", ASK)["decision"] == "route_to_human"
    assert client.post("/v1/conversations/released/release").status_code == 200
    assert client.delete("/v1/conversations/erased").status_code == 204
    say(client, "withdrawn", "t-2", CALM, consent={"store_state": False})

    own_redis.kill()
    hits = REGISTRY.get_sample_value("escalator_handoff_cache_hits_total") or 0.0
    for n in range(2, 7):
        body = say(client, "with-person", f"t-{n}", CALM)
        assert_with_a_person(body)
        assert body["handoff"]["queue"] == handed["handoff"]["queue"]
        assert body["handoff"]["urgency"] == handed["handoff"]["urgency"]
    body = say(client, "with-care", "t-2", ASK)
    assert_with_a_person(body)
    assert (body["handoff"]["queue"], body["handoff"]["urgency"]) == ("care", "urgent")
    assert REGISTRY.get_sample_value("escalator_handoff_cache_hits_total") == hits + 6
    # Released, erased or no consent: back with the bot, as with Redis up.
    for cid in ("with-bot", "released", "erased", "withdrawn"):
        body = say(client, cid, "t-9", CALM)
        assert (body["decision"], body["degraded"]) == ("keep_with_bot", True), cid

    # A handoff decided during the outage sticks for the rest of it; without consent it
    # is not remembered.
    assert say(client, "asked-during", "t-1", ASK)["decision"] == "route_to_human"
    assert_with_a_person(say(client, "asked-during", "t-2", CALM))
    say(client, "no-consent", "t-1", ASK, consent={"store_state": False})
    assert say(client, "no-consent", "t-2", CALM)["decision"] == "keep_with_bot"


def hits_by_worker(metrics_dir: Path) -> dict[str, float]:
    """escalator_handoff_cache_hits_total as each process counted it (one file each)."""
    counted: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in family.samples:
                if sample.name == "escalator_handoff_cache_hits_total" and sample.value:
                    counted[path.stem] = sample.value
    return counted


def test_both_workers_of_serve_keep_the_handoff_when_redis_is_killed(
        tmp_path: Path, own_redis: RedisServer) -> None:
    metrics_dir, run_dir = tmp_path / "metrics", tmp_path / "tmp"
    run_dir.mkdir()
    with serve(tmp_path / "serve", own_redis.url, workers=2, ESCALATOR_REDIS_TIMEOUT_MS="100",
               PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), TMPDIR=str(run_dir)) as base:
        status, handed = http(f"{base}/v1/conversations/e2e-person/turns",
                              {"turn_id": "t-0", "message": {"text": ASK}})
        assert status == 200 and isinstance(handed, dict)
        assert handed["decision"] == "route_to_human" and handed["degraded"] is False
        (cache_file,) = run_dir.glob("escalator-run-*/handoffs.sqlite")
        assert b"e2e-person" not in cache_file.read_bytes()

        own_redis.kill()
        answers: list[tuple[str, dict[str, Any]]] = []

        def send(thread: int) -> None:
            # Concurrent callers, so both sync workers take turns of the conversation.
            for n in range(10):
                for cid in ("e2e-person", "e2e-bot"):
                    status, body = http(f"{base}/v1/conversations/{cid}/turns", {
                        "turn_id": f"t-{thread}-{n}", "message": {"text": CALM}})
                    assert status == 200 and isinstance(body, dict)
                    answers.append((cid, body))

        threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == 80
        for cid, body in answers:
            if cid == "e2e-person":
                assert_with_a_person(body)
                assert body["handoff"]["queue"] == handed["handoff"]["queue"]
            else:
                assert (body["decision"], body["degraded"]) == ("keep_with_bot", True)
        by_worker = hits_by_worker(metrics_dir)
        assert len(by_worker) == 2, by_worker  # each worker read what one of them wrote
        assert sum(by_worker.values()) == 40
        print(f"\nRedis killed: 40 of 40 turns of the handed-off conversation stayed with a "
              f"person, hits by worker {sorted(by_worker.values())}; 40 of 40 of the other "
              "stayed with the bot")
    assert not list(run_dir.iterdir())  # serve removed its run folder
