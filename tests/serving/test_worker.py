"""The worker's parts on their own: when a request is whole, and the deadline socket.
(tests/serving/test_slow_clients.py attacks the whole worker under `escalator serve`.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from escalator.serving.worker import ClientTooSlow, DeadlineSocket, RequestScan

# A bound on "at once" and "by the deadline" that a loaded machine keeps: well under
# the 2 s linger, and no timing benchmark.
BOUND_SECONDS = 1.0

TURN = b'{"turn_id": "t-1", "message": {"text": "hello"}}'
HEAD = b"POST /v1/conversations/c-1/turns HTTP/1.1\r\nHost: escalator\r\n"


def byte_by_byte(request: bytes, max_body: int | None = 65536) -> list[bool | None]:
    """What scan() answers after each byte of REQUEST arrives."""
    scan, buffer, answers = RequestScan(max_body), bytearray(), []
    for byte in request:
        buffer.append(byte)
        answers.append(scan.scan(buffer))
    return answers


@pytest.mark.parametrize("request_bytes", [
    HEAD + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(TURN) + TURN,
    HEAD + b"content-LENGTH:  %d \r\n\r\n" % len(TURN) + TURN,
    b"GET /healthz HTTP/1.1\r\nHost: escalator\r\n\r\n",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
])
def test_a_request_is_whole_at_its_last_byte_and_not_before(request_bytes: bytes) -> None:
    answers = byte_by_byte(request_bytes)
    assert answers[-1] is True
    assert set(answers[:-1]) == {False}


@pytest.mark.parametrize("request_bytes", [
    HEAD + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",  # ambiguous framing
    HEAD + b"Content-Length: -3\r\n\r\n",
    HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
    HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
    HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
    HEAD + b"Content-Length: 70000\r\n\r\n",  # over the limit: refused unread
    HEAD + b"X-Pad: " + b"a" * 70000,  # headers past the limit
])
def test_what_it_cannot_judge_goes_to_gunicorn_as_it_is(request_bytes: bytes) -> None:
    scan = RequestScan(65536)
    assert scan.scan(bytearray(request_bytes)) is None


def test_a_chunked_body_over_the_limit_goes_to_the_app_to_refuse() -> None:
    body = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(65))  # 65 KiB
    scan = RequestScan(65536)
    assert scan.scan(bytearray(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body)) is None


def test_expect_100_continue_is_taken_out_for_the_worker_to_answer() -> None:
    scan = RequestScan(65536)
    buffer = bytearray(HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(TURN))
    assert scan.scan(buffer) is False
    assert scan.expects_continue
    assert b"100-continue" not in buffer
    buffer += TURN
    assert scan.scan(buffer) is True
    assert bytes(buffer).endswith(b"Content-Length: %d\r\n\r\n" % len(TURN) + TURN)


def test_a_trickled_request_costs_its_length_not_its_square() -> None:
    # 60,000 body bytes one at a time: resuming where it stopped, this is milliseconds;
    # rescanning from the start each time would be seconds.
    scan = RequestScan(65536)
    buffer = bytearray(HEAD + b"Content-Length: 60000\r\n\r\n")
    answers = []
    for _ in range(60000):
        buffer.append(32)
        answers.append(scan.scan(buffer))
    assert answers.count(True) == 1 and answers[-1] is True


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_reads_end_by_the_deadline_even_while_bytes_trickle_in(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    sock = DeadlineSocket(server, 0.5, time.monotonic(), read_ahead=b"POST / HT")
    assert sock.recv(4) == b"POST"  # what was read ahead comes first
    assert sock.recv(100) == b" / HT"
    trickled = 0
    with pytest.raises(ClientTooSlow):
        while True:
            client.send(b"x")  # a byte at a time: each read gets something
            assert sock.recv(100) == b"x"
            trickled += 1
    # Ended by the deadline, not by a lull: bytes were still coming.
    assert trickled > 0
    assert sock.started + 0.5 <= time.monotonic() < sock.started + 0.5 + BOUND_SECONDS


def test_once_closing_a_read_past_the_deadline_is_the_end_of_the_stream(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    sock = DeadlineSocket(server, 0.2, time.monotonic())
    with pytest.raises(ClientTooSlow):
        sock.recv(10)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(2.0)  # gunicorn's lingering close
    started = time.monotonic()
    assert sock.recv(10) == b""  # at once: not a wait for the 2 s linger
    assert time.monotonic() - started < BOUND_SECONDS < 2.0
    assert client.recv(10) == b""  # the client saw the close


def test_the_callers_own_shorter_timeout_still_applies(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    sock = DeadlineSocket(server, 10.0, time.monotonic())
    sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        sock.recv(10)
    assert sock.gettimeout() == 0.1
