"""Real servers for the failure, concurrency and cluster tests: redis-server processes on
loopback ports this test run owns, and `escalator serve` pointed at them.

Nothing here touches the shared test Redis: each server is started on a free port in a
folder of its own, and killed, paused or restarted only through its own process handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")

needs_redis_server = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (.ci/run installs it)")
needs_redis_cluster_tools = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed (.ci/run installs them)")


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """A free port for a cluster node: its bus port (port + 10000) must be free and valid."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free port pair for a cluster node")


def wait_for(condition: Any, seconds: float, what: str, interval: float = 0.02) -> float:
    """Poll condition() until it is true; the seconds it took. Fails after `seconds`."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(interval)


def serve_workers(process: Any) -> set[int]:
    """The gunicorn workers of an `escalator serve` process (forks of it; not the embedded
    Redis it may have started)."""
    master = psutil.Process(process.pid)
    found = set()
    for child in master.children():
        try:
            if child.cmdline()[:1] == master.cmdline()[:1]:
                found.add(child.pid)
        except psutil.Error:  # exited (a zombie until the master reaps it)
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far; 0 once it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def answers_within(url: str, seconds: float) -> bool:
    """True if the Redis server at url answers a PING within `seconds`."""
    client = redis.Redis.from_url(url, socket_timeout=seconds, socket_connect_timeout=seconds)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """One redis-server process on a loopback port, in its own folder, without persistence."""

    def __init__(self, folder: Path, port: int | None = None, *extra: str) -> None:
        assert REDIS_SERVER is not None
        self.folder = folder
        self.port = port or free_port()
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) and wait until it answers PING."""
        assert self.process is None or self.process.poll() is not None
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.folder),
             "--logfile", str(self.folder / "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, f"redis-server on port {self.port} answers PING")
        return self

    def answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited "
                                 f"({self.process.returncode}); see {self.folder}/redis.log")
        return answers_within(self.url, 0.5)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-traffic, connections reset, data gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: a stuck server; connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill it if it runs (resumed first, so a paused server can die)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)


class Listener:
    """Accepts connections on a loopback port and never answers: counts the attempts to
    reach a server there (a stand-in for a Redis that is down, to count what a client
    still tries)."""

    def __init__(self, port: int) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._accepted.append(connection)

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        for connection in self._accepted:
            connection.close()


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command a Redis server has run since it started or its last CONFIG
    RESETSTAT (INFO and CONFIG left out)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()
            if name not in ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config")}


@contextmanager
def redis_server(folder: Path, *extra: str) -> Iterator[RedisServer]:
    server = RedisServer(folder, None, *extra).start()
    try:
        yield server
    finally:
        server.stop()


def http(url: str, body: dict[str, Any] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, Any] | str]:
    """A GET (or a POST of JSON) to the service: status and parsed JSON (text if not JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in a /metrics exposition (0 if absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_serve(folder: Path, workers: int = 2,
                **settings: str) -> tuple[str, subprocess.Popen[bytes]]:
    """`escalator serve` in FOLDER on a free port with only these ESCALATOR_ settings
    (without ESCALATOR_REDIS_URL: on the embedded Redis); its base URL and process, once
    it answers /healthz. The caller stops it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ESCALATOR_", "PROMETHEUS_"))}
    env.update(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "serve.log").open("w") as log:
        # A file, not a pipe: nobody reads a pipe while the service runs, and a full one
        # would block the workers' logging.
        process = subprocess.Popen(
            [sys.executable, "-m", "escalator", "serve", "--port", str(port),
             "--workers", str(workers)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: "
                                 + (folder / "serve.log").read_text()[-2000:])
        try:
            return http(f"{base}/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, "escalator serve answers /healthz", interval=0.1)
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise
    return base, process


@contextmanager
def serve(folder: Path, redis_url: str, workers: int = 2,
          **settings: str) -> Iterator[str]:
    """`escalator serve` with `workers` workers on a free port, on the Redis at redis_url;
    yields its base URL and stops it (SIGTERM, then SIGKILL) afterwards."""
    base, process = start_serve(folder, workers, ESCALATOR_REDIS_URL=redis_url, **settings)
    try:
        yield base
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop a server process: SIGTERM (a graceful stop), then SIGKILL past `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
