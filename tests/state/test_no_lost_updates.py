"""Turns of the same conversations racing each other across gunicorn workers lose nothing:
every conversation's decisions number its turns exactly 1..N, no duplicate, no gap."""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.servers import http, metric, serve

CONVERSATIONS = 5
TURNS_EACH = 40
THREADS = 16


def fire(send: Callable[[str, str, int], tuple[int, Any]],
         cids: list[str]) -> dict[str, list[int]]:
    """All turns from THREADS threads, conversations interleaved; turn indexes by conversation."""
    jobs: queue.Queue[tuple[str, str, int]] = queue.Queue()
    # Bursts of eight turns per conversation: the requests in flight together are mostly
    # turns of one conversation, racing for its state.
    for first in range(1, TURNS_EACH + 1, 8):
        for cid in cids:
            for n in range(first, min(first + 8, TURNS_EACH + 1)):
                jobs.put((cid, f"t-{n}", n))
    indexes: dict[str, list[int]] = defaultdict(list)
    problems: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                cid, turn_id, n = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                status, body = send(cid, turn_id, n)
            except Exception as exc:  # reported by the assertion below
                status, body = 0, repr(exc)
            with lock:
                if status != 200 or body["degraded"] or body["replayed"]:
                    problems.append((cid, turn_id, status, body))
                else:
                    indexes[cid].append(body["turn_index"])

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert problems == []
    return indexes


def text(n: int) -> str:
    # Varied messages, so scoring takes its usual time between load and commit.
    return f"my order {n} has not arrived, where is it? I have asked {n % 4} times"


@pytest.mark.slow
def test_two_hundred_turns_from_sixteen_threads_across_two_workers(
        tmp_path: Path, redis_url: str, new_conversation_id: Callable[..., str]) -> None:
    cids = [new_conversation_id("race") for _ in range(CONVERSATIONS)]
    with serve(tmp_path / "serve", redis_url, workers=2) as base:
        def send(cid: str, turn_id: str, n: int) -> tuple[int, Any]:
            return http(f"{base}/v1/conversations/{cid}/turns",
                        {"turn_id": turn_id, "message": {"text": text(n)}}, timeout=30)

        indexes = fire(send, cids)
        for cid in cids:
            assert sorted(indexes[cid]) == list(range(1, TURNS_EACH + 1)), cid
            status, summary = http(f"{base}/v1/conversations/{cid}")
            assert status == 200 and isinstance(summary, dict)
            assert summary["turn_index"] == TURNS_EACH
        status, scraped = http(f"{base}/metrics")
        assert isinstance(scraped, str)
        assert metric(scraped, "escalator_degraded_decisions_total") == 0
        print(f"\n{metric(scraped, 'escalator_state_conflicts_total'):.0f} conflicting "
              "updates retried")


def test_the_same_from_sixteen_threads_in_one_process(
        app: Flask, new_conversation_id: Callable[..., str]) -> None:
    # Threads in one process race harder than two sync workers: every turn is in flight.
    cids = [new_conversation_id("race") for _ in range(CONVERSATIONS)]

    def send(cid: str, turn_id: str, n: int) -> tuple[int, Any]:
        response = app.test_client().post(f"/v1/conversations/{cid}/turns",
                                          json={"turn_id": turn_id, "message": {"text": text(n)}})
        return response.status_code, response.get_json()

    indexes = fire(send, cids)
    for cid in cids:
        assert sorted(indexes[cid]) == list(range(1, TURNS_EACH + 1)), cid
