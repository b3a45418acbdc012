"""A real scrape: `escalator serve` with two gunicorn workers, scraped by a real
Prometheus server on loopback; the decision counts add up across workers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from support.servers import free_port, http, metric, start_serve, wait_for

pytestmark = pytest.mark.slow


def decisions_in_scrape(base: str) -> float:
    return metric(str(http(f"{base}/metrics")[1]), "escalator_decisions_total")


def prometheus_answer(prom: str, query: str) -> tuple[int, Any]:
    """The status and body of a query to Prometheus's HTTP API."""
    return http(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query}))


def prometheus_query(prom: str, query: str) -> list[dict[str, Any]]:
    status, answer = prometheus_answer(prom, query)
    assert status == 200 and isinstance(answer, dict), (status, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def prometheus_value(prom: str, query: str) -> float | None:
    """A query's single value, or None: no data yet, or Prometheus not ready yet (not
    answering, or 503 Service Unavailable while its storage opens)."""
    try:
        status, answer = prometheus_answer(prom, query)
    except OSError:
        return None
    if status != 200 or not isinstance(answer, dict):
        return None
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_agrees_with_every_scrape_across_two_workers(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("no prometheus binary (Debian package prometheus; .ci/run installs it)")
    base, service = start_serve(tmp_path)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: escalator\n    static_configs: [{{targets: ['{base[7:]}']}}]\n")
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        turns = 40
        for i in range(turns):
            status, _ = http(f"{base}/v1/conversations/prom-{i % 8}/turns",
                             {"turn_id": f"t-{i}", "message": {"text": f"question number {i}?"},
                              "channel": "web" if i % 2 else "app"})
            assert status == 200
        # Whichever worker answers the scrape, the sum covers both.
        assert [decisions_in_scrape(base) for _ in range(6)] == [turns] * 6
        wait_for(lambda: prometheus_value(prom, 'up{job="escalator"}') == 1.0, 30,
                 "Prometheus scrapes the service")
        wait_for(lambda: prometheus_value(prom, "sum(escalator_decisions_total)") == turns,
                 30, "Prometheus counts every decision")
        # The rule set's identity, set before gunicorn forks, reaches Prometheus too (the
        # version-skew alert and the dashboard's rule set table read it).
        wait_for(lambda: prometheus_value(prom, "count(escalator_ruleset_info == 1)") == 1,
                 30, "Prometheus sees the one active rule set")
        by_channel = prometheus_query(prom, "sum by (channel) (escalator_decisions_total)")
        assert {r["metric"]["channel"]: float(r["value"][1]) for r in by_channel} == {
            "web": turns / 2, "app": turns / 2}
    finally:
        for process in (server, service):
            process.send_signal(signal.SIGTERM)
        for process in (server, service):
            process.wait(timeout=30)
