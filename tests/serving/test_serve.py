"""End to end: `escalator serve` under gunicorn with two workers and the embedded Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.servers import (
    cpu_seconds,
    free_port,
    http,
    metric,
    serve_workers,
    start_serve,
    wait_for,
)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """`escalator serve` in a fresh folder, without ESCALATOR_REDIS_URL: embedded Redis."""
    base, process = start_serve(tmp_path)
    try:
        yield base, process, tmp_path
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_two_workers_share_state_and_metrics_and_stop_cleanly(served: Any) -> None:
    base, process, folder = served
    turns = 12
    for i in range(1, turns + 1):
        status, body = http(f"{base}/v1/conversations/e2e-1/turns",
                            {"turn_id": f"t-{i}", "message": {"text": f"question {i}?"}})
        assert status == 200
        assert isinstance(body, dict)
        assert body["turn_index"] == i  # one state, whichever worker answered
    _, metrics = http(f"{base}/metrics")
    assert metric(str(metrics), "escalator_decisions_total") == turns

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not list(folder.glob("var/redis/owner.pid"))  # the embedded Redis was stopped


def test_a_rule_set_without_the_floor_refuses_to_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "lexicons").mkdir(parents=True)
    source = Path(__file__).resolve().parents[2] / "rules"
    for lexicon in (source / "lexicons").glob("*.yaml"):
        (rules / "lexicons" / lexicon.name).write_text(lexicon.read_text())
    (rules / "policy.yaml").write_text(
        "ruleset: no-way-out\nversion: '1'\n"
        "default: {decision: keep_with_bot, queue: q, urgency: normal, customer_message: hi}\n"
        "rules:\n"
        "  - id: fallbacks\n    description: Too many fallbacks.\n    priority: 10\n"
        "    when: {all: [{fact: loop.fallback_streak, gte: 3}]}\n"
        "    then: {decision: route_to_human}\n")
    env = {**os.environ, "ESCALATOR_RULES_DIR": str(rules)}
    result = subprocess.run([sys.executable, "-m", "escalator", "serve", "--port",
                             str(free_port())], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "requested_human" in result.stderr
    assert "refusing to start" in result.stderr


def idle(pids: set[int]) -> bool:
    """No process of `pids` used more than 10 ms of CPU time in the next 200 ms."""
    before = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(0.2)
    return all(cpu_seconds(pid) - spent < 0.01 for pid, spent in before.items())


def test_sigterm_lets_a_turn_in_flight_finish(tmp_path: Path) -> None:
    base, process = start_serve(tmp_path, ESCALATOR_MAX_BODY_BYTES="4000000")
    # A long dry run (500 long turns, about a second) keeps one worker busy.
    text = ("I already told you twice, order {} never came, the tracking page is useless "
            "and nobody answers my emails or my calls, this is terrible! ") * 12
    transcript = {"turns": [{"message": {"text": text.replace("{}", str(i))}}
                            for i in range(500)]}
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["status"], body = http(f"{base}/v1/evaluate", transcript, timeout=30)
            outcome["answered"] = time.monotonic()
            assert isinstance(body, dict)
            outcome["decisions"] = len(body["decisions"])
        except Exception as exc:  # the assertion below reports it
            outcome["error"] = repr(exc)

    caller = threading.Thread(target=call)
    try:
        wait_for(lambda: len(serve_workers(process)) == 2, 30, "2 workers")
        wait_for(lambda: idle(serve_workers(process)), 30, "both workers idle")
        before = {pid: cpu_seconds(pid) for pid in serve_workers(process)}
        caller.start()
        # In flight: a worker has spent CPU time on it (the dry run needs about a second).
        wait_for(lambda: any(cpu_seconds(pid) - spent >= 0.1 for pid, spent in before.items()),
                 30, "a worker is answering the dry run")
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        caller.join(timeout=30)
        assert outcome.get("status") == 200, outcome
        assert outcome["decisions"] == 500
        assert outcome["answered"] > signalled  # answered after the SIGTERM, not before
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
