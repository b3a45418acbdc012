"""CPU cost of a turn and of /healthz in instructions: repeatable on a noisy machine.

    python -m bench.perf.instructions [--requests 400]

Seconds of CPU drift by a fifth from run to run on a shared virtual machine, far more than
most changes to the hot path; instructions do not. This runs the service's WSGI app in
one process (no gunicorn, no HTTP: what the app itself costs) under valgrind's callgrind,
which counts the instructions executed, with PYTHONHASHSEED=0 and the same conversations
every time:

- once with no measured requests (start-up and a 20-turn warm-up),
- once with --requests realistic turns (60 conversations of 20 turns, texts and prompt ids
  varied as in bench/perf/decide.py) through POST /v1/conversations/{id}/turns,
- once with as many GET /healthz,

and prints the difference per request. With --served, the app runs as `escalator serve`
runs it: prometheus in multiprocess mode (each metric write an mmap write) and the
request log at INFO (one JSON line per request, to /dev/null here). Each run gets a fresh
private redis-server on a free loopback port (Redis's own work is not counted: it is
another process). Takes two to three minutes; needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEXTS = [
    "Hi, I ordered a pair of running shoes last week and they still have not arrived yet",
    "The order number is 48213, can you tell me where my parcel is right now please",
    "It says delivered but I was home all day and nobody came to the door at all",
    "I already told you, the parcel never came and I have been waiting for two weeks",
    "Why do I have to repeat myself, this is the third time I explain the same thing!!",
]
WARM_UP = 20


def requests(count: int, kind: str) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of the measured requests, the same in every run."""
    if kind == "healthz":
        return [("GET", "/healthz", b"")] * count
    made = []
    for n in range(count):
        conversation, turn = divmod(n, 20)
        body = {"turn_id": f"t-{turn + 1}",
                "message": {"text": TEXTS[(conversation + turn) % len(TEXTS)]},
                "bot": {"prompt_id": f"p{turn % 3}", "fallback": turn % 7 == 3},
                "channel": "web", "customer": {"tier": "gold"}}
        made.append(("POST", f"/v1/conversations/bench-{conversation}/turns",
                     json.dumps(body).encode()))
    return made


def wsgi_call(app: Any, method: str, path: str, body: bytes, who: str) -> None:
    """One request straight through the WSGI app (no server); anything but a 200 stops `who`."""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
    }
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        status.append(line)
        return lambda data: None

    b"".join(app(environ, start_response))
    if not status[0].startswith("200"):
        raise SystemExit(f"{who}: {method} {path} answered {status[0]}")


def child(count: int, kind: str) -> None:
    """Run in the measured process: build the app, warm it up, send the requests."""
    if os.environ.get("ESCALATOR_LOG_LEVEL") == "INFO":
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the request lines, as a file would
    from escalator.app import create_app

    app = create_app()

    def call(method: str, path: str, body: bytes) -> None:
        wsgi_call(app, method, path, body, "instructions")

    for method, path, body in requests(WARM_UP, "turns"):
        call(method, path.replace("bench-", "warm-"), body)
    for method, path, body in requests(count, kind):
        call(method, path, body)


def measured(count: int, kind: str, folder: Path, served: bool = False) -> int:
    """Instructions callgrind counted for one child run with a fresh Redis."""
    # Imported here, not at the top, so the measured child does not load it.
    from bench.common.servers import RedisServer, service_env

    with RedisServer(folder) as server:
        env = service_env(("ESCALATOR_",))
        env.update(PYTHONHASHSEED="0", ESCALATOR_REDIS_URL=server.url,
                   ESCALATOR_LOG_LEVEL="WARNING")
        # The child runs this file as a script: it needs nothing of the bench package.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if served:
            metrics_dir = folder / f"metrics-{server.port}"
            metrics_dir.mkdir()
            env.update(ESCALATOR_LOG_LEVEL="INFO", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--child", kind, "--requests", str(count)],
            env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"instructions: the measured run failed:\n{run.stderr[-3000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400,
                        help="measured requests per run (default 400)")
    parser.add_argument("--served", action="store_true",
                        help="multiprocess metrics and the request log at INFO, as served")
    parser.add_argument("--child", choices=("turns", "healthz"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests, args.child)
        return
    for tool in ("valgrind", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"instructions: {tool} is not installed")

    folder = Path(tempfile.mkdtemp(prefix="escalator-instructions-"))
    try:
        base = measured(0, "turns", folder, args.served)
        per: dict[str, Any] = {kind: (measured(args.requests, kind, folder, args.served) - base)
                               / args.requests for kind in ("turns", "healthz")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"instructions per request through the WSGI app (callgrind, PYTHONHASHSEED=0, "
          f"{args.requests} requests after a {WARM_UP}-turn warm-up"
          f"{'; multiprocess metrics, request log at INFO' if args.served else ''})")
    print(f"  GET /healthz                          {per['healthz']:>12,.0f}")
    print(f"  POST /v1/conversations/{{id}}/turns     {per['turns']:>12,.0f}   "
          f"({per['turns'] / per['healthz']:.1f} x /healthz)")


if __name__ == "__main__":
    main()
