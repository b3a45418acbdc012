"""Hostile inline rule sets against `escalator serve`, with a canary caller beside them.

    python -m bench.attacks.inline_rulesets                   # every attack, then the cost
    python -m bench.attacks.inline_rulesets --only bomb,deep  # some of them
    python -m bench.attacks.inline_rulesets --source ../main  # another checkout

Starts `escalator serve` with 2 workers, auth on (an attacker key and a canary key) and
the embedded Redis in a temporary folder, on a free loopback port. For each attack it
reads the workers' RSS (/proc/<pid>/status), sends the attack (`POST /v1/evaluate` with
`"ruleset": {"files": ...}`) while the canary sends a turn every 50 ms with its own key,
and reports the attack's status, error code and time, the canary's slowest turn and
failures, and each worker's RSS before and after (a worker that was replaced shows as
such). Then it sends valid inline evaluations (the default rules sent inline, a 5-turn
transcript) one after the other and reports the wall time and the CPU the workers and
their children used per evaluation, and floods the service with them from 4 connections
(one caller, no rate limit: ESCALATOR_INLINE_PER_MINUTE=1000) to compare the canary's
latency alone and during the flood.

--source DIR runs DIR's escalator package and rules instead of this checkout's
(PYTHONPATH=DIR, ESCALATOR_RULES_DIR=DIR/rules): the same attacks against an older
version. Attacks that exhaust memory there take gigabytes for tens of seconds; the
machine needs the room. Everything stops by itself and the temporary folder is removed.

The payloads are also what tests/http/test_inline_attacks.py sends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.servers import ROOT, free_port, service_env

ATTACKER_KEY = "attacker-key-0123456789"
CANARY_KEY = "canary-key-0123456789"

FLOOR = """\
ruleset: attack
version: "1"
default: {decision: keep_with_bot}
rules:
  - {id: human, description: d, priority: 100, when: {fact: requested_human, is: true},
     then: {decision: route_to_human}}
  - {id: cap, description: d, priority: 95, when: {fact: loop.fallback_streak, gte: 3},
     then: {decision: route_to_human}}
"""
TURNS = [{"message": {"text": "where is my parcel?"}},
         {"message": {"text": "I already told you, it never came"}, "bot": {"fallback": True}}]


# ---------------------------------------------------------------------------- payloads

def alias_lists(values: int = 250, rules: int = 20) -> str:
    """in/not_in lists of a few hundred values, reused through aliases by many rules."""
    inside = ", ".join(str(i) for i in range(1, values + 1))
    outside = ", ".join(str(i) for i in range(1, 61))
    text = FLOOR + (f"  - {{id: r0, description: d, priority: 10, when: {{all: ["
                    f"{{fact: turn_index, in: &in [{inside}]}}, "
                    f"{{fact: loop.repeats, not_in: &out [{outside}]}}]}}, "
                    "then: {decision: route_to_human}}\n")
    for i in range(1, rules):
        text += (f"  - {{id: r{i}, description: d, priority: 10, when: {{all: ["
                 "{fact: turn_index, in: *in}, {fact: loop.repeats, not_in: *out}]}, "
                 "then: {decision: route_to_human}}\n")
    return text


def huge_streak(constant: int = 100_000_000) -> str:
    """A rule comparing loop.fallback_streak with a huge constant (the floor check)."""
    return FLOOR + (f"  - {{id: big, description: d, priority: 10, when: "
                    f"{{fact: loop.fallback_streak, lt: {constant}}}, "
                    "then: {decision: route_to_human}}\n")


def alias_bomb(levels: int = 8, fan: int = 9) -> str:
    """Aliases of aliases inside `when`: fan**levels comparisons, within the nesting limit."""
    expr = "&a0 {fact: turn_index, gte: 1}"
    for level in range(1, levels + 1):
        expr = f"&a{level} {{all: [{expr}" + f", *a{level - 1}" * (fan - 1) + "]}"
    return FLOOR + (f"  - {{id: bomb, description: d, priority: 10, when: {expr}, "
                    "then: {decision: route_to_human}}\n")


def deep_nesting(levels: int = 1000) -> str:
    """YAML nested a thousand levels deep."""
    return FLOOR + (f"  - {{id: deep, description: d, priority: 10, when: "
                    f"{'[' * levels}{']' * levels}, then: {{decision: route_to_human}}}}\n")


def complex_key() -> str:
    """A list as a mapping key (`? [a, b] : c`)."""
    return "? [a, b]\n: c\n" + FLOOR


def default_rules() -> dict[str, str]:
    """The default policy's rule files, as a caller would send them inline."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "rules").glob("*.yaml"))}


def evaluation(files: dict[str, str]) -> dict[str, Any]:
    """The body of POST /v1/evaluate for these rule files and a short transcript."""
    return {"turns": TURNS, "ruleset": {"files": files}}


@dataclass(frozen=True)
class Attack:
    name: str
    what: str
    body: Callable[[], dict[str, Any]]
    at_once: int = 1


ATTACKS = [
    Attack("lists", "in/not_in lists of 250 and 60 values reused by 20 rules",
           lambda: evaluation({"ruleset.yaml": alias_lists()})),
    Attack("lists-100", "the same with lists of 100 values (within the list limit)",
           lambda: evaluation({"ruleset.yaml": alias_lists(values=100)})),
    Attack("streak", "loop.fallback_streak lt 100,000,000",
           lambda: evaluation({"ruleset.yaml": huge_streak()})),
    Attack("streak-2^62", "loop.fallback_streak lt 2**62",
           lambda: evaluation({"ruleset.yaml": huge_streak(2**62)})),
    Attack("bomb", "YAML alias bomb in `when` (9**8 comparisons in 1 KB)",
           lambda: evaluation({"ruleset.yaml": alias_bomb()})),
    Attack("bomb-x2", "the alias bomb twice at once", lambda: evaluation(
        {"ruleset.yaml": alias_bomb()}), at_once=2),
    Attack("deep", "YAML nested 1,000 levels",
           lambda: evaluation({"ruleset.yaml": deep_nesting()})),
    Attack("complex-key", "a list as a mapping key",
           lambda: evaluation({"ruleset.yaml": complex_key()})),
]


# ---------------------------------------------------------------------------- the server

def post(url: str, body: dict[str, Any], key: str,
         timeout: float = 120) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
    """POST JSON with a key: status, parsed body (text if not JSON, '' if no answer) and
    headers."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # loopback only
            status, raw, headers = answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), dict(exc.headers)
    except (OSError, urllib.error.URLError) as exc:
        return 0, f"no answer: {exc}", {}
    try:
        return status, json.loads(raw), headers
    except ValueError:
        return status, raw.decode(errors="replace"), headers


def children(pid: int) -> list[int]:
    """The live children of a process (the gunicorn master's workers; not zombies)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return sorted(found)


def rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB (VmRSS), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """CPU a process and its waited-for children used (utime+stime+cutime+cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """`escalator serve` with 2 workers in a temporary folder."""

    source: Path | None
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="attacks-")))
    process: subprocess.Popen[bytes] | None = None
    base: str = ""

    def start(self) -> None:
        port = free_port()
        env = service_env()
        env.update(ESCALATOR_API_KEYS=f"{ATTACKER_KEY},{CANARY_KEY}",
                   ESCALATOR_INLINE_PER_MINUTE="1000")
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
            env["ESCALATOR_RULES_DIR"] = str(self.source / "rules")
        with (self.folder / "serve.log").open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "escalator", "serve", "--port", str(port),
                 "--workers", "2"], cwd=self.folder, env=env, stdout=log,
                stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        self.wait_ready()

    def wait_ready(self, seconds: float = 90) -> None:
        """Until /healthz answers and the same 2 live workers have been there for 1 s (a
        worker that is exiting, or its replacement booting, is not settled)."""
        assert self.process is not None
        deadline = time.monotonic() + seconds
        seen: tuple[list[int], float] = ([], time.monotonic())
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("attacks: serve exited:\n"
                                 + (self.folder / "serve.log").read_text()[-3000:])
            workers = self.workers()
            if workers != seen[0]:
                seen = (workers, time.monotonic())
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                    if (answer.status == 200 and len(workers) == 2
                            and time.monotonic() - seen[1] >= 1.0):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("attacks: the service did not settle with 2 workers")

    def workers(self) -> list[int]:
        assert self.process is not None
        return children(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class Canary:
    """A caller sending a turn every 50 ms with its own key; records each latency."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._turn = 0

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        conversation = f"canary-{os.getpid()}-{time.monotonic_ns()}"
        while not self._stop.is_set():
            self._turn += 1
            started = time.monotonic()
            status, body, _ = post(f"{self.base}/v1/conversations/{conversation}/turns",
                                   {"turn_id": f"t-{self._turn}",
                                    "message": {"text": "hello, where is my order?"}},
                                   CANARY_KEY, timeout=60)
            self.latencies.append(time.monotonic() - started)
            if status != 200:
                self.failures.append(f"{status} {str(body)[:80]}")
            self._stop.wait(0.05)


def run_attack(server: Server, attack: Attack) -> dict[str, Any]:
    """Send one attack with the canary running; what happened, RSS once settled."""
    server.wait_ready()
    before = {pid: rss_mb(pid) for pid in server.workers()}
    body = attack.body()
    results: list[tuple[int, Any, float]] = []

    def send() -> None:
        started = time.monotonic()
        status, answer, _ = post(f"{server.base}/v1/evaluate", body, ATTACKER_KEY)
        results.append((status, answer, time.monotonic() - started))

    with Canary(server.base) as canary:
        time.sleep(0.3)  # the canary's first turns, before the attack
        senders = [threading.Thread(target=send) for _ in range(attack.at_once)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        time.sleep(0.3)
    server.wait_ready()
    after = {pid: rss_mb(pid) for pid in server.workers()}
    return {"attack": attack, "results": results, "before": before, "after": after,
            "canary_max": max(canary.latencies, default=0.0),
            "canary_turns": len(canary.latencies), "canary_failures": canary.failures,
            "bytes": len(json.dumps(body))}


def code_of(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("code"))
    if isinstance(answer, dict):
        return "ok"
    return str(answer)[:40].replace("\n", " ")


def report_attack(outcome: dict[str, Any]) -> None:
    attack: Attack = outcome["attack"]
    print(f"\n{attack.name}: {attack.what} ({outcome['bytes']:,} bytes of JSON)")
    for status, answer, seconds in outcome["results"]:
        print(f"  answer: {status} {code_of(answer)} in {seconds:.2f} s")
    before, after = outcome["before"], outcome["after"]
    rss = ", ".join(f"{pid}: {mb:.0f} MB" for pid, mb in before.items() if mb is not None)
    print(f"  worker RSS before: {rss}")
    parts = []
    for pid, mb in after.items():
        label = "" if pid in before else " (new worker)"
        parts.append(f"{pid}: {mb:.0f} MB{label}" if mb is not None else f"{pid}: gone")
    parts += [f"{pid}: replaced" for pid in before if pid not in after]
    print(f"  worker RSS after:  {', '.join(parts)}")
    failures = outcome["canary_failures"]
    print(f"  canary: {outcome['canary_turns']} turns, slowest {outcome['canary_max']:.2f} s, "
          f"{len(failures)} failed" + (f" ({failures[0]})" if failures else ""))


def valid_cost(server: Server, count: int) -> None:
    """Wall time and worker (and child) CPU per valid inline evaluation."""
    body = evaluation(default_rules())
    workers = server.workers()
    cpu_before = sum(cpu_seconds(pid) for pid in workers)
    walls = []
    statuses = set()
    for _ in range(count):
        started = time.monotonic()
        status, _, _ = post(f"{server.base}/v1/evaluate", body, ATTACKER_KEY)
        walls.append(time.monotonic() - started)
        statuses.add(status)
    cpu = (sum(cpu_seconds(pid) for pid in workers) - cpu_before) / count
    walls.sort()
    print(f"\nvalid inline evaluation (the default rules, {len(TURNS)} turns), {count} in a "
          f"row: statuses {sorted(statuses)}; wall median {walls[len(walls) // 2] * 1000:.0f} "
          f"ms, max {walls[-1] * 1000:.0f} ms; CPU {cpu * 1000:.0f} ms per evaluation "
          f"(workers and their children)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def flood(server: Server, seconds: float, threads: int) -> None:
    """Valid inline evaluations from one caller as fast as `threads` connections send
    them, against the canary's latency alone and during the flood."""
    body = evaluation(default_rules())
    with Canary(server.base) as idle:
        time.sleep(seconds)
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds

    def send() -> None:
        while time.monotonic() < stop:
            status, _, _ = post(f"{server.base}/v1/evaluate", body, ATTACKER_KEY)
            statuses[status] = statuses.get(status, 0) + 1

    with Canary(server.base) as busy:
        senders = [threading.Thread(target=send) for _ in range(threads)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    answered = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    print(f"\nflood: valid inline evaluations from one caller on {threads} connections for "
          f"{seconds:g} s: {answered} ({sum(statuses.values()) / seconds:.0f}/s)")
    for name, canary in (("alone", idle), ("during the flood", busy)):
        ms = [x * 1000 for x in canary.latencies]
        print(f"  canary {name}: {len(ms)} turns, p50 {percentile(ms, 0.5):.1f} ms, "
              f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms, default=0):.1f} ms, "
              f"{len(canary.failures)} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated attack names: "
                        + ", ".join(a.name for a in ATTACKS))
    parser.add_argument("--source", type=Path, help="a checkout whose escalator to run")
    parser.add_argument("--valid", type=int, default=20, help="valid evaluations to time")
    parser.add_argument("--flood", type=float, default=10.0,
                        help="seconds of valid inline evaluations as fast as possible")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else {a.name for a in ATTACKS}
    server = Server(args.source.resolve() if args.source else None)
    try:
        server.start()
        for attack in ATTACKS:
            if attack.name in wanted:
                report_attack(run_attack(server, attack))
        if args.valid:
            valid_cost(server, args.valid)
        if args.flood:
            flood(server, args.flood, threads=4)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
