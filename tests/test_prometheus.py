"""A real scrape: `escalator serve` with two gunicorn workers, scraped by a real
Prometheus server on loopback; the decision counts add up across workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str, body: dict[str, Any] | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type":
                                                              "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        content: bytes = response.read()
        return content


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def decisions_in_scrape(base: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1])
               for line in fetch(f"{base}/metrics").decode().splitlines()
               if line.startswith("escalator_decisions_total{"))


def prometheus_value(prom: str, query: str) -> float | None:
    answer = json.loads(fetch(f"{prom}/api/v1/query?" + urllib.parse.urlencode(
        {"query": query})))
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_agrees_with_every_scrape_across_two_workers(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("no prometheus binary (Debian package prometheus; .ci/run installs it)")
    port, prom_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCALATOR_", "PROM"))}
    service = subprocess.Popen(
        [sys.executable, "-m", "escalator", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("w"))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: escalator\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    base, prom = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    try:
        wait_for(lambda: fetch(f"{base}/healthz") == b'{"status":"ok"}\n', 30)
        turns = 40
        for i in range(turns):
            fetch(f"{base}/v1/conversations/prom-{i % 8}/turns",
                  {"turn_id": f"t-{i}", "message": {"text": f"question number {i}?"},
                   "channel": "web" if i % 2 else "app"})
        # Whichever worker answers the scrape, the sum covers both.
        assert [decisions_in_scrape(base) for _ in range(6)] == [turns] * 6
        wait_for(lambda: prometheus_value(prom, 'up{job="escalator"}') == 1.0, 30)
        wait_for(lambda: prometheus_value(prom, "sum(escalator_decisions_total)") == turns,
                 30)
        by_channel = json.loads(fetch(f"{prom}/api/v1/query?" + urllib.parse.urlencode(
            {"query": "sum by (channel) (escalator_decisions_total)"})))["data"]["result"]
        assert {r["metric"]["channel"]: float(r["value"][1]) for r in by_channel} == {
            "web": turns / 2, "app": turns / 2}
    finally:
        for process in (server, service):
            process.send_signal(signal.SIGTERM)
        for process in (server, service):
            process.wait(timeout=30)
