"""The floor under the decisions/healthz ratio: a do-nothing app with a decision's I/O.

    python -m bench.perf.floor [--duration 20] [--connections 8]

bench/perf/load.py compares decisions with the service's own `GET /healthz`. This asks how
close *any* decision service on the same stack could come to that ratio. It serves, under
gunicorn with escalator's settings (2 sync workers), a Flask app (FloorApp below) that
does only what a decision cannot skip and nothing that escalator adds:

- `GET /healthz`: `{"status": "ok"}`;
- `POST /v1/conversations/{id}/turns`: reads the JSON body, makes the two Redis round
  trips of a turn (a GET of the conversation's value, a SET of a 1.4 KB value with a TTL:
  what escalator's load and commit are at the least) and answers a 1.9 KB JSON body like
  a decision's. No validation, scoring, rules, logging or metrics.

It also starts `escalator serve` beside it, with the same number of workers, on the same
private redis-server (another database). wrk drives each with bench/perf/load.lua
as bench/perf/load.py does (same turns, same conversations), one server and one phase at a time at
full load, twice over, and prints each run's rate, latency and CPU per request (workers,
Redis), then the ratios: each server's turns over its own /healthz, and escalator's turns
over the floor app's, all from the same run. Everything is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from bench.common.servers import (
    ROOT,
    RedisServer,
    free_port,
    http_get,
    service_env,
    wait_until,
)

# Importable by gunicorn as bench.perf.floor:create_app only with the repository root on
# sys.path; this script runs gunicorn with --chdir there (ROOT).
LUA = Path(__file__).with_name("load.lua")
# What a decision answers, in size and shape (no customer text, as in the service).
DECISION = json.dumps({
    "decision": "keep_with_bot", "decision_id": "0" * 32, "conversation_id": "c",
    "turn_id": "t", "turn_index": 1, "handoff": None,
    "reasons": [{"rule": "default", "priority": 0, "decision": "keep_with_bot",
                 "description": "No rule asked for a person; the bot keeps the conversation."}],
    "scores": {"sentiment": 0.0, "frustration": 0.0, "complexity": 0.0, "loop": 0.0},
    "facts": {f"fact.number_{n}": 0.1234 for n in range(40)},
    "ruleset": {"name": "default", "version": "2026.11.2", "digest": "sha256:" + "0" * 64},
    "degraded": False, "replayed": False,
}).encode()
STORED = b"3:1:" + os.urandom(1400)  # incompressible, like a deflated conversation


def create_app() -> object:
    """The floor app (gunicorn calls this in the master; the Redis client connects lazily,
    so each worker opens its own connection after the fork)."""
    import redis
    from flask import Flask, Response, request

    app = Flask("floor")
    client = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"], socket_timeout=0.1,
                                  socket_connect_timeout=0.1)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/conversations/<conversation_id>/turns")
    def turn(conversation_id: str) -> Response:
        json.loads(request.get_data())
        key = f"escalator:{{{conversation_id}}}:conversation"
        client.get(key)
        client.set(key, STORED, ex=600)
        return Response(DECISION, mimetype="application/json")

    return app


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    total = {}
    for role, members in processes.items():
        seconds = 0.0
        for process in members:
            try:
                times = process.cpu_times()
                seconds += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        total[role] = seconds
    return total


def drive(base: str, mode: str, prefix: str, connections: int, duration: int,
          processes: dict[str, list[psutil.Process]]) -> tuple[float, str]:
    """One wrk run at full load: requests per second, and a line describing it."""
    before = cpu_seconds(processes)
    wrk = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
         "-s", str(LUA), base, "--", mode, "0", "1000", prefix, "1"],
        capture_output=True, text=True, check=True)
    used = {role: seconds - before[role] for role, seconds in cpu_seconds(processes).items()}
    found = re.search(r"^LOADJSON (.*)$", wrk.stdout, re.MULTILINE)
    if found is None:
        raise SystemExit(f"floor: wrk printed no result:\n{wrk.stdout}{wrk.stderr}")
    result = json.loads(found.group(1))
    if result["non_200"]:
        raise SystemExit(f"floor: {result['non_200']} answers were not 200 ({base}, {mode})")
    requests, seconds = result["requests"], result["duration_us"] / 1e6
    return requests / seconds, (
        f"{requests / seconds:8.1f} req/s   p50 {result['p50_us'] / 1000:5.2f} ms   "
        f"p99 {result['p99_us'] / 1000:5.2f} ms   CPU per request: workers "
        f"{used['workers'] / requests * 1e6:5.0f} us, redis "
        f"{used['redis'] / requests * 1e6:4.0f} us   (non-200: {result['non_200']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for tool in ("wrk", "redis-server", "gunicorn"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            raise SystemExit(f"floor: {tool} is not installed")

    folder = Path(tempfile.mkdtemp(prefix="escalator-floor-"))
    floor_port, service_port = free_port(), free_port()
    redis_server = RedisServer(folder).start()
    redis_port = redis_server.port
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = service_env(("ESCALATOR_", "PROMETHEUS_MULTIPROC_DIR"))
    servers: dict[str, subprocess.Popen[bytes]] = {}
    with (folder / "floor.log").open("wb") as log:
        servers["floor app"] = subprocess.Popen(
            # -c /dev/null: not the repository's gunicorn.conf.py, which serves escalator.
            [str(gunicorn) if gunicorn.exists() else "gunicorn", "-c", "/dev/null",
             "--chdir", str(ROOT),
             "--workers", str(args.workers), "--worker-class", "sync", "--preload",
             "--bind", f"127.0.0.1:{floor_port}", "bench.perf.floor:create_app()"],
            env=dict(env, FLOOR_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"),
            stdout=log, stderr=log, start_new_session=True)
    # Escalator itself, on the same Redis (another database: the floor's values are not
    # conversations), so both are measured in one run on the same machine.
    with (folder / "escalator.log").open("wb") as log:
        servers["escalator"] = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve", "--host", "127.0.0.1",
             "--port", str(service_port), "--workers", str(args.workers)],
            env=dict(env, ESCALATOR_REDIS_URL=f"redis://127.0.0.1:{redis_port}/1"),
            stdout=log, stderr=log, start_new_session=True)
    bases = {"floor app": f"http://127.0.0.1:{floor_port}",
             "escalator": f"http://127.0.0.1:{service_port}"}
    try:
        for name, base in bases.items():
            wait_until(functools.partial(http_get, f"{base}/healthz"), name, 60)
        time.sleep(1.0)
        print(f"the floor app and escalator, {args.workers} sync workers each; wrk 1 thread, "
              f"{args.connections} connections, {args.duration} s per run, one server at a "
              f"time; {os.cpu_count()} CPUs shared by all\n")
        rates: dict[tuple[str, str], list[float]] = {}
        for round_ in range(2):
            for name, base in bases.items():
                processes = {"workers": psutil.Process(servers[name].pid).children(),
                             "redis": [psutil.Process(redis_server.pid)]}
                for mode in ("healthz", "turns"):
                    # New conversation ids each round: a repeated turn id would be a retry.
                    rate, line = drive(base, mode, f"{name.split()[0]}-{round_}",
                                       args.connections, args.duration, processes)
                    rates.setdefault((name, mode), []).append(rate)
                    print(f"  {name:<10} {mode:<8} {line}")

        def mean(name: str, mode: str) -> float:
            return sum(rates[name, mode]) / len(rates[name, mode])

        floor = mean("floor app", "turns") / mean("floor app", "healthz")
        service = mean("escalator", "turns") / mean("escalator", "healthz")
        print(f"\n  turns / healthz, floor app          {floor:.2f}   (issue 6's target: 0.6)")
        print(f"  turns / healthz, escalator          {service:.2f}")
        print(f"  escalator's turns / floor app's     "
              f"{mean('escalator', 'turns') / mean('floor app', 'turns'):.2f}")
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(30)
        redis_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
