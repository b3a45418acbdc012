"""Slow clients against `escalator serve`: what they cost every other caller.

    python -m bench.attacks.slow_clients [--seconds 30] [--workers 2] [--proxy]
                                         [--slow headers,body,silent] [--every 1.0]
                                         [--read-timeout SECONDS]

Starts `escalator serve` (sync workers, embedded Redis) in a temporary folder and, with
--proxy, nginx in front of it on k8s/base/nginx.conf, the deployment's own file with only
its two ports changed. Then, for --seconds, slow clients attack it, each reconnecting as
soon as it is let go:

- `headers`: sends a request line, then its headers one byte every --every seconds;
- `body`: sends whole headers (Content-Length 1000), then the body one byte at a time;
- `chunked`: the same with a chunked body that never ends;
- `silent`: connects and sends nothing;

while a canary caller sends turns one after the other (each on a new connection, as
gunicorn's sync workers close every connection) and asks /healthz between them. Reports
the canary's latency (p50, p99, max) and failures, and how long each slow connection was
held and how it ended. --read-timeout sets ESCALATOR_READ_TIMEOUT_SECONDS for the service.

Everything runs on loopback and stops by itself; the temporary folder is removed at the
end. tests/serving/test_slow_clients.py runs the same attack with short timeouts and asserts the
bounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.servers import ROOT, free_port, start_serve

NGINX_CONF = ROOT / "k8s" / "base" / "nginx.conf"
KINDS = ("headers", "body", "chunked", "silent")
# What the deployment's nginx.conf listens on and proxies to; proxy_config changes these.
PROXY_LISTEN = "listen 8080;"
PROXY_UPSTREAM = "server 127.0.0.1:8081;"


def wait_for(condition: Any, seconds: float, what: str) -> None:
    """Poll condition() until it is true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def get(base_url: str, path: str, timeout: float = 2.0) -> int:
    """The status of a GET, or 0 if the server does not answer."""
    try:
        return request(base_url, "GET", path, None, timeout)[0]
    except OSError:
        return 0


def request(base_url: str, method: str, path: str, body: dict[str, Any] | None,
            timeout: float) -> tuple[int, bytes]:
    """One request on a new connection: status and body."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- the servers ---------------------------------------------------------------------------


def proxy_config(listen_port: int, upstream_port: int) -> str:
    """k8s/base/nginx.conf with only its listening and upstream ports changed."""
    text = NGINX_CONF.read_text()
    for old in (PROXY_LISTEN, PROXY_UPSTREAM):
        if text.count(old) != 1:
            raise AssertionError(f"{NGINX_CONF} must hold {old!r} exactly once")
    return (text.replace(PROXY_LISTEN, f"listen 127.0.0.1:{listen_port};")
            .replace(PROXY_UPSTREAM, f"server 127.0.0.1:{upstream_port};"))


def nginx_command(prefix: Path, conf: Path, *extra: str) -> list[str]:
    """nginx on CONF with PREFIX for everything it writes (as the pod runs it)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [nginx, "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr", *extra]


def start_proxy(folder: Path, upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    """nginx on the deployment's config in front of UPSTREAM (a base URL); its base URL and
    process once it answers /healthz through the upstream. The caller stops it."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(proxy_config(port, int(upstream.rsplit(":", 1)[1])))
    with (folder / "nginx.log").open("wb") as log:
        process = subprocess.Popen(nginx_command(folder, conf), stdout=log,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or get(base, "/healthz") == 200, 30,
                 "nginx answers /healthz")
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {(folder / 'nginx.log').read_text()[-2000:]}")
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise
    return base, process


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop in 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the attack ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """One slow connection: how long the server kept it and how it ended."""

    kind: str
    seconds: float
    ending: str  # "answered <status>", "closed", "reset" or "open at the end"
    answer: bytes = b""

    @property
    def status(self) -> int | None:
        """The status the server answered, if it answered."""
        match = re.match(rb"HTTP/1\.[01] (\d{3})", self.answer)
        return int(match.group(1)) if match else None

    def error_code(self) -> str | None:
        """The API error code in the answer's body, if it has one."""
        _, _, body = self.answer.partition(b"\r\n\r\n")
        try:
            code: str = json.loads(body)["error"]["code"]
            return code
        except (ValueError, KeyError, TypeError):
            return None


def _slow_bytes(kind: str, body_length: int) -> tuple[bytes, Iterator[bytes]]:
    """What a slow client of KIND sends at once, and then one byte at a time."""
    line = (b"POST /v1/conversations/slow-client/turns HTTP/1.1\r\nHost: escalator\r\n"
            b"Connection: close\r\n")
    if kind == "headers":
        def headers() -> Iterator[bytes]:
            number = 0
            while True:
                number += 1
                yield from (bytes([b]) for b in b"X-Slow-%d: 1\r\n" % number)
        return line, headers()
    if kind == "body":
        head = line + (b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                       % body_length)
        # A turn, padded with spaces (still valid JSON) to exactly body_length bytes.
        body = b'{"turn_id": "t-1", "message": {"text": "hi"}}'.ljust(body_length)
        body = body[:body_length]
        return head, (bytes([b]) for b in body)
    if kind == "chunked":
        head = line + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

        def chunks() -> Iterator[bytes]:
            while True:
                yield from (bytes([b]) for b in b"1\r\n \r\n")
        return head, chunks()
    if kind == "silent":
        return b"", iter(())
    raise ValueError(f"unknown slow client {kind!r}")


class SlowClient(threading.Thread):
    """A slow client of one kind: holds a connection as long as the server lets it, then
    opens the next one, until stopped."""

    def __init__(self, kind: str, base_url: str, every: float, stop_event: threading.Event,
                 body_length: int = 1000) -> None:
        super().__init__(name=f"slow-{kind}", daemon=True)
        self.kind = kind
        host, port = base_url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.every = every
        self.stop_event = stop_event
        self.body_length = body_length
        self.held: list[Held] = []
        self.connected = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.held.append(self.one_connection())

    def one_connection(self) -> Held:
        """Connect, send as slowly as the kind says until the server answers or closes."""
        first, trickle = _slow_bytes(self.kind, self.body_length)
        started = time.monotonic()
        try:
            sock = socket.create_connection(self.address, timeout=10)
        except OSError as exc:
            return Held(self.kind, time.monotonic() - started, f"connect failed: {exc}")
        self.connected.set()
        try:
            if first:
                sock.sendall(first)
            while True:
                readable, _, _ = select.select([sock], [], [], self.every)
                if readable:
                    answer = _read_to_end(sock)
                    ending = "closed" if not answer else "answered"
                    held = Held(self.kind, time.monotonic() - started, ending, answer)
                    if held.status is not None:
                        held = Held(self.kind, held.seconds, f"answered {held.status}", answer)
                    return held
                if self.stop_event.is_set():
                    return Held(self.kind, time.monotonic() - started, "open at the end")
                byte = next(trickle, b"")
                if byte:
                    sock.sendall(byte)
        except (ConnectionResetError, BrokenPipeError):
            return Held(self.kind, time.monotonic() - started, "reset")
        finally:
            sock.close()


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 5 s pass, or a reset)."""
    sock.settimeout(5)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


class Canary(threading.Thread):
    """A well-behaved caller: a turn, then /healthz, over and over, each on a new
    connection; records every latency and every failure."""

    def __init__(self, base_url: str, stop_event: threading.Event,
                 timeout: float = 60.0) -> None:
        super().__init__(name="canary", daemon=True)
        self.base_url = base_url
        self.stop_event = stop_event
        self.timeout = timeout
        self.turns: list[float] = []
        self.healthz: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        conversation = f"canary-{uuid.uuid4().hex[:12]}"
        number = 0
        while not self.stop_event.is_set():
            number += 1
            turn = {"turn_id": f"t-{number}", "message": {"text": f"Where is order {number}?"},
                    "channel": "web", "consent": {"store_state": False}}
            self.call("POST", f"/v1/conversations/{conversation}/turns", turn, self.turns)
            self.call("GET", "/healthz", None, self.healthz)

    def call(self, method: str, path: str, body: dict[str, Any] | None,
             latencies: list[float]) -> None:
        started = time.monotonic()
        try:
            status, answer = request(self.base_url, method, path, body, self.timeout)
        except OSError as exc:
            status, answer = 0, str(exc).encode()
        latencies.append(time.monotonic() - started)
        if status != 200:
            self.failures.append(f"{method} {path.split('/')[1]}: {status} {answer[:200]!r}")


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of VALUES (nearest rank); 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Attack:
    """Slow clients and a canary against one base URL, for as long as it runs."""

    base_url: str
    kinds: tuple[str, ...] = KINDS
    every: float = 1.0
    body_length: int = 1000
    stop_event: threading.Event = field(default_factory=threading.Event)
    slow: list[SlowClient] = field(default_factory=list)
    canary: Canary | None = None

    def start(self) -> None:
        """Slow clients first; the canary once each of them has a connection."""
        self.slow = [SlowClient(kind, self.base_url, self.every, self.stop_event,
                                self.body_length) for kind in self.kinds]
        for client in self.slow:
            client.start()
        wait_for(lambda: all(c.connected.is_set() for c in self.slow), 10,
                 "every slow client connected")
        self.canary = Canary(self.base_url, self.stop_event)
        self.canary.start()

    def stop(self) -> None:
        """Stop everyone and wait for their last requests (the canary's may take a while)."""
        self.stop_event.set()
        for thread in [*self.slow, *([self.canary] if self.canary else [])]:
            thread.join(timeout=90)

    def held(self, kind: str | None = None) -> list[Held]:
        """Every slow connection that ended (of one kind, or all)."""
        return [h for c in self.slow if kind in (None, c.kind) for h in c.held
                if h.ending != "open at the end"]

    def report(self) -> str:
        """The canary's latencies and the slow connections, in a few lines."""
        assert self.canary is not None
        canary = self.canary
        lines = []
        for name, values in (("turns", canary.turns), ("/healthz", canary.healthz)):
            lines.append(f"canary {name}: {len(values)}, p50 {quantile(values, 0.5):.3f} s, "
                         f"p99 {quantile(values, 0.99):.3f} s, max {max(values, default=0):.3f} s")
        lines.append(f"canary failures: {len(canary.failures)}"
                     + "".join(f"\n  {f}" for f in canary.failures[:5]))
        for kind in dict.fromkeys(self.kinds):
            held = self.held(kind)
            endings: dict[str, int] = {}
            for h in held:
                label = h.ending + (f" {h.error_code()}" if h.error_code() else "")
                endings[label] = endings.get(label, 0) + 1
            seconds = [h.seconds for h in held]
            lines.append(f"slow {kind} (x{self.kinds.count(kind)}): {len(held)} connections "
                         f"let go, held median "
                         f"{statistics.median(seconds) if seconds else 0:.2f} s, max "
                         f"{max(seconds, default=0):.2f} s; {endings or 'none ended'}")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="attack length (30)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--proxy", action="store_true",
                        help="attack nginx (k8s/base/nginx.conf) in front of the service")
    parser.add_argument("--slow", default=",".join(KINDS),
                        help=f"slow clients, comma-separated, repeats allowed "
                             f"({','.join(KINDS)})")
    parser.add_argument("--every", type=float, default=1.0,
                        help="seconds between two bytes of a slow client (1.0)")
    parser.add_argument("--read-timeout", type=float,
                        help="ESCALATOR_READ_TIMEOUT_SECONDS for the service (its default)")
    args = parser.parse_args()
    kinds = tuple(k.strip() for k in args.slow.split(",") if k.strip())
    folder = Path(tempfile.mkdtemp(prefix="escalator-slow-"))
    processes: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        settings = {}
        if args.read_timeout is not None:
            settings["ESCALATOR_READ_TIMEOUT_SECONDS"] = str(args.read_timeout)
        base, served = start_serve(folder / "serve", args.workers, **settings)
        processes.append(served)
        if args.proxy:
            base, proxy = start_proxy(folder / "nginx", base)
            processes.append(proxy)
        slow = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
        print(f"{'nginx in front of ' if args.proxy else ''}escalator serve, "
              f"{args.workers} workers; slow clients: {slow} (a byte every {args.every:g} s) "
              f"for {args.seconds:g} s", flush=True)
        attack = Attack(base, kinds, args.every)
        attack.start()
        time.sleep(args.seconds)
        attack.stop()
        print(attack.report())
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
