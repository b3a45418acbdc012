"""Redis killed or stuck mid-traffic, then back: every turn is still answered (200, within a
second, flagged degraded and counted) and the service recovers by itself within seconds.

Each test runs its own redis-server on a free loopback port, so it may kill it (SIGKILL),
freeze it (SIGSTOP, a stuck server whose connections stay open) and start it again on the
same port.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from support.servers import (
    Listener,
    RedisServer,
    http,
    metric,
    needs_redis_server,
    serve,
    wait_for,
)

from escalator.http.services import EXTENSION
from escalator.state.circuit import (
    CIRCUIT_COOLDOWN_SECONDS,
    CIRCUIT_FAILURE_THRESHOLD,
    CircuitBreaker,
)

pytestmark = [pytest.mark.slow, needs_redis_server]

ANSWER_WITHIN_SECONDS = 1.0
# The cool-down, a probe, and slack for a loaded CI machine.
RECOVERY_WITHIN_SECONDS = CIRCUIT_COOLDOWN_SECONDS + 3.0


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class CountingBreaker(CircuitBreaker):
    """The store's circuit breaker, counting the calls it lets through to Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.let_through = 0

    def allow(self) -> bool:
        allowed = super().allow()
        self.let_through += allowed
        return allowed


class Turns:
    """Sends turns of one conversation through the Flask test client, timing each."""

    def __init__(self, client: FlaskClient, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.sent = 0

    def send(self) -> dict[str, Any]:
        self.sent += 1
        started = time.monotonic()
        response = self.client.post(f"/v1/conversations/{self.cid}/turns", json={
            "turn_id": f"t-{self.sent}", "message": {"text": f"where is my parcel {self.sent}?"}})
        took = time.monotonic() - started
        assert response.status_code == 200, response.data
        assert took < ANSWER_WITHIN_SECONDS, f"turn {self.sent} took {took:.3f} s"
        body: dict[str, Any] = response.get_json()
        return body


def assert_degraded_and_counted(app: Flask, turns: Turns, how_many: int) -> None:
    degraded, errors = (sample("escalator_degraded_decisions_total"),
                        sample("escalator_state_errors_total"))
    for _ in range(how_many):
        assert turns.send()["degraded"] is True
    assert sample("escalator_degraded_decisions_total") == degraded + how_many
    assert sample("escalator_state_errors_total") == errors + how_many
    store = app.extensions[EXTENSION].store
    assert store.circuit_open
    assert sample("escalator_state_circuit_open") == 1
    ready = app.test_client().get("/readyz")
    # Still ready (stateless decisions are the configured fail mode), but says why.
    assert ready.status_code == 200
    assert ready.get_json()["state_store"] == "unavailable"
    assert ready.get_json()["degraded"] is True


def recover(app: Flask, turns: Turns) -> dict[str, Any]:
    """Send turns until one is decided with state again (within the recovery bound)."""
    answers: list[dict[str, Any]] = []
    wait_for(lambda: answers.append(turns.send()) or answers[-1]["degraded"] is False,
             RECOVERY_WITHIN_SECONDS, "a turn decided with state again", interval=0.05)
    assert not app.extensions[EXTENSION].store.circuit_open
    assert sample("escalator_state_circuit_open") == 0
    assert app.test_client().get("/readyz").get_json()["state_store"] == "ok"
    return answers[-1]


def test_a_killed_redis_degrades_every_turn_quickly_and_a_restart_recovers(
        own_app: Flask, own_redis: RedisServer) -> None:
    turns = Turns(own_app.test_client(), "c-killed")
    assert turns.send()["degraded"] is False

    own_redis.kill()
    assert_degraded_and_counted(own_app, turns, 10)
    # Open circuit: a turn does not wait on Redis at all, it does not even try it. Counted
    # by a listener on Redis's port (the cool-down made long enough that no probe is due).
    breaker = own_app.extensions[EXTENSION].store.breaker
    breaker.cooldown_seconds = 60.0
    listener = Listener(own_redis.port)
    try:
        for _ in range(5):
            assert turns.send()["degraded"] is True
    finally:
        listener.close()
        breaker.cooldown_seconds = CIRCUIT_COOLDOWN_SECONDS
    assert listener.connections == 0

    own_redis.start()  # same port, empty: the conversation starts over
    assert recover(own_app, turns)["turn_index"] == 1
    second = turns.send()
    assert second["degraded"] is False and second["turn_index"] == 2


def test_a_stuck_redis_costs_at_most_the_budget_and_recovers_when_it_resumes(
        own_app: Flask, own_redis: RedisServer) -> None:
    turns = Turns(own_app.test_client(), "c-stuck")
    assert turns.send()["turn_index"] == 1

    breaker = CountingBreaker()
    own_app.extensions[EXTENSION].store.breaker = breaker
    server = own_redis.client()
    connections = server.info("stats")["total_connections_received"]
    own_redis.pause()
    try:
        started = time.monotonic()
        assert turns.send()["degraded"] is True  # within ANSWER_WITHIN_SECONDS, too
        assert time.monotonic() - started >= 0.09  # it waited for the 100 ms read timeout
        assert breaker.let_through == 1  # once: one call, no second try
        assert_degraded_and_counted(own_app, turns, 10)
        # One call per turn until the circuit opened, then none: 11 turns cost Redis
        # 3 read timeouts, not 11.
        assert breaker.let_through == CIRCUIT_FAILURE_THRESHOLD
    finally:
        own_redis.resume()
    # Nor did any call try again behind the breaker's back: a call that timed out leaves
    # its connection unusable, so a second try would have opened another. Once a new
    # client is answered, the server has accepted every connection made before it.
    assert own_redis.answers()
    opened = server.info("stats")["total_connections_received"] - connections - 1
    server.close()
    assert opened <= CIRCUIT_FAILURE_THRESHOLD
    # Nothing was lost: the state written before the stall is still there.
    assert recover(own_app, turns)["turn_index"] == 2


@dataclass
class Answer:
    started: float
    finished: float
    status: int
    degraded: bool | None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


class Load:
    """Threads sending turns to `escalator serve` without pause, every answer recorded."""

    def __init__(self, base: str, threads: int = 4) -> None:
        self.base = base
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, n: int) -> None:
        turn = 0
        while not self._stop.is_set():
            turn += 1
            started = time.monotonic()
            try:
                status, body = http(f"{self.base}/v1/conversations/load-{n}/turns", {
                    "turn_id": f"t-{turn}", "message": {"text": f"is my order {turn} late?"}},
                    timeout=5)
                degraded = body.get("degraded") if isinstance(body, dict) else None
            except OSError:
                status, degraded = 0, None
            self.answers.append(Answer(started, time.monotonic(), status, degraded))

    def after(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.started > moment]

    def wait_degraded(self, since: float, count: int) -> None:
        wait_for(lambda: sum(bool(a.degraded) for a in self.after(since)) >= count, 10,
                 f"{count} degraded answers")

    def wait_recovered(self, since: float) -> float:
        """Wait for 20 answers in a row with state; seconds from `since` until the first of
        them was answered."""
        def recovered() -> bool:
            answers = self.after(since)
            tail = answers[-20:]
            return len(tail) == 20 and not any(a.degraded for a in tail)

        wait_for(recovered, RECOVERY_WITHIN_SECONDS + 5, "20 answers in a row with state")
        answers = sorted(self.after(since), key=lambda a: a.started)
        last_degraded = max((i for i, a in enumerate(answers) if a.degraded), default=-1)
        return answers[last_degraded + 1].finished - since


def scrape(base: str) -> str:
    status, text = http(f"{base}/metrics")
    assert status == 200 and isinstance(text, str)
    return text


def drive(base: str, load: Load, own_redis: RedisServer) -> tuple[float, ...]:
    """Kill Redis, start it again, freeze it, resume it, all under load; the moments
    of each and the two recovery times."""
    start = time.monotonic()
    wait_for(lambda: len(load.after(start)) >= 20, 10, "20 answers")

    killed = time.monotonic()
    own_redis.kill()
    load.wait_degraded(killed, 40)
    wait_for(lambda: metric(scrape(base), "escalator_state_circuit_open") == 1, 5,
             "a worker reports its circuit open")
    status, ready = http(f"{base}/readyz")
    assert status == 200 and isinstance(ready, dict)
    assert ready["state_store"] == "unavailable"

    restarted = time.monotonic()
    own_redis.start()
    recovery_after_kill = load.wait_recovered(restarted)

    paused = time.monotonic()
    own_redis.pause()
    try:
        load.wait_degraded(paused, 40)
        resumed = time.monotonic()
    finally:
        own_redis.resume()
    recovery_after_stall = load.wait_recovered(resumed)
    # Each worker closes its circuit on its next call with an answer.
    wait_for(lambda: metric(scrape(base), "escalator_state_circuit_open") == 0, 5,
             "every worker reports its circuit closed")
    return (killed, restarted, paused, resumed, recovery_after_kill, recovery_after_stall)


def test_serve_under_load_through_a_killed_and_a_stuck_redis(
        tmp_path: Path, own_redis: RedisServer) -> None:
    with serve(tmp_path / "serve", own_redis.url, workers=2,
               ESCALATOR_REDIS_TIMEOUT_MS="100", ESCALATOR_DECISION_LOG="redis") as base:
        with Load(base) as load:
            outages = drive(base, load, own_redis)
        counted = scrape(base)
    killed, restarted, paused, resumed, recovery_after_kill, recovery_after_stall = outages

    answers = load.answers
    assert answers and all(a.status == 200 for a in answers), \
        {a.status for a in answers}
    slowest = max(a.seconds for a in answers)
    assert slowest < ANSWER_WITHIN_SECONDS
    # Answers entirely inside an outage were degraded; every degraded one was counted.
    down = [a for a in answers if (killed < a.started and a.finished < restarted)
            or (paused < a.started and a.finished < resumed)]
    assert down and all(a.degraded for a in down)
    degraded = [a for a in answers if a.degraded]
    assert metric(counted, "escalator_degraded_decisions_total") == len(degraded)
    assert metric(counted, "escalator_state_errors_total") >= len(degraded)
    assert recovery_after_kill < RECOVERY_WITHIN_SECONDS
    assert recovery_after_stall < RECOVERY_WITHIN_SECONDS
    latencies = sorted(a.seconds for a in degraded)
    print(f"\n{len(answers)} answers, {len(degraded)} degraded; degraded latency "
          f"median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms; slowest answer {slowest * 1000:.1f} ms; "
          f"recovered {recovery_after_kill:.2f} s after the restart, "
          f"{recovery_after_stall:.2f} s after SIGCONT")
