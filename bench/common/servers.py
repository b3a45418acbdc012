"""What the benchmarks need to run servers: a free port, polling with a deadline, a GET,
a clean environment for `escalator serve`, and a private redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

# The repository root: scripts that start processes there (gunicorn --chdir) or read
# files of the repository (k8s/, tests/) find it from here.
ROOT = Path(__file__).resolve().parents[2]
SERVE_SECONDS = 60  # for `escalator serve` to answer /healthz (gunicorn, workers, Redis)


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], what: str, seconds: float = 30.0) -> None:
    """Poll check() until it is true (connection errors count as not yet); exit with a
    message naming WHAT after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {seconds:.0f} s")


def http_get(url: str, timeout: float = 5) -> bytes:
    """The body of a GET (raises on an error status or no answer)."""
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # only ever loopback
        body: bytes = answer.read()
        return body


def service_env(prefixes: tuple[str, ...] = ("ESCALATOR_", "PROMETHEUS_")) -> dict[str, str]:
    """This process's environment without the settings of the service (and of the
    Prometheus client), so a started server has only the settings its script gives it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def start_serve(folder: Path, workers: int = 2,
                **settings: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`escalator serve` run in FOLDER (its log FOLDER/serve.log, the embedded Redis there
    unless SETTINGS name another) on a free port, with only SETTINGS of the service's
    environment variables; its base URL and process once /healthz answers. The caller
    stops it."""
    port = free_port()
    env = service_env()
    env.update(settings)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve", "--port", str(port),
             "--workers", str(workers)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVE_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        try:
            http_get(f"{base}/healthz", timeout=2)
            return base, process
        except OSError:
            time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait(10)
    raise SystemExit(f"escalator serve did not answer /healthz within {SERVE_SECONDS} s:\n"
                     + log_path.read_text(errors="replace")[-3000:])


class RedisServer:
    """A private redis-server on a free loopback port, without persistence, writing only
    into FOLDER; stopped (and its data gone) by stop() or at the end of a with block."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, seconds: float = 10.0) -> RedisServer:
        """Start it and wait until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder),
             "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            wait_until(client.ping, f"redis-server on port {self.port}", seconds)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """SIGTERM (nothing to save: no persistence), then SIGKILL after 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
