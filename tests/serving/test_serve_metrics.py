"""Metrics set before gunicorn forks its workers (the rule set's identity, the reload
counters' zero series, the circuit breaker's state): `escalator serve` with two workers
must expose them from the first scrape on, and keep them true through a reload and a
worker restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.rulesets import copy_rules
from support.servers import http, serve_workers, start_serve, wait_for

pytestmark = pytest.mark.slow


def samples(base: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """One scrape's samples of a metric, by their sorted labels."""
    _, text = http(f"{base}/metrics")
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(str(text)):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def active_rule_sets(base: str) -> dict[str, float]:
    """escalator_ruleset_info by version."""
    return {dict(labels)["version"]: value
            for labels, value in samples(base, "escalator_ruleset_info").items()}


def settled(read: Callable[[], Any], want: Any, seconds: float = 20) -> Any:
    """Poll read() until it returns want or the deadline passes; its last value."""
    deadline = time.monotonic() + seconds
    while (value := read()) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def ruleset(base: str) -> dict[str, Any]:
    _, body = http(f"{base}/v1/ruleset")
    assert isinstance(body, dict)
    return body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    """`escalator serve`, two workers, on a copy of the default rules."""
    rules = tmp_path / "rules"
    copy_rules(rules)
    base, process = start_serve(tmp_path / "serve", ESCALATOR_RULES_DIR=str(rules))
    try:
        yield base, process, rules
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_metrics_set_at_start_have_samples_in_the_first_scrape(
        served: tuple[str, Any, Path]) -> None:
    base, _, _ = served
    shipped = ruleset(base)
    # Before any turn: every worker has published its own values after the fork.
    info = samples(base, "escalator_ruleset_info")
    assert info == {(("digest", shipped["digest"]), ("name", shipped["name"]),
                     ("version", shipped["version"])): 1.0}
    reloads = samples(base, "escalator_ruleset_reloads_total")
    assert reloads == {(("result", "success"),): 0.0, (("result", "failed"),): 0.0}
    assert samples(base, "escalator_state_circuit_open") == {(): 0.0}
    for counter in ("escalator_degraded_decisions_total", "escalator_state_errors_total",
                    "escalator_decision_log_errors_total"):
        assert samples(base, counter) == {(): 0.0}, counter

    status, _ = http(f"{base}/v1/conversations/metrics-1/turns",
                     {"turn_id": "t-1", "message": {"text": "where is my parcel?"}})
    assert status == 200
    assert active_rule_sets(base) == {shipped["version"]: 1.0}


def test_the_rule_set_info_follows_a_reload_and_a_worker_restart(
        served: tuple[str, Any, Path]) -> None:
    base, process, rules = served
    old = ruleset(base)["version"]
    header = rules / "ruleset.yaml"
    header.write_text(header.read_text().replace(f'version: "{old}"', 'version: "9.9.9"'))
    process.send_signal(signal.SIGHUP)  # the master asks every worker to reload
    # The old version drops to 0, the new one is 1.
    assert settled(lambda: active_rule_sets(base), {old: 0.0, "9.9.9": 1.0}) == {
        old: 0.0, "9.9.9": 1.0}

    # A worker that dies is replaced by a fork of the master, which loaded the old rules
    # at start: the new worker publishes what it runs, catches up, and the dead worker's
    # values leave the scrape.
    before = serve_workers(process)
    victim = min(before)
    psutil.Process(victim).kill()
    wait_for(lambda: len(serve_workers(process) - before) == 1
             and victim not in serve_workers(process), 20, "gunicorn replaces the killed worker")
    wait_for(lambda: {ruleset(base)["version"] for _ in range(10)} == {"9.9.9"}, 20,
             "the new worker catches up with the rules folder")
    assert settled(lambda: active_rule_sets(base), {old: 0.0, "9.9.9": 1.0}) == {
        old: 0.0, "9.9.9": 1.0}
