"""A scrape in multi-process mode reads every worker's metric file, whatever state it is in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRAPE = """
from escalator import metrics
metrics.DECISIONS.labels("keep_with_bot", "web").inc()
body, _ = metrics.exposition()
print(body.decode())
"""


def scrape(folder: Path) -> subprocess.CompletedProcess[str]:
    """A worker-like process that counts one decision and scrapes the shared folder."""
    return subprocess.run([sys.executable, "-c", SCRAPE], capture_output=True, text=True,
                          env={"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": ""},
                          timeout=60)


def test_a_metric_file_a_worker_is_still_creating_does_not_fail_the_scrape(
        tmp_path: Path) -> None:
    # prometheus_client opens a new worker's file empty and sizes it just after: a scrape
    # landing in between used to answer 500.
    (tmp_path / "counter_4242.db").write_bytes(b"")
    done = scrape(tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'escalator_decisions_total{channel="web",decision="keep_with_bot"} 1.0' in done.stdout
