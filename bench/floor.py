"""The floor under the decisions/healthz ratio: a do-nothing app with a decision's I/O.

    python bench/floor.py [--duration 20] [--connections 8]

bench/load.py compares decisions with the service's own `GET /healthz`. This asks how
close *any* decision service on the same stack could come to that ratio. It serves, under
gunicorn with escalator's settings (2 sync workers), a Flask app (FloorApp below) that
does only what a decision cannot skip and nothing that escalator adds:

- `GET /healthz`: `{"status": "ok"}`;
- `POST /v1/conversations/{id}/turns`: reads the JSON body, makes the two Redis round
  trips of a turn (a GET of the conversation's value, a SET of a 1.4 KB value with a TTL:
  what escalator's load and commit are at the least) and answers a 1.9 KB JSON body like
  a decision's. No validation, scoring, rules, logging or metrics.

wrk drives both with bench/load.lua, as bench/load.py does (same turns, same
conversations), one after the other at full load, and the ratio of their rates is printed,
with CPU per request of the workers, Redis and wrk. A private redis-server on a free
loopback port holds the values; everything is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
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

# Importable by gunicorn as bench.floor:app only with the repository root on sys.path;
# this script runs gunicorn with --chdir there.
ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # The sibling script's helpers (this script's folder is first on sys.path).
    from load import free_port, http_get, wait_until

    for tool in ("wrk", "redis-server", "gunicorn"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            raise SystemExit(f"floor: {tool} is not installed")

    folder = Path(tempfile.mkdtemp(prefix="escalator-floor-"))
    redis_port, port = free_port(), free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = dict(os.environ, FLOOR_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            # -c /dev/null: not the repository's gunicorn.conf.py, which serves escalator.
            [str(gunicorn) if gunicorn.exists() else "gunicorn", "-c", "/dev/null",
             "--chdir", str(ROOT),
             "--workers", str(args.workers), "--worker-class", "sync", "--preload",
             "--bind", f"127.0.0.1:{port}", "bench.floor:create_app()"],
            env=env, stdout=log, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(f"{base}/healthz"), "the floor app")
        master = psutil.Process(server.pid)
        time.sleep(0.5)
        processes = {"workers": master.children(), "redis": [psutil.Process(redis_server.pid)]}
        print(f"floor app: {args.workers} sync workers on {base}; wrk 1 thread, "
              f"{args.connections} connections; {os.cpu_count()} CPUs shared by all\n")
        rates: dict[str, list[float]] = {}
        for mode in ("healthz", "turns", "healthz", "turns"):
            before = cpu_seconds(processes)
            wrk = subprocess.run(
                ["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.duration}s",
                 "-s", str(LUA), base, "--", mode, "0", "1000", "floor", "1"],
                capture_output=True, text=True, check=True)
            used = {role: seconds - before[role]
                    for role, seconds in cpu_seconds(processes).items()}
            found = re.search(r"^LOADJSON (.*)$", wrk.stdout, re.MULTILINE)
            if found is None:
                raise SystemExit(f"floor: wrk printed no result:\n{wrk.stdout}{wrk.stderr}")
            result = json.loads(found.group(1))
            requests, seconds = result["requests"], result["duration_us"] / 1e6
            rates.setdefault(mode, []).append(requests / seconds)
            print(f"  {mode:<8} {requests / seconds:8.1f} req/s   "
                  f"p50 {result['p50_us'] / 1000:5.2f} ms   "
                  f"p99 {result['p99_us'] / 1000:5.2f} ms   CPU per request: workers "
                  f"{used['workers'] / requests * 1e6:5.0f} us, redis "
                  f"{used['redis'] / requests * 1e6:4.0f} us   (non-200: {result['non_200']})")
        ratio = (sum(rates["turns"]) / len(rates["turns"])) \
            / (sum(rates["healthz"]) / len(rates["healthz"]))
        print(f"\n  turns / healthz of the floor app   {ratio:.2f}   (escalator's target: 0.6)")
    finally:
        server.terminate()
        redis_server.terminate()
        server.wait(20)
        redis_server.wait(20)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
