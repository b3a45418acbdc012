"""Load benchmark: `escalator serve` driven over HTTP by wrk, against its own /healthz.

    python -m bench.perf.load [--duration 20] [--connections 8] [--workers 2]
    python -m bench.perf.load --soak 10          # half of the capacity for 10 minutes: RSS
    python -m bench.perf.load --shadow-rules DIR # with a shadow rule set (its cost: compare)

Starts a private redis-server on a free loopback port (`--save "" --appendonly no`; or
uses --redis-url, deleting only the keys it wrote) and the service under gunicorn on
another, then, one after the other on the same server:

1. warm-up: realistic turns (bench/perf/load.lua) for a few seconds;
2. `GET /healthz` as fast as the server answers: the framework's floor (Flask, gunicorn,
   a new TCP connection per request since sync workers do not keep connections alive);
3. `POST /v1/conversations/{id}/turns` as fast as the server answers: capacity, latency
   at full load, Redis round trips per decision (INFO commandstats delta over the
   decisions the service counted in /metrics);
4. turns at a fixed rate of half that capacity (wrk with a per-request delay() schedule;
   see bench/perf/load.lua): latency at half load;
5. `MEMORY USAGE` of conversations that reached 20 turns.

Each phase also reports the service's own p50/p99 (its escalator_http_request_duration
_seconds histogram: the rest of wrk's latency is queueing for a free worker and TCP), and
CPU per request of the workers, Redis and wrk, plus what every other process on the
machine used: numbers taken while other work runs are flagged as disturbed.

With --soak MINUTES, step 4 runs for that long and the RSS (and USS, the process's
private memory) of the gunicorn master and each worker is sampled every 30 s.

Everything runs on loopback, for a bounded time, and stops by itself; the server, Redis,
its keys and the temporary folder are removed at the end. Needs wrk (`apt-get install
wrk`). wrk, Redis and the workers share the machine's cores: the /healthz floor is
measured under the same sharing, so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import redis

from bench.common.servers import RedisServer, free_port, http_get, service_env, wait_until
from escalator.state.codec import unpack_conversation

LUA = Path(__file__).with_name("load.lua")
SAMPLE_EVERY_SECONDS = 30.0
HTTP_DURATION = "escalator_http_request_duration_seconds"
# The bench's own Redis commands, never counted as the service's round trips.
BENCH_COMMANDS = {"info"}


@dataclass
class WrkResult:
    """What one wrk run measured (latencies in microseconds)."""

    requests: int
    seconds: float
    errors: int
    non_200: int
    conversations_started: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    # CPU seconds used during the run: "workers", "master", "redis" (if private), "wrk",
    # "machine" (every process, from /proc/stat) and "others" (machine less the above).
    cpu: dict[str, float] = field(default_factory=dict)
    # The service's own view: p50 and p99 of escalator_http_request_duration_seconds for
    # the route (from the request being read to the answer being built), in seconds.
    server_p50: float = float("nan")
    server_p99: float = float("nan")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cpu_us_per_request(self, role: str) -> float:
        return 1e6 * self.cpu.get(role, 0.0) / self.requests if self.requests else 0.0


@dataclass
class Memory:
    """RSS and USS in bytes of one process, sampled over time."""

    role: str
    pid: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def sample(self, at: float) -> None:
        try:
            info = psutil.Process(self.pid).memory_full_info()
        except psutil.NoSuchProcess:
            return
        self.samples.append((at, info.rss, info.uss))


def metric_total(base_url: str, name: str) -> float:
    """The sum of every series of a counter on /metrics (all workers)."""
    total = 0.0
    for line in http_get(f"{base_url}/metrics").decode().splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram(base_url: str, name: str, route: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of a histogram on /metrics, for one
    route, all workers added up."""
    buckets: dict[float, float] = {}
    for line in http_get(f"{base_url}/metrics").decode().splitlines():
        if line.startswith(f"{name}_bucket{{") and f'route="{route}"' in line:
            bound = re.search(r'le="([^"]+)"', line)
            if bound is not None:
                le = float(bound.group(1))
                buckets[le] = buckets.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile in seconds of the observations between two snapshots, interpolated
    linearly inside its bucket (what Prometheus's histogram_quantile does)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def script_commands() -> set[str]:
    """Commands the service runs inside its Lua scripts: INFO counts them too, but they
    are not round trips."""
    from escalator.state import store as state

    found: set[str] = set()
    for value in vars(state).values():
        # redis.pcall too: the load script reads the value with pcall (a key of another
        # type must not fail the turn), and its GET is no round trip either.
        if isinstance(value, str) and ("redis.call(" in value or "redis.pcall(" in value):
            found |= {name.lower()
                      for name in re.findall(r"redis\.p?call\(\s*'(\w+)'", value)}
    return found


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(values["calls"])
            for name, values in stats.items()}


class Bench:
    """The processes of one benchmark run, and their cleanup."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix="escalator-load-"))
        self.prefix = f"load-{uuid.uuid4().hex[:8]}"
        self.redis_server: RedisServer | None = None
        self.redis_process: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.wrk: subprocess.Popen[str] | None = None
        self.redis_url = args.redis_url
        self.base_url = ""
        self.client: redis.Redis | None = None

    # -- processes -----------------------------------------------------------------------

    def start_redis(self) -> None:
        if self.redis_url is None:
            self.redis_server = RedisServer(self.folder).start()
            self.redis_process = self.redis_server.process
            self.redis_url = self.redis_server.url
        self.client = redis.Redis.from_url(self.redis_url)
        wait_until(self.client.ping, "redis-server")

    def start_server(self) -> None:
        port = free_port()
        env = service_env(("ESCALATOR_", "PROMETHEUS_MULTIPROC_DIR"))
        env.update(ESCALATOR_REDIS_URL=self.redis_url or "",
                   ESCALATOR_LOG_LEVEL=self.args.log_level,
                   PROMETHEUS_MULTIPROC_DIR=str(self.folder / "metrics"))
        if self.args.shadow_rules:
            env["ESCALATOR_SHADOW_RULES_DIR"] = str(self.args.shadow_rules)
        with (self.folder / "server.log").open("wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "escalator", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", str(self.args.workers)],
                env=env, stdout=log, stderr=log, start_new_session=True)
        self.base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{self.base_url}/healthz"), "the service", 60)
        wait_until(lambda: len(self.workers()) == self.args.workers, "the workers")

    def workers(self) -> list[int]:
        assert self.server is not None
        try:
            return sorted(p.pid for p in psutil.Process(self.server.pid).children())
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of the service, Redis, reaped children (wrk)
        and the whole machine."""
        assert self.server is not None

        def of(pid: int) -> float:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                return 0.0
            return float(times.user + times.system)

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = psutil.cpu_times()
        return {
            "workers": sum(of(pid) for pid in self.workers()),
            "master": of(self.server.pid),
            "redis": of(self.redis_process.pid) if self.redis_process is not None else 0.0,
            "wrk": children.ru_utime + children.ru_stime,
            "machine": machine.user + machine.nice + machine.system + machine.irq
            + machine.softirq + machine.steal,
        }

    def run_wrk(self, mode: str, seconds: float, connections: int, rate: float = 0.0,
                on_tick: Any = None) -> WrkResult:
        """One wrk run; with on_tick, called every SAMPLE_EVERY_SECONDS while it runs."""
        threads = min(self.args.threads, connections)
        command = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s",
            "--timeout", "5s", "-s", str(LUA), self.base_url, "--", mode,
            f"{rate / threads:.3f}", str(max(1, self.args.active // threads)), self.prefix,
            str(random.randrange(1 << 30)),
        ]
        route = "/healthz" if mode == "healthz" else "/v1/conversations/<conversation_id>/turns"
        buckets_before = histogram(self.base_url, HTTP_DURATION, route)
        cpu_before = self.cpu_seconds()
        self.wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        output: list[str] = []
        stdout = self.wrk.stdout
        reader = threading.Thread(target=lambda: output.extend(stdout or []), daemon=True)
        reader.start()
        started = time.monotonic()
        # wrk stops by itself after `seconds`; the margin only guards against a hang.
        deadline = started + seconds + 30
        next_tick = started + SAMPLE_EVERY_SECONDS
        while self.wrk.poll() is None:
            if time.monotonic() > deadline:
                self.wrk.kill()
                raise SystemExit("load: wrk did not stop in time")
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick()
                next_tick += SAMPLE_EVERY_SECONDS
            time.sleep(0.2)
        reader.join(5)
        self.wrk = None
        cpu = {role: value - cpu_before[role] for role, value in self.cpu_seconds().items()}
        cpu["others"] = max(0.0, cpu["machine"] - cpu["workers"] - cpu["master"]
                            - cpu["redis"] - cpu["wrk"])
        time.sleep(0.3)  # requests still in flight when wrk stopped
        buckets_after = histogram(self.base_url, HTTP_DURATION, route)
        (self.folder / f"wrk-{mode}.log").write_text("".join(output))
        for line in output:
            if line.startswith("LOADJSON "):
                raw = json.loads(line.removeprefix("LOADJSON "))
                return WrkResult(
                    requests=raw["requests"], seconds=raw["duration_us"] / 1e6,
                    errors=sum(raw[k] for k in ("connect_errors", "read_errors",
                                                "write_errors", "timeouts")),
                    non_200=raw["non_200"], conversations_started=raw["conversations_started"],
                    p50_us=raw["p50_us"], p90_us=raw["p90_us"], p99_us=raw["p99_us"],
                    p999_us=raw["p999_us"], max_us=raw["max_us"], cpu=cpu,
                    server_p50=bucket_quantile(buckets_before, buckets_after, 0.5),
                    server_p99=bucket_quantile(buckets_before, buckets_after, 0.99))
        raise SystemExit("load: wrk printed no result:\n" + "".join(output)[-2000:])

    def stop(self) -> None:
        """Stop what this run started and remove what it wrote; safe to call twice."""
        if self.wrk is not None and self.wrk.poll() is None:
            self.wrk.kill()
            self.wrk.wait(5)
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)  # gunicorn: graceful stop
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        if self.client is not None:
            if self.redis_process is None:
                self.delete_keys()
            self.client.close()
        if self.redis_server is not None:
            self.redis_server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- measurements --------------------------------------------------------------------

    def keys(self, suffix: str) -> list[bytes]:
        assert self.client is not None
        return list(self.client.scan_iter(match=f"escalator:{{{self.prefix}-*}}:{suffix}",
                                          count=1000))

    def delete_keys(self) -> None:
        assert self.client is not None
        keys = self.keys("*")
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start:start + 500])

    def memory_at(self, turns: int, samples: int) -> tuple[int, list[int]]:
        """How many conversations are at exactly `turns`, and the MEMORY USAGE of the key of
        each of a random sample of them."""
        assert self.client is not None
        stored = self.keys("conversation")
        with self.client.pipeline(transaction=False) as pipe:
            for key in stored:
                pipe.get(key)
            values = pipe.execute()
        reached = [k for k, v in zip(stored, values, strict=True)
                   if v is not None and unpack_conversation(v).state.turn_index == turns]
        chosen = random.sample(reached, min(samples, len(reached)))
        sizes = []
        for key in chosen:
            sizes.append(self.client.memory_usage(key, samples=0) or 0)
        return len(reached), sizes


def kb(value: float) -> str:
    return f"{value / 1024:.2f} KB"


def ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.2f} ms"


def mb(value: float) -> str:
    return f"{value / 2**20:.1f} MB"


def report_phase(name: str, result: WrkResult) -> None:
    print(f"  {name:<34} {result.rate:9.1f} req/s   p50 {ms(result.p50_us):>9}   "
          f"p99 {ms(result.p99_us):>9}   p99.9 {ms(result.p999_us):>9}   "
          f"({result.requests} requests in {result.seconds:.1f} s, "
          f"{result.errors} socket errors, {result.non_200} not 200; in the service p50 "
          f"{ms(result.server_p50 * 1e6)}, p99 {ms(result.server_p99 * 1e6)})")


def report_cpu(phases: list[tuple[str, WrkResult]]) -> None:
    print("CPU per request (user + system, microseconds; others: every other process on the "
          "machine, in cores)")
    print(f"  {'':<34} {'workers':>8} {'master':>7} {'redis':>7} {'wrk':>7}   others")
    for name, result in phases:
        others = result.cpu.get("others", 0.0) / result.seconds if result.seconds else 0.0
        print(f"  {name:<34} "
              + " ".join(f"{result.cpu_us_per_request(role):>7.0f}"
                         for role in ("workers", "master", "redis", "wrk"))
              + f"   {others:.2f}" + ("  (busy machine: numbers disturbed)"
                                      if others > 0.1 else ""))


def report_memory(processes: list[Memory]) -> None:
    print("  process      pid      RSS start   RSS end    growth    USS start   USS end    "
          "growth")
    worst = 0.0
    for proc in processes:
        if len(proc.samples) < 2:
            print(f"  {proc.role:<10} {proc.pid:>6}   (exited)")
            continue
        _, rss0, uss0 = proc.samples[0]
        _, rss1, uss1 = proc.samples[-1]
        rss_growth = 100 * (rss1 - rss0) / rss0
        uss_growth = 100 * (uss1 - uss0) / uss0
        if proc.role.startswith("worker"):
            worst = max(worst, rss_growth)
        print(f"  {proc.role:<10} {proc.pid:>6}   {mb(rss0):>9} {mb(rss1):>9} "
              f"{rss_growth:+7.2f}%   {mb(uss0):>9} {mb(uss1):>9} {uss_growth:+7.2f}%")
    print(f"  largest worker RSS growth: {worst:+.2f}% (target: under 5%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20,
                        help="seconds of each measured phase (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up (default 5)")
    parser.add_argument("--connections", type=int, default=8,
                        help="wrk connections at full load (default 8)")
    parser.add_argument("--half-connections", type=int, default=16,
                        help="wrk connections at half load: enough that one is always free "
                             "for the next scheduled send (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--active", type=int, default=1000,
                        help="conversations in progress at a time (default 1000)")
    parser.add_argument("--redis-url",
                        help="an existing Redis (e.g. redis://127.0.0.1:6379/14) instead of a "
                             "private redis-server; round trips then count every client's")
    parser.add_argument("--log-level", default="INFO",
                        help="the service's ESCALATOR_LOG_LEVEL (default INFO: one JSON line "
                             "per request, to a file)")
    parser.add_argument("--memory-samples", type=int, default=200,
                        help="conversations at 20 turns to measure (default 200)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="run at half the capacity for MINUTES and report RSS growth")
    parser.add_argument("--shadow-rules", metavar="DIR",
                        help="also judge every turn with this shadow rule set "
                             "(ESCALATOR_SHADOW_RULES_DIR; python -m bench.perf.shadow --help)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("load: wrk is not installed (Debian: apt-get install wrk)")
    if args.redis_url is None and shutil.which("redis-server") is None:
        raise SystemExit("load: redis-server is not installed; install it or pass --redis-url")

    bench = Bench(args)
    # SIGTERM (or a timeout wrapper) still cleans up: it becomes SystemExit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        run(bench, args)
    finally:
        bench.stop()


def run(bench: Bench, args: argparse.Namespace) -> None:
    bench.start_redis()
    bench.start_server()
    assert bench.client is not None and bench.server is not None
    print(f"escalator serve: {args.workers} sync workers on {bench.base_url}; Redis "
          f"{bench.redis_url}{' (private)' if bench.redis_process else ''}; wrk "
          f"{args.threads} thread(s), {args.connections} connections at full load, "
          f"{args.half_connections} at half; {args.active} conversations in progress; "
          f"{os.cpu_count()} CPUs shared by all", flush=True)
    processes = [Memory("master", bench.server.pid)]
    processes += [Memory(f"worker {n}", pid) for n, pid in enumerate(bench.workers(), 1)]

    bench.run_wrk("turns", args.warmup, args.connections)
    healthz = bench.run_wrk("healthz", args.duration, args.connections)

    calls_before = command_calls(bench.client)
    decisions_before = metric_total(bench.base_url, "escalator_decisions_total")
    conflicts_before = metric_total(bench.base_url, "escalator_state_conflicts_total")
    degraded_before = metric_total(bench.base_url, "escalator_degraded_decisions_total")
    full = bench.run_wrk("turns", args.duration, args.connections)
    time.sleep(0.5)  # turns still in flight when wrk stopped
    decisions = metric_total(bench.base_url, "escalator_decisions_total") - decisions_before
    conflicts = metric_total(bench.base_url, "escalator_state_conflicts_total") \
        - conflicts_before
    degraded = metric_total(bench.base_url, "escalator_degraded_decisions_total") \
        - degraded_before
    calls_after = command_calls(bench.client)

    half_rate = full.rate / 2
    soak_seconds = args.soak * 60 if args.soak else args.duration
    start = time.monotonic()
    for proc in processes:
        proc.sample(0.0)

    def sample() -> None:
        for proc in processes:
            proc.sample(time.monotonic() - start)

    if args.soak:
        print(f"soak: {args.soak:g} min at {half_rate:.0f} turns/s (half of {full.rate:.0f})",
              flush=True)
    half = bench.run_wrk("turns", soak_seconds, args.half_connections, rate=half_rate,
                         on_tick=sample if args.soak else None)
    sample()
    at_20, sizes = bench.memory_at(20, args.memory_samples)
    redis_used = int(bench.client.info("memory")["used_memory"])
    conversations = len(bench.keys("conversation"))

    internal = script_commands()
    delta = {name: calls_after.get(name, 0) - calls_before.get(name, 0)
             for name in calls_after}
    trips = {name: n for name, n in delta.items()
             if n and name not in internal and name not in BENCH_COMMANDS}
    inside = {name: n for name, n in delta.items() if n and name in internal}

    print()
    print("throughput and latency (wrk; latency from sending the request to the full answer)")
    report_phase("GET /healthz, full load", healthz)
    report_phase("POST turns, full load", full)
    report_phase(f"POST turns, fixed {half_rate:.0f}/s ({soak_seconds / 60:.0f} min)"
                 if args.soak else f"POST turns, fixed {half_rate:.0f}/s", half)
    ratio = full.rate / healthz.rate
    cpu_ratio = healthz.cpu_us_per_request("workers") / full.cpu_us_per_request("workers")
    print(f"  decisions / healthz                {ratio:9.2f}   (target >= 0.60: "
          f"{'met' if ratio >= 0.6 else 'NOT met'}; by worker CPU per request, which other "
          f"load disturbs less: {cpu_ratio:.2f})")
    print(f"  p99 at half load                   {ms(half.p99_us):>9}   (target <= 10 ms: "
          f"{'met' if half.p99_us <= 10_000 else 'NOT met'}; achieved "
          f"{half.rate:.0f}/s of {half_rate:.0f}/s asked)")
    print()
    report_cpu([("GET /healthz, full load", healthz), ("POST turns, full load", full),
                ("POST turns, half load", half)])
    print()
    print(f"Redis, full-load phase: {decisions:.0f} decisions counted by the service "
          f"({conflicts:.0f} conflicts retried, {degraded:.0f} degraded)")
    if decisions:
        per = sum(trips.values()) / decisions
        # A conflict (two turns of one conversation at once) costs one more load and commit.
        first_try = (sum(trips.values()) - 2 * conflicts) / decisions
        print(f"  round trips per decision           {per:9.3f}   ({first_try:.3f} without the "
              f"retries after conflicts; target <= 2: {'met' if first_try <= 2 else 'NOT met'}"
              "; " + ", ".join(f"{n} {v / decisions:.3f}" for n, v in sorted(trips.items()))
              + ")")
        print("  run inside its Lua scripts         "
              + ", ".join(f"{n} {v / decisions:.2f}" for n, v in sorted(inside.items())))
    if bench.redis_process is None:
        print("  (a shared Redis: other clients' commands are counted too)")
    if sizes:
        median = statistics.median(sizes)
        print(f"  memory per 20-turn conversation    {kb(median):>9}   (median of {len(sizes)} "
              f"of the {at_20} at turn 20; p90 "
              f"{kb(statistics.quantiles(sizes, n=10)[8]) if len(sizes) > 1 else '-'}, max "
              f"{kb(max(sizes))}; "
              f"target <= 2 KB: {'met' if median <= 2048 else 'NOT met'})")
    else:
        print("  memory per 20-turn conversation    no conversation reached 20 turns: "
              "run longer (--duration)")
    print(f"  Redis used_memory {mb(redis_used)} for {conversations} conversations")
    print()
    print("memory of the service's processes" + (" over the soak" if args.soak else ""))
    report_memory(processes)
    if args.soak:
        print("  samples (minutes: RSS per process, MB):")
        by_time: dict[float, list[str]] = {}
        for proc in processes:
            for at, rss, _ in proc.samples:
                by_time.setdefault(round(at / 60, 1), []).append(f"{rss / 2**20:.1f}")
        for minute, values in sorted(by_time.items()):
            print(f"    {minute:5.1f}  " + "  ".join(values))
    started = full.conversations_started + half.conversations_started
    print(f"\nconversations started: {started} over the two measured phases; "
          f"load.lua seed prefix {bench.prefix}")


if __name__ == "__main__":
    main()
