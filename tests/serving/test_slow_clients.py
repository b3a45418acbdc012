"""Slow clients cannot take the service: against `escalator serve` itself (2 workers), and
through nginx running the deployment's own k8s/base/nginx.conf in front of it.

Each attack is bench/attacks/slow_clients.py's: slow clients that send their headers a byte at a
time, their body a byte at a time (Content-Length, or chunked), or nothing at all, each
reconnecting as soon as it is let go, while a canary caller sends turns and asks /healthz
one after the other. The bounds are generous for a shared machine; what they measure is in
docs/operations/resilience.md ("Slow clients").
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import http, metric, start_serve, wait_for

from bench.attacks import slow_clients
from bench.attacks.slow_clients import Attack, start_proxy, stop

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = 2.0  # ESCALATOR_CLIENT_TIMEOUT_SECONDS here; 5 s by default
CANARY_BOUND = 10.0  # the bound for the bare service, whatever the slow clients do
PROXY_TIMEOUT = 5.0  # nginx.conf's client_header_timeout and client_body_timeout
SLOW = ("headers", "headers", "body", "body", "chunked", "silent")  # more than 2 workers

needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="nginx is not installed (.ci/run installs Debian's)")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`escalator serve`, 2 workers, a 2 s client timeout; its base URL."""
    base, process = start_serve(tmp_path_factory.mktemp("serve"), workers=2,
                                ESCALATOR_CLIENT_TIMEOUT_SECONDS=str(CLIENT_TIMEOUT))
    try:
        yield base
    finally:
        stop(process)


def run_until(attack: Attack, done: dict[str, int], seconds: float) -> None:
    """Attack until each slow client kind in DONE has been let go that many times."""
    attack.start()
    try:
        wait_for(lambda: all(len(attack.held(kind)) >= count for kind, count in done.items()),
                 seconds, f"slow clients let go: {done}")
    except AssertionError as exc:
        attack.stop()
        raise AssertionError(f"{exc}\n{attack.report()}") from exc
    attack.stop()


def assert_the_canary_got_through(attack: Attack, bound: float) -> None:
    canary = attack.canary
    assert canary is not None
    assert canary.failures == []
    assert len(canary.turns) >= 3 and len(canary.healthz) >= 3
    assert max(canary.turns) < bound, attack.report()
    assert max(canary.healthz) < bound, attack.report()


def test_slow_clients_cannot_hold_the_service_itself(service: str) -> None:
    attack = Attack(service, SLOW, every=0.3, body_length=500)
    run_until(attack, {"headers": 3, "body": 3, "chunked": 2, "silent": 2}, 60)

    assert_the_canary_got_through(attack, CANARY_BOUND)
    # Each slow client had its 2 s, then a 408 in the error envelope and a closed connection.
    for held in attack.held():
        assert held.ending == "answered 408", held
        assert held.error_code() == "request_timeout", held
        assert CLIENT_TIMEOUT - 0.1 < held.seconds < CLIENT_TIMEOUT + 3, held
    # ... and SREs see them.
    _, metrics = http(f"{service}/metrics")
    assert metric(str(metrics), "escalator_client_timeouts_total") >= len(attack.held())


def test_a_client_that_waits_for_100_continue_gets_it(service: str) -> None:
    body = b'{"turn_id": "t-1", "message": {"text": "Where is my parcel?"}}'
    host, port = service.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/conversations/expects-continue/turns HTTP/1.1\r\n"
                     b"Host: escalator\r\nContent-Type: application/json\r\n"
                     b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in answer  # once only


@needs_nginx
def test_slow_clients_through_the_proxy_never_reach_a_worker(
        service: str, tmp_path: Path) -> None:
    proxy_url, proxy = start_proxy(tmp_path / "nginx", service)
    try:
        # A body of 50 bytes at a byte every 0.1 s: nginx holds it (never a worker) until
        # it is whole, about 5 s, then passes it on at once.
        attack = Attack(proxy_url, SLOW, every=0.1, body_length=50)
        started = time.monotonic()
        run_until(attack, {"headers": 2, "silent": 1, "body": 2}, 60)
    finally:
        stop(proxy)

    # The canary goes through nginx, which only hands gunicorn whole requests: no slow
    # client delays it by anything like nginx's own 5 s timeouts (measured: milliseconds).
    assert_the_canary_got_through(attack, PROXY_TIMEOUT)
    assert time.monotonic() - started < 60
    for held in attack.held("headers") + attack.held("silent"):
        # nginx closes a connection whose headers are not all in after 5 s, answering
        # nothing (it logs a 408).
        assert held.ending == "closed", held
        assert PROXY_TIMEOUT - 0.1 < held.seconds < PROXY_TIMEOUT + 3, held
    for held in attack.held("body"):
        assert held.ending == "answered 200", held  # the whole turn, decided
        assert held.seconds < 50 * 0.1 + 5, held
    # A chunked body that never ends stays with nginx (a connection, not a worker).
    assert attack.held("chunked") == []


def test_the_attack_module_runs_the_deployment_file() -> None:
    # The proxy tests above run nginx on k8s/base/nginx.conf, changed only in its ports.
    text = slow_clients.proxy_config(18080, 18081)
    original = slow_clients.NGINX_CONF.read_text()
    assert text.replace("listen 127.0.0.1:18080;", slow_clients.PROXY_LISTEN).replace(
        "server 127.0.0.1:18081;", slow_clients.PROXY_UPSTREAM) == original
