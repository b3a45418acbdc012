"""Reload latency: from the end of a rule change to every worker deciding with it.

    python -m bench.perf.reload [--interval 1] [--settle 2] [--changes 5] [--workers 2]

Starts `escalator serve` (embedded Redis, a copy of the default rules in a temporary
folder) and changes the rule set's version `--changes` times in each of three ways:

- `in-place`: ruleset.yaml rewritten in place (an editor's save, `cp` over the file),
  picked up by polling every `--interval` seconds;
- `configmap`: the folder laid out as Kubernetes mounts a ConfigMap (files linked through
  `..data`, a link to a timestamped folder) and `..data` swapped to a new folder;
- `admin`: ruleset.yaml rewritten in place, then `POST /v1/ruleset/reload` (polling off).

For each it prints the median and the largest time from the end of the write until the
first worker, and then every worker, decides with the new version ("every worker": 8
answers of `GET /v1/ruleset` in a row show it), and for `admin` how long the reload
request took. `--settle` is passed as ESCALATOR_RELOAD_SETTLE_SECONDS (a version of the
service without it ignores it: `PYTHONPATH=/path/to/older/checkout python -m bench.perf.reload`
measures an older version with the same script).

Everything runs on loopback and stops by itself; the folder is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.common.servers import start_serve
from escalator.config import default_rules_dir

ALL_WORKERS = 8  # answers in a row that must show the new version


def get(url: str, method: str = "GET") -> tuple[int, dict[str, object]]:
    """Status and JSON body of a request (errors included)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def copy_rules(folder: Path) -> Path:
    shutil.copytree(default_rules_dir(), folder,
                    ignore=shutil.ignore_patterns("__pycache__", "__init__.py", "tests"))
    return folder


def with_version(text: str, version: str) -> str:
    start = text.index('version: "') + len('version: "')
    return text[:start] + version + text[text.index('"', start):]


def serve(folder: Path, rules: Path, workers: int, **settings: str
          ) -> tuple[str, subprocess.Popen[bytes]]:
    """`escalator serve` on a free port; its base URL and process once /healthz answers."""
    return start_serve(folder, workers, ESCALATOR_RULES_DIR=str(rules),
                       ESCALATOR_LOG_LEVEL="WARNING", **settings)


def until_served(base: str, version: str, started: float) -> tuple[float, float]:
    """Seconds from `started` until one answer, then ALL_WORKERS in a row, show version."""
    first: float | None = None
    in_a_row = 0
    deadline = started + 120
    while time.monotonic() < deadline:
        _, body = get(f"{base}/v1/ruleset")
        if body.get("version") == version:
            first = first if first is not None else time.monotonic() - started
            in_a_row += 1
            if in_a_row == ALL_WORKERS:
                return first, time.monotonic() - started
        else:
            in_a_row = 0
        time.sleep(0.01)
    raise SystemExit(f"version {version} was not served within 120 s")


def run(name: str, workers: int, settings: dict[str, str], changes: int,
        setup: Callable[[Path], Path], change: Callable[[Path, str], None],
        admin: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(prefix="escalator-bench-reload-"))
    try:
        rules = setup(folder)
        base, process = serve(folder, rules, workers, **settings)
        firsts, alls, requests = [], [], []
        try:
            for n in range(changes):
                version = f"bench.{name}.{n}"
                change(rules, version)
                written = time.monotonic()
                if admin:
                    status, body = get(f"{base}/v1/ruleset/reload", method="POST")
                    requests.append(time.monotonic() - written)
                    if status != 200:
                        print(f"  reload answered {status}: {body}")
                first, every = until_served(base, version, written)
                firsts.append(first)
                alls.append(every)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        line = (f"{name:10} first worker: median {statistics.median(firsts):.2f} s, "
                f"max {max(firsts):.2f} s; every worker: median "
                f"{statistics.median(alls):.2f} s, max {max(alls):.2f} s")
        if requests:
            line += (f"; reload request: median {statistics.median(requests):.2f} s, "
                     f"max {max(requests):.2f} s")
        print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def in_place(rules: Path, version: str) -> None:
    header = rules / "ruleset.yaml"
    header.write_text(with_version(header.read_text(), version))


def configmap_layout(folder: Path) -> Path:
    mount = folder / "mount"
    mount.mkdir()
    first = copy_rules(mount / "..gen_0")
    (mount / "..data").symlink_to(first.name)
    for path in [*first.glob("*.yaml"), first / "lexicons"]:
        (mount / path.name).symlink_to(Path("..data") / path.name)
    return mount


def configmap_swap(mount: Path, version: str) -> None:
    generation = mount / f"..gen_{version}"
    copy_rules(generation)
    in_place(generation, version)
    old = os.readlink(mount / "..data")
    (mount / "..data_tmp").symlink_to(generation.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    shutil.rmtree(mount / old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    parser.add_argument("--settle", type=float, default=None,
                        help="ESCALATOR_RELOAD_SETTLE_SECONDS (default: the service's)")
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    settle = {} if args.settle is None else {
        "ESCALATOR_RELOAD_SETTLE_SECONDS": str(args.settle)}
    polling = {"ESCALATOR_RELOAD_INTERVAL_SECONDS": str(args.interval), **settle}
    print(f"poll interval {args.interval} s, settle "
          f"{'default' if args.settle is None else args.settle}, {args.workers} workers, "
          f"{args.changes} changes each", flush=True)
    run("in-place", args.workers, polling, args.changes,
        lambda folder: copy_rules(folder / "rules"), in_place)
    run("configmap", args.workers, polling, args.changes, configmap_layout, configmap_swap)
    run("admin", args.workers, settle, args.changes,
        lambda folder: copy_rules(folder / "rules"), in_place, admin=True)


if __name__ == "__main__":
    main()
