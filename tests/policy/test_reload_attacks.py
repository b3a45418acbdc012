"""Attacks on reloading, under `escalator serve` with 2 workers, each with a canary caller
whose turns must keep succeeding: a rule file written slowly while the folder is polled,
a named pipe in the folder, a storm of SIGHUPs."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.rulesets import copy_rules, set_version
from support.servers import http, metric, start_serve, wait_for
from support.servers import stop as stop_server

pytestmark = pytest.mark.slow

# A canary's turn may take this long while an attack runs (a turn takes milliseconds;
# the machine is shared, so the bound is generous).
CANARY_SECONDS = 5.0


@dataclass
class Canary:
    """Turns posted one after another: every status, the slowest, the digests decided by."""

    base: str
    statuses: list[int] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)
    slowest: float = 0.0

    def run(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                status, body = http(f"{self.base}/v1/conversations/canary-{n % 5}/turns",
                                    {"turn_id": f"t-{n}",
                                     "message": {"text": f"where is my order {n}"}},
                                    timeout=30)
            except OSError:
                status, body = -1, {}
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses.append(status)
            if isinstance(body, dict) and "ruleset" in body:
                self.digests.add(body["ruleset"]["digest"])

    def check(self) -> None:
        assert len(self.statuses) >= 10, "the canary hardly ran"
        assert set(self.statuses) == {200}
        assert self.slowest < CANARY_SECONDS


@contextmanager
def serving(tmp_path: Path, rules: Path, **settings: str
            ) -> Iterator[tuple[str, subprocess.Popen[bytes], Canary]]:
    """`escalator serve` (2 workers, embedded Redis) on `rules`, with a canary running."""
    base, server = start_serve(tmp_path, ESCALATOR_RULES_DIR=str(rules), **settings)
    canary = Canary(base)
    stop = threading.Event()
    thread = threading.Thread(target=canary.run, args=(stop,))
    thread.start()
    try:
        yield base, server, canary
    finally:
        stop.set()
        thread.join()
        stop_server(server)


def folder_digest(rules: Path) -> str:
    """The public digest of a folder's content (sha256 over names and bytes)."""
    digest = hashlib.sha256()
    names = sorted([p.name for p in rules.glob("*.yaml")]
                   + [f"lexicons/{p.name}" for p in (rules / "lexicons").glob("*.yaml")])
    for name in names:
        data = (rules / name).read_bytes()
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return "sha256:" + digest.hexdigest()


def ruleset(base: str) -> dict[str, Any]:
    status, body = http(f"{base}/v1/ruleset")
    assert status == 200 and isinstance(body, dict)
    return body


def served_by_every_worker(base: str, key: str, value: str) -> bool:
    """True when every live worker runs a rule set with this version or digest: the
    workers' escalator_ruleset_info series at 1 all carry it. (Answers of /v1/ruleset
    cannot tell: one worker may take every request while the other is busy.)"""
    running = {labels[key] for labels, sample in ruleset_info(base) if sample == 1}
    return running == {value}


def ruleset_info(base: str) -> list[tuple[dict[str, str], float]]:
    """The escalator_ruleset_info samples of /metrics: labels and value."""
    text = str(http(f"{base}/metrics")[1])
    return [(sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            if family.name == "escalator_ruleset_info" for sample in family.samples]


def reloads(base: str, result: str) -> float:
    return metric(str(http(f"{base}/metrics")[1]),
                  f'escalator_ruleset_reloads_total{{result="{result}"}}')


def workers(server: subprocess.Popen[bytes]) -> list[int]:
    """The pids of the gunicorn master's worker processes (Linux /proc)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def threads(pid: int) -> int:
    """How many threads the process runs; 0 once it has exited."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def catches_sighup(pid: int) -> bool:
    """True once the process has its own SIGHUP handler (Linux /proc: SigCgt, bit 0)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


def test_a_rule_file_written_slowly_is_never_activated_half_written(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    loops = rules / "loops.yaml"
    edited = loops.read_bytes().replace(b"description: ", b"description: Edited. ", 1)
    # Cut where a rule starts, the file written so far is a valid rule set with rules
    # missing (13 of 17, then 15). The writer pauses 1 s after each piece: longer than a
    # reload takes (so a poller that only checks that the folder did not change while it
    # was loaded activates the piece), a third of the settle time. Polled every 50 ms.
    starts = [i for i in range(len(edited)) if edited.startswith(b"\n  - id:", i)]
    cuts = [0, starts[1], starts[3], len(edited)]
    pieces = [edited[a:b] for a, b in itertools.pairwise(cuts)]
    with serving(tmp_path, rules, ESCALATOR_RELOAD_INTERVAL_SECONDS="0.05",
                 ESCALATOR_RELOAD_SETTLE_SECONDS="3") as (base, _, canary):
        before = ruleset(base)
        rule_ids = [rule["id"] for rule in before["rules"]]
        seen: list[tuple[str, list[str]]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                body = ruleset(base)
                seen.append((body["digest"], [rule["id"] for rule in body["rules"]]))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            fd = os.open(loops, os.O_WRONLY | os.O_TRUNC)
            try:
                for piece in pieces:
                    os.write(fd, piece)
                    stop.wait(1.0)  # the slow writer's pace (the attack), not a wait
            finally:
                os.close(fd)
            complete = folder_digest(rules)
            wait_for(lambda: served_by_every_worker(base, "digest", complete), 30,
                     "both workers activate the completed file")
        finally:
            stop.set()
            watcher.join()
        final = ruleset(base)
        assert any(r["description"].startswith("Edited. ") for r in final["rules"])
        assert len(seen) > 20
        assert {digest for digest, _ in seen} <= {before["digest"], complete}
        assert all(ids == rule_ids for _, ids in seen)
        assert canary.digests <= {before["digest"], complete}
        # The half-written file was never even loaded: no refusal was counted (which
        # would fire the reload-failed alert), and each worker activated one rule set.
        assert reloads(base, "failed") == 0
        assert reloads(base, "success") == 2
    canary.check()


def test_a_named_pipe_neither_blocks_polling_nor_hangs_the_admin_reload(
        tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    with serving(tmp_path, rules, ESCALATOR_RELOAD_INTERVAL_SECONDS="0.05",
                 ESCALATOR_RELOAD_SETTLE_SECONDS="0.5") as (base, _, canary):
        version = ruleset(base)["version"]
        os.mkfifo(rules / "pipe.yaml")
        wait_for(lambda: reloads(base, "failed") >= 2, 20, "both workers refuse the folder")
        for _ in range(3):
            started = time.monotonic()
            status, body = http(f"{base}/v1/ruleset/reload", {}, timeout=30)
            assert time.monotonic() - started < 10
            assert status == 422 and isinstance(body, dict)
            assert any(p.startswith("pipe.yaml:") and "named pipe" in p
                       for p in body["error"]["details"]["problems"])
        assert served_by_every_worker(base, "version", version)

        # The pollers are alive: the next change is seen by both workers.
        (rules / "pipe.yaml").unlink()
        set_version(rules, "2027.4.0")
        wait_for(lambda: served_by_every_worker(base, "version", "2027.4.0"), 20,
                 "both workers activate the folder once the pipe is gone")
    canary.check()


def test_a_storm_of_sighups_runs_one_reload_thread_per_worker(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    with serving(tmp_path, rules, ESCALATOR_RELOAD_SETTLE_SECONDS="0.5") as (
            base, server, canary):
        # A worker resets SIGHUP to its default (exit) when it starts and installs the
        # reload handler only once booted: signalled earlier, it would exit and be
        # replaced. The storm starts when both workers catch it.
        wait_for(lambda: len(workers(server)) == 2
                 and all(catches_sighup(pid) for pid in workers(server)), 20,
                 "both workers run and reload on SIGHUP")
        pids = workers(server)
        before = {pid: threads(pid) for pid in pids}
        most = dict(before)
        set_version(rules, "2027.5.0")  # polling is off: only the signals reload it
        for _ in range(60):
            server.send_signal(signal.SIGHUP)  # the master passes each one to every worker
            for pid in pids:
                most[pid] = max(most[pid], threads(pid))

        def settled() -> bool:
            for pid in pids:
                most[pid] = max(most[pid], threads(pid))
            return served_by_every_worker(base, "version", "2027.5.0")

        wait_for(settled, 20, "the storm reloads every worker")
        assert workers(server) == pids, "a worker exited during the storm: SIGHUP restarted it"
        # Each worker already runs its one reload thread: the storm adds none (one more,
        # at most, is allowed for a thread the service starts for something else).
        assert all(most[pid] <= before[pid] + 1 for pid in pids), (before, most)
    canary.check()
