"""Bodies sent with Transfer-Encoding: chunked (no Content-Length) through `escalator serve`:
the size limit holds as it does with a Content-Length."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.servers import start_serve

pytestmark = pytest.mark.slow

LIMIT = 64 * 1024  # ESCALATOR_MAX_BODY_BYTES' default


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_serve(Path(tmp_path_factory.mktemp("chunked")))
    yield url
    process.send_signal(signal.SIGTERM)  # the master stops its embedded Redis
    assert process.wait(timeout=30) == 0


def a_turn_padded_to(size: int, turn_id: str) -> bytes:
    """A valid turn followed by spaces: still valid JSON if cut anywhere after the '}'."""
    turn = json.dumps({"turn_id": turn_id, "message": {"text": "where is my parcel?"}}).encode()
    return turn + b" " * (size - len(turn))


def post_chunked(base: str, path: str, body: bytes, chunk: int = 8192) -> tuple[int, Any]:
    """POST body in chunks of `chunk` bytes on a plain socket; status and parsed JSON."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                     "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        try:
            for start in range(0, len(body), chunk):
                piece = body[start:start + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service answered before reading it all: the answer is what counts
        response = b""
        while data := sock.recv(65536):
            response += data
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 40_000, 1_000_000])
def test_a_chunked_body_over_the_limit_is_413(base: str, size: int) -> None:
    # It was cut at 65,536 bytes and, the cut being valid JSON, answered 200.
    status, body = post_chunked(base, "/v1/conversations/chunked-big/turns",
                                a_turn_padded_to(size, "t-1"))
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    status, body = post_chunked(base, "/v1/evaluate", b'{"turns": []' + b" " * size + b"}")
    assert status == 413 and body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("size", [200, LIMIT - 1, LIMIT])
def test_a_chunked_body_within_the_limit_is_decided(base: str, size: int) -> None:
    status, body = post_chunked(base, f"/v1/conversations/chunked-{size}/turns",
                                a_turn_padded_to(size, "t-1"))
    assert status == 200, body
    assert body["turn_index"] == 1 and body["degraded"] is False
