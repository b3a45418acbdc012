"""The gunicorn worker of `escalator serve`: gunicorn's sync worker, reading requests whole
before serving them, and never waiting on one client for longer than a deadline.

Limits first. gunicorn's sync worker serves one connection at a time, from its first byte
to the end of the answer, and waits as long as the client takes to send its request: two
clients sending a byte now and then held both workers until gunicorn's worker timeout
killed them, and came straight back. This worker instead:

- reads requests ahead, on every connection it has accepted at once (without blocking,
  with a selector), and serves a request only once its headers and body have all arrived;
  a slow client costs it a buffer, not its time. Most requests arrive in the first read,
  and are served at once, as before;
- gives each connection ESCALATOR_CLIENT_TIMEOUT_SECONDS, from the moment it is accepted,
  to deliver its whole request: past it the client gets a 408 `request_timeout` and the
  connection is closed. A per-read timeout would not do: a client trickling a byte a second
  never lets one expire. Sending each answer has the same bound;
- hands a request it cannot judge complete (a transfer coding other than chunked, headers
  it cannot read, a body over the size limit, which the app refuses unread) to gunicorn as
  is: reading the rest then blocks, but the same deadline ends it.

A worker holds at most MAX_PENDING connections that have not delivered their request; past
that it closes the oldest. Deployments still put a buffering proxy in front (nginx,
k8s/base/nginx.conf), which does all this before a request reaches gunicorn at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import selectors
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from gunicorn import util
from gunicorn.workers.sync import SyncWorker
from werkzeug.exceptions import RequestTimeout

from escalator import metrics

request_log = logging.getLogger("escalator.requests")

MAX_PENDING = 512
"""Connections a worker reads ahead on at once (each holds a buffer of at most the header
limit plus ESCALATOR_MAX_BODY_BYTES)."""

HEADER_LIMIT = 64 * 1024
"""Headers still unfinished past this many bytes are gunicorn's to refuse (its own limits:
100 fields of 8,190 bytes, a request line of 4,094)."""

_HEADER_END = b"\r\n\r\n"
# The headers that say where the body ends (names are case-insensitive; values trimmed).
_FRAMING = re.compile(
    rb"\r\n(content-length|transfer-encoding)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)", re.I)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue[ \t]*(?=\r\n)", re.I)


class ClientTooSlow(RequestTimeout):
    """The client did not deliver its whole request in time (HTTP 408).

    An HTTP error, not an OSError: raised while the app reads the body, Werkzeug would turn
    an OSError into a 400 "client disconnected", while Flask answers this one as a 408."""

    description = "The request was not received in time; send it again, whole."


class RequestScan:
    """Tells, as the bytes of one HTTP/1 request arrive in a buffer, whether it is whole.

    Each call resumes where the last one stopped, so a request trickled a byte at a time
    costs its length in work, not its length squared. scan() answers True (whole), False
    (more to come) or None (this cannot tell: gunicorn's parser then reads the rest, or
    refuses the request). An `Expect: 100-continue` header is taken out of the buffer
    (`expects_continue` says so): the worker answers it, before it has the body."""

    def __init__(self, max_body: int | None) -> None:
        self.max_body = max_body
        self.expects_continue = False
        self._searched = 0  # the end of the headers (or trailers) is not before this
        self._body: int | None = None  # where the body starts
        self._length: int | None = None  # Content-Length
        self._chunked = False
        self._next_chunk = 0  # chunked: where the next chunk-size line starts
        self._chunks_total = 0

    def scan(self, buffer: bytearray) -> bool | None:
        """Whether BUFFER (this request's bytes so far) holds the whole request."""
        if self._body is None:
            end = buffer.find(_HEADER_END, max(0, self._searched - len(_HEADER_END) + 1))
            if end < 0:
                self._searched = len(buffer)
                return None if len(buffer) > HEADER_LIMIT else False
            if not self._read_headers(buffer, end):
                return None
            assert self._body is not None
        if self._chunked:
            return self._scan_chunks(buffer)
        if self._length is None:
            return True  # no body
        if self.max_body is not None and self._length > self.max_body:
            return None  # the app refuses it unread (413)
        return len(buffer) - self._body >= self._length

    def _read_headers(self, buffer: bytearray, end: int) -> bool:
        """Note the body's framing from the headers; False if they cannot be read here."""
        match = _EXPECT_CONTINUE.search(buffer, 0, end + 2)
        if match is not None:
            self.expects_continue = True
            del buffer[match.start():match.end()]
            end -= match.end() - match.start()
        for match in _FRAMING.finditer(buffer, 0, end + 2):
            name, value = match.group(1).lower(), match.group(2).lower()
            if name == b"content-length":
                if self._length is not None or not value.isdigit():
                    return False
                self._length = int(value)
            else:
                if value != b"chunked" or self._chunked:
                    return False
                self._chunked = True
        if self._chunked and self._length is not None:
            return False
        self._body = self._next_chunk = end + len(_HEADER_END)
        return True

    def _scan_chunks(self, buffer: bytearray) -> bool | None:
        """Whether the chunked body is whole: every chunk, the last one and the trailers."""
        while True:
            line_end = buffer.find(b"\r\n", self._next_chunk, self._next_chunk + 1024)
            if line_end < 0:
                return None if len(buffer) - self._next_chunk >= 1024 else False
            size_text = bytes(buffer[self._next_chunk:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return None
            if size == 0:  # the last chunk: then trailer fields, and an empty line
                trailers = line_end + 2
                if buffer[trailers:trailers + 2] == b"\r\n" or buffer.find(
                        _HEADER_END, max(trailers, self._searched - len(_HEADER_END) + 1)) >= 0:
                    return True
                self._searched = len(buffer)
                return None if len(buffer) - trailers > HEADER_LIMIT else False
            self._chunks_total += size
            if self.max_body is not None and self._chunks_total > self.max_body:
                return None  # the app refuses it (413)
            if line_end + 2 + size + 2 > len(buffer):
                self._chunks_total -= size  # counted again once it has all arrived
                return False
            self._next_chunk = line_end + 2 + size + 2


class DeadlineSocket:
    """A client socket whose reads all end `seconds` after STARTED, and whose sends each end
    within `seconds` (sendall: in total); reads first return the bytes read ahead.

    Past the deadline, a read made while the request is read raises ClientTooSlow; once
    the worker is closing the connection (after shutdown), it reads as the end of the
    stream, so gunicorn's lingering close does not wait on a slow client either."""

    def __init__(self, sock: socket.socket, seconds: float, started: float,
                 read_ahead: bytes = b"") -> None:
        self._sock = sock
        self.started = started
        self._deadline = started + seconds
        self._send_timeout = seconds
        self._read_ahead = read_ahead
        self._timeout: float | None = None  # what the caller set (gunicorn's close linger)
        self._closing = False

    def _read_timeout(self) -> float | None:
        """Seconds the next read may wait, or None past the deadline."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return None
        return remaining if self._timeout is None else min(remaining, self._timeout)

    def _expired(self) -> bytes:
        if self._closing:
            return b""
        metrics.CLIENT_TIMEOUTS.inc()
        raise ClientTooSlow()

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Like socket.recv, ending by the deadline."""
        if self._read_ahead:
            data, self._read_ahead = self._read_ahead[:size], self._read_ahead[size:]
            return data
        timeout = self._read_timeout()
        if timeout is None:
            return self._expired()
        self._sock.settimeout(timeout)
        try:
            return self._sock.recv(size, flags)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                return self._expired()
            raise  # the caller's own, shorter timeout

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Like socket.recv_into, ending by the deadline."""
        data = self.recv(nbytes or len(buffer), flags)
        buffer[:len(data)] = data
        return len(data)

    def send(self, data: bytes, flags: int = 0) -> int:
        """Like socket.send, within the send timeout."""
        self._sock.settimeout(self._send_timeout)
        try:
            return self._sock.send(data, flags)
        except TimeoutError as exc:
            raise self._not_reading() from exc

    def sendall(self, data: bytes, flags: int = 0) -> None:
        """Like socket.sendall, within the send timeout in total."""
        self._sock.settimeout(self._send_timeout)
        try:
            self._sock.sendall(data, flags)
        except TimeoutError as exc:
            raise self._not_reading() from exc

    def _not_reading(self) -> OSError:
        # A broken pipe as far as the worker is concerned: gunicorn then drops the
        # connection quietly instead of logging a traceback per slow reader.
        metrics.CLIENT_TIMEOUTS.inc()
        return BrokenPipeError(errno.EPIPE, "the client did not take the answer in time")

    def settimeout(self, value: float | None) -> None:
        """Remember the caller's timeout; reads use the shorter of it and the deadline."""
        self._timeout = value

    def gettimeout(self) -> float | None:
        """The caller's timeout (as set with settimeout)."""
        return self._timeout

    def shutdown(self, how: int) -> None:
        """The worker is closing: reads past the deadline are now the end of the stream."""
        self._closing = True
        self._sock.shutdown(how)

    def close(self) -> None:
        """Close the socket."""
        self._closing = True
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@dataclass
class _Pending:
    """A connection whose request has not fully arrived."""

    listener: socket.socket
    sock: socket.socket
    addr: Any
    started: float
    scan: RequestScan
    buffer: bytearray = field(default_factory=bytearray)
    continued: bool = False  # "100 Continue" sent


class BufferingSyncWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker that reads requests ahead on all its connections at once and
    serves each once it has fully arrived, within ESCALATOR_CLIENT_TIMEOUT_SECONDS."""

    client_timeout = 5.0
    max_body: int | None = None

    def run(self) -> None:
        """Serve until told to stop: accept, read ahead, serve whole requests, expire."""
        if self.cfg.is_ssl:  # TLS wraps the raw socket; escalator serve never sets it up
            super().run()
            return
        self._read_limits()
        self.pending: dict[socket.socket, _Pending] = {}
        self.selector = selectors.DefaultSelector()
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, "wakeup")
        try:
            while self.alive:
                self.notify()
                # As gunicorn's sync worker does: while connections are waiting, take them
                # one after the other without asking the selector first (under load it
                # never has to), looking at the connections read ahead in between.
                if any([self._accept(listener) for listener in self.sockets]):
                    if self.pending:
                        self._handle(self._wait(0.0))
                    self._expire()
                    continue
                if not self.is_parent_alive():
                    return
                self._handle(self._wait())
                self._expire()
        finally:
            for pending in list(self.pending.values()):
                self._forget(pending)
                pending.sock.close()
            self.selector.close()

    def _read_limits(self) -> None:
        """The client timeout and body limit, from the app's own configuration."""
        from escalator.config import Config
        from escalator.http.services import EXTENSION

        services = getattr(self.wsgi, "extensions", {}).get(EXTENSION)
        config = services.config if services is not None else Config.from_env()
        self.client_timeout = config.client_timeout_seconds
        self.max_body = config.max_body_bytes

    def _handle(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Act on what the selector found ready."""
        for key, _ in events:
            if key.data == "wakeup":
                os.read(self.PIPE[0], 1)
            elif key.data == "listener":
                self._accept(key.fileobj)
            elif key.fileobj in self.pending:
                self._read(self.pending[key.fileobj])

    def _wait(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """What is ready to read: at once with timeout 0, else waiting at most until the
        oldest pending connection's deadline (and gunicorn's heartbeat)."""
        if timeout is None:
            timeout = self.timeout or 0.5
            if self.pending:
                oldest = next(iter(self.pending.values()))
                timeout = min(timeout, max(0.0, oldest.started + self.client_timeout
                                           - time.monotonic()))
        try:
            return self.selector.select(timeout)
        except OSError as exc:  # interrupted, or the listener closed during shutdown
            if exc.errno in (errno.EINTR, errno.EBADF):
                return []
            raise

    def _accept(self, listener: Any) -> bool:
        """Accept one connection, if one is waiting, and read what it has sent."""
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return False
            raise
        client.setblocking(False)
        util.close_on_exec(client)
        if len(self.pending) >= MAX_PENDING:
            oldest = next(iter(self.pending.values()))
            self._forget(oldest)
            oldest.sock.close()
        pending = _Pending(listener, client, addr, time.monotonic(), RequestScan(self.max_body))
        self.pending[client] = pending
        self._read(pending, registered=False)
        return True

    def _read(self, pending: _Pending, registered: bool = True) -> None:
        """Read what the connection has sent; serve it if the request is whole."""
        try:
            data = pending.sock.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":  # the client left before its request was whole
            self._forget(pending, registered)
            pending.sock.close()
            return
        if data:
            pending.buffer += data
        complete = pending.scan.scan(pending.buffer)
        if complete is not False:
            self._forget(pending, registered)
            self._serve(pending)
            return
        if pending.scan.expects_continue and not pending.continued:
            # The client waits for this before it sends its body (gunicorn would send it
            # only once handed the request, and will not: the header is gone).
            pending.continued = True
            with contextlib.suppress(OSError):  # the next read finds out
                pending.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not registered:
            self.selector.register(pending.sock, selectors.EVENT_READ, "client")

    def _forget(self, pending: _Pending, registered: bool = True) -> None:
        """Stop watching a pending connection."""
        self.pending.pop(pending.sock, None)
        if registered:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(pending.sock)

    def _serve(self, pending: _Pending) -> None:
        """Serve a whole request the way gunicorn's sync worker does, from the bytes read
        ahead (and the socket for anything more, by the same deadline)."""
        pending.sock.setblocking(True)
        sock = DeadlineSocket(pending.sock, self.client_timeout, pending.started,
                              bytes(pending.buffer))
        self.handle(pending.listener, sock, pending.addr)

    def _expire(self) -> None:
        """408 and close every pending connection past its deadline."""
        now = time.monotonic()
        for pending in list(self.pending.values()):
            if now - pending.started < self.client_timeout:
                break  # in order of arrival: the rest are younger
            self._forget(pending)
            metrics.CLIENT_TIMEOUTS.inc()
            self._answer_408(pending.sock, pending.started)
            # No lingering close: the client has had its time.
            with contextlib.suppress(OSError):
                pending.sock.shutdown(socket.SHUT_WR)
            pending.sock.close()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A request not received in time gets a 408 in the API's error envelope; anything
        else, gunicorn's answer."""
        if isinstance(exc, ClientTooSlow):
            self._answer_408(client, client.started)
        else:
            super().handle_error(req, client, addr, exc)

    def _answer_408(self, client: Any, started: float) -> None:
        """Send the 408 (best effort) and log the request line the app never wrote."""
        request_log.info("request", extra={
            "request_id": uuid.uuid4().hex, "method": None, "route": None, "status": 408,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "decision_id": None})
        body = json.dumps({"error": {"code": "request_timeout",
                                     "message": ClientTooSlow.description}}).encode()
        head = ("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            client.send(head + body)
        except OSError:
            self.log.debug("could not send the 408 to a slow client")
