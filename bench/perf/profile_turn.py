"""Where the CPU of a turn goes, by stage: a deterministic timer around each stage's code.

    python -m bench.perf.profile_turn [--requests 3000]             # in one process, WSGI
    python -m bench.perf.profile_turn --gunicorn [--duration 15]    # escalator serve, 1 worker

Each stage's functions are wrapped (in this process only; nothing in the package is
changed) by a timer that charges the thread's CPU time (CLOCK_THREAD_CPUTIME_ID: time
another process takes on a shared machine is not counted) to the innermost running
stage, so the stages add up to the whole and nothing is counted twice. A stage's own
time is its code's less the stages it calls: "Flask and Werkzeug" is everything the WSGI
app does outside the named stages (request context, routing, hooks, the response object),
and with --gunicorn, "gunicorn worker" is everything the worker process does outside the
WSGI app (accept, read, parse, write, the selector loop).

The service runs as `escalator serve` runs it: prometheus in multiprocess mode (every
metric write an mmap write), the request log at INFO (one JSON line per request, here to
/dev/null), a decision log to a file (--decision-log none to leave it out), on a private
redis-server. The turns are bench/perf/instructions.py's (60 conversations of 20 turns) in
process, and bench/perf/load.lua's with --gunicorn (wrk, 2 connections, one worker).

Each wrapped call costs the timer about 1 us (two clock reads); the table subtracts
nothing for it, so a stage called many times per turn is a little overstated.
The instructions column spreads bench/perf/instructions.py's total (--instructions N, the
per-turn count it printed) over the stages in proportion to their time: an estimate,
since the instructions per microsecond differ somewhat from stage to stage.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The brief's stages, in the order of a turn, each with the fine stages it is made of.
GROUPS: dict[str, tuple[str, ...]] = {
    "request parsing and validation": ("JSON body", "marshmallow load", "turn signature"),
    "state load and unpack": ("state load", "state unpack"),
    "scoring": ("scoring: text and language", "scoring: sentiment",
                "scoring: frustration", "scoring: complexity", "scoring: loops",
                "scoring: requests for a person", "scoring: memory", "scoring: other"),
    "facts building and brief": ("facts and decision (pipeline)", "brief"),
    "rules": ("rules",),
    "response building": ("response body",),
    "JSON encoding": ("JSON encoding of the answer",),
    "commit": ("commit", "state pack"),
    "Redis client (both round trips)": ("redis-py",),
    "decision log": ("decision log",),
    "metrics (multiprocess)": ("decision metrics", "HTTP metrics"),
    "request log line": ("request log line",),
    "Flask and gunicorn": ("request id hook", "Flask and Werkzeug", "gunicorn worker"),
}


class StageTimer:
    """Charges CPU time to the innermost running stage."""

    def __init__(self) -> None:
        self.own: defaultdict[str, int] = defaultdict(int)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        clock, stack, own, calls = time.thread_time_ns, self._stack, self.own, self.calls

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            now = clock()
            if stack:
                frame = stack[-1]
                own[frame[0]] += now - frame[1]
            frame = [stage, now]
            stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                end = clock()
                stack.pop()
                own[stage] += end - frame[1]
                calls[stage] += 1
                if stack:
                    stack[-1][1] = end

        return timed

    def patch(self, stage: str, owner: Any, name: str) -> None:
        """Wrap owner.name (a module's function, a class's method) as `stage`."""
        setattr(owner, name, self.wrap(stage, getattr(owner, name)))

    def reset(self) -> None:
        self.own.clear()
        self.calls.clear()


def instrument(timer: StageTimer) -> None:
    """Wrap the stages' code where the turn calls it (before the app is built)."""
    from escalator import brief, decisionlog, metrics, model, pipeline, scoring, turnschema
    from escalator.http import api
    from escalator.logs import request_log
    from escalator.ruleset.compiler import CompiledRuleSet
    from escalator.scoring import complexity, frustration, loops, memory, sentiment, text
    from escalator.state import store

    timer.patch("JSON body", api, "json_body")
    timer.patch("marshmallow load", turnschema.TurnSchema, "load")
    timer.patch("turn signature", model.Turn, "content_signature")
    timer.patch("state load", store.StateStore, "load")
    timer.patch("state unpack", store, "unpack_conversation")
    timer.patch("redis-py", store.StateStore, "_call")
    timer.patch("commit", store.StateStore, "commit")
    timer.patch("state pack", store, "pack_conversation")
    timer.patch("scoring: other", pipeline, "score_turn")
    for name in ("normalise_text", "split_words", "fold", "detect_language",
                 "normalise_language"):
        timer.patch("scoring: text and language", scoring, name)
    timer.patch("scoring: text and language", text.PhraseIndex, "find")
    timer.patch("scoring: sentiment", sentiment, "compound")
    timer.patch("scoring: sentiment", sentiment, "step")
    timer.patch("scoring: frustration", frustration, "step")
    timer.patch("scoring: complexity", complexity, "assess")
    timer.patch("scoring: loops", loops, "step")
    timer.patch("scoring: requests for a person", scoring, "requested_human")
    timer.patch("scoring: memory", memory.Memory, "from_json")
    timer.patch("scoring: memory", memory.Memory, "to_json")
    timer.patch("facts and decision (pipeline)", pipeline.Pipeline, "evaluate")
    timer.patch("brief", brief, "remember")
    timer.patch("brief", brief, "build")
    timer.patch("rules", CompiledRuleSet, "evaluate")
    body = model.Decision.__dict__["_body"]
    body._compute = timer.wrap("response body", body._compute)
    encoded = model.Decision.__dict__["_json"]
    encoded._compute = timer.wrap("JSON encoding of the answer", encoded._compute)
    timer.patch("decision log", pipeline.Pipeline, "_log")
    timer.patch("decision metrics", metrics, "observe_decision")
    # An instance attribute: only this logger's calls (the request lines) are timed.
    request_log.info = timer.wrap("request log line", request_log.info)  # type: ignore[method-assign]
    del decisionlog


def instrument_app(timer: StageTimer, app: Any) -> None:
    """Wrap what the app holds: its hooks, and the WSGI app itself (the root)."""
    for key, hooks in app.before_request_funcs.items():
        app.before_request_funcs[key] = [timer.wrap("request id hook", f) for f in hooks]
    for key, hooks in app.after_request_funcs.items():
        app.after_request_funcs[key] = [timer.wrap("HTTP metrics", f) for f in hooks]
    app.wsgi_app = timer.wrap("Flask and Werkzeug", app.wsgi_app)


def table(own: dict[str, int], turns: int, instructions: float | None) -> str:
    """The stages' CPU per turn, grouped as the issue names them, as Markdown."""
    total = sum(own.values())
    lines = ["| stage | part | µs per turn | share |"
             + (" instructions (est.) |" if instructions else ""),
             "|---|---|---:|---:|" + ("---:|" if instructions else "")]
    named = {name for names in GROUPS.values() for name in names}
    missing = set(own) - named
    if missing:
        raise SystemExit(f"profile_turn: stages without a group: {sorted(missing)}")
    for group, names in GROUPS.items():
        group_ns = sum(own.get(n, 0) for n in names)
        if not group_ns:
            continue
        parts = [(n, own[n]) for n in names if own.get(n)]
        for index, (name, ns) in enumerate(parts):
            share = ns / total
            row = (f"| {group if index == 0 else ''} | {name} | {ns / turns / 1000:.1f} "
                   f"| {share:.1%} |")
            if instructions:
                row += f" {share * instructions / 1000:,.0f} k |"
            lines.append(row)
        if len(parts) > 1:
            row = f"| | **{group}, all** | **{group_ns / turns / 1000:.1f}** | " \
                  f"**{group_ns / total:.1%}** |"
            if instructions:
                row += f" **{group_ns / total * instructions / 1000:,.0f} k** |"
            lines.append(row)
    row = f"| **turn, whole** | | **{total / turns / 1000:.1f}** | 100% |"
    if instructions:
        row += f" **{instructions / 1000:,.0f} k** |"
    lines.append(row)
    return "\n".join(lines)


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    import redis

    from bench.common.servers import free_port, wait_until

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: redis.Redis(port=port).ping(), "redis-server", 10)
    return server, port


def environment(folder: Path, port: int, decision_log: str) -> None:
    """The service's settings as `escalator serve` has them (before escalator is imported)."""
    for key in [k for k in os.environ if k.startswith("ESCALATOR_")]:
        del os.environ[key]
    os.environ.update(ESCALATOR_LOG_LEVEL="INFO",
                      ESCALATOR_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                      ESCALATOR_HANDOFF_CACHE=str(folder / "handoffs.sqlite"))
    if decision_log != "none":
        os.environ["ESCALATOR_DECISION_LOG"] = (str(folder / "decisions.jsonl")
                                                if decision_log == "file" else decision_log)


def in_process(args: argparse.Namespace, folder: Path, port: int) -> tuple[dict[str, int], int]:
    """Turns through the WSGI app in this process; the stages' CPU and the turns."""
    from bench.perf.instructions import requests, wsgi_call

    environment(folder, port, args.decision_log)
    # The service's log lines (the request lines) go where a file would take them.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    timer = StageTimer()
    instrument(timer)
    from escalator.app import create_app

    app = create_app(start_reloader=False)
    instrument_app(timer, app)

    def call(method: str, path: str, body: bytes) -> None:
        wsgi_call(app, method, path, body, "profile_turn")

    for method, path, body in requests(200, "turns"):
        call(method, path.replace("bench-", "warm-"), body)
    timer.reset()
    for method, path, body in requests(args.requests, "turns"):
        call(method, path, body)
    return dict(timer.own), args.requests


def serve_child(port: int, stats: str, worker_class: str) -> None:
    """`escalator serve` with one worker whose stages are timed (run by --gunicorn)."""
    from gunicorn.workers.sync import SyncWorker

    from escalator.serving import gunicorn_config, worker

    timer = StageTimer()
    instrument(timer)
    from escalator import app as app_module
    from escalator.serving import run

    build = app_module.create_app

    def instrumented(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        instrument_app(timer, app)
        answered = [0]
        wsgi = app.wsgi_app

        def counted(environ: Any, start_response: Any) -> Any:
            try:
                return wsgi(environ, start_response)
            finally:
                if environ["PATH_INFO"].endswith("/turns"):
                    answered[0] += 1
                    if answered[0] % 100 == 0:
                        Path(stats).write_text(json.dumps(
                            {"own": timer.own, "turns": answered[0]}))

        app.wsgi_app = counted  # type: ignore[method-assign]
        return app

    # serve() imports create_app from escalator.app when it runs.
    app_module.create_app = instrumented
    # The worker's loop: all its CPU outside the WSGI app is gunicorn's.
    if worker_class == "sync":  # gunicorn's own, as the floor app has it (for comparison)
        gunicorn_config.worker_class = "sync"
        SyncWorker.run = timer.wrap("gunicorn worker", SyncWorker.run)
    else:
        worker.BufferingSyncWorker.run = timer.wrap(  # type: ignore[method-assign]
            "gunicorn worker", worker.BufferingSyncWorker.run)
    run.serve("127.0.0.1", port, 1)


def through_gunicorn(args: argparse.Namespace, folder: Path,
                     redis_port: int) -> tuple[dict[str, int], int]:
    """Turns over HTTP (wrk, bench/perf/load.lua) to `escalator serve` with one timed worker."""
    from bench.common.servers import free_port, http_get, wait_until
    from bench.perf.load import LUA

    environment(folder, redis_port, args.decision_log)
    port = free_port()
    stats = folder / "stages.json"
    with (folder / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve-child", str(port), "--stats", str(stats),
             "--worker-class", args.worker_class],
            stdout=log, stderr=log, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{base}/healthz"), "escalator serve", 60)
        for phase, seconds in (("warm", 3), ("measured", args.duration)):
            before: dict[str, Any] = (json.loads(stats.read_text()) if stats.exists()
                                      else {"own": {}, "turns": 0})
            subprocess.run(["wrk", "-t", "1", "-c", "2", "-d", f"{seconds}s", "-s", str(LUA),
                            base, "--", "turns", "0", "200", f"prof-{phase}", "1"],
                           capture_output=True, check=True)
            time.sleep(0.5)
        if not stats.exists():
            raise SystemExit("profile_turn: the worker wrote no stages:\n"
                             + (folder / "serve.log").read_text()[-3000:])
        after = json.loads(stats.read_text())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    own = {k: v - before["own"].get(k, 0) for k, v in after["own"].items()}
    return own, after["turns"] - before["turns"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000,
                        help="measured turns in process (default 3000)")
    parser.add_argument("--gunicorn", action="store_true",
                        help="through escalator serve (1 worker) and wrk instead")
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk (--gunicorn)")
    parser.add_argument("--decision-log", default="file",
                        help="file (default), stdout or none")
    parser.add_argument("--instructions", type=float,
                        help="bench/perf/instructions.py's instructions per turn, to spread")
    parser.add_argument("--worker-class", choices=("escalator", "sync"), default="escalator",
                        help="with --gunicorn: escalator's worker (default) or gunicorn's "
                             "plain sync worker, for comparison")
    parser.add_argument("--serve-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.stats, args.worker_class)
        return
    for tool in ("redis-server",) + (("wrk",) if args.gunicorn else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"profile_turn: {tool} is not installed")
    folder = Path(tempfile.mkdtemp(prefix="escalator-profile-"))
    # Before anything imports prometheus_client (bench/perf/load.py does): multiprocess mode.
    (folder / "metrics").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder / "metrics")
    server, port = start_redis(folder)
    try:
        if args.gunicorn:
            own, turns = through_gunicorn(args, folder, port)
        else:
            own, turns = in_process(args, folder, port)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    where = (f"escalator serve, 1 worker ({args.worker_class}), wrk 2 connections"
             if args.gunicorn
             else "the WSGI app in one process")
    print(f"CPU per turn by stage ({where}; {turns} turns; decision log: "
          f"{args.decision_log}; thread CPU time)\n", file=sys.__stdout__)
    print(table(own, turns, args.instructions), file=sys.__stdout__)


if __name__ == "__main__":
    main()
