"""Rule sets sent inline (POST /v1/evaluate): each evaluated in a short-lived child
process with hard limits, a bounded number at once per service instance.

Limits first. A rule set sent by a caller is parsed, checked and compiled into a C
extension (durable-rules) that has crashed and looped on odd input before; the budget of
every rule set (escalator.ruleset) bounds what is known, and the child process bounds the
rest: at most `seconds` of wall and CPU time, `memory_mb` more address space than the
worker it was forked from, a lower CPU priority than turns, and whatever it allocates is
gone when it exits (glibc keeps a process's freed memory, so a worker that compiled a
large rule set itself stayed large). The worker waits for the child, so an evaluation
still holds one worker for up to `seconds`: at most `concurrency` evaluations run at once
per service instance (lock files shared by its workers), so the other workers are always
free for turns. The files sent are read in memory, never written; the instance's folder
in $TMPDIR holds only the slots' lock files, is removed when the instance stops, and a
killed instance's folder when the next one starts.

Fork hazards: the worker may have other threads (rule polling, a reload) holding locks
at the moment of the fork. The child takes no lock that such a thread could hold: it
logs nothing, touches no metric and no Redis connection, imports nothing new, and leaves
with os._exit (no atexit handlers, no flushing of the worker's buffers).
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import fcntl
import logging
import math
import os
import pickle
import resource
import select
import shutil
import signal
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from escalator.config import Config
from escalator.errors import PolicyError, Problem
from escalator.http.ratelimit import RateLimiter
from escalator.model import Decision
from escalator.policy import Policy, check_inline_files, load_inline_policy
from escalator.tools.transcripts import Transcript, decide_transcript

log = logging.getLogger(__name__)

T = TypeVar("T")
PREFIX = "escalator-inline-"
# The child's answer is a decision list for at most 500 turns (about 1 MB); anything far
# larger is not an answer.
MAX_RESULT_BYTES = 32 * 1024 * 1024
# Folders of the format before this one (escalator-inline-<random>) carry no owner: one
# older than this cannot belong to an evaluation still running.
STALE_SECONDS = 600.0
_PR_SET_PDEATHSIG = 1
# The C library's symbols, looked up once here (ctypes.util.find_library runs programs).
_LIBC = ctypes.CDLL(None)
CHILD_NICENESS = 10


class RateLimited(Exception):
    """The caller has used up its inline evaluations for now."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InlineBusy(RateLimited):
    """Every inline evaluation slot of this service instance is taken."""


class InlineLimitExceeded(Exception):
    """The evaluation went over its time or memory limit; `limit` says which."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class InlineFailed(Exception):
    """The child failed in an unexpected way (a bug, or the engine crashing)."""


@dataclass(frozen=True)
class InlineLimits:
    """What one inline evaluation may use."""

    seconds: float = Config.inline_timeout_seconds
    memory_mb: int = Config.inline_memory_mb
    concurrency: int = Config.inline_concurrency


# ---------------------------------------------------------------------------- workspace

def root_for(owner_pid: int, token: str) -> Path:
    """The folder of one service instance's inline evaluations (owner: its master)."""
    return Path(tempfile.gettempdir()) / f"{PREFIX}{owner_pid}-{token}"


def clean_stale(owner_pid: int) -> list[Path]:
    """Remove what earlier instances left behind (at start); the folders removed.

    An instance's folder is stale when its owner no longer runs, or has this very pid (a
    container restarted: the new master is pid 1 again). Folders of another live instance
    on the same machine are left alone.
    """
    removed: list[Path] = []
    base = Path(tempfile.gettempdir())
    for path in base.glob(f"{PREFIX}*"):
        owner, _, token = path.name[len(PREFIX):].partition("-")
        stale = False
        if owner.isdigit() and token:
            stale = int(owner) == owner_pid or not _alive(int(owner))
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - path.stat().st_mtime > STALE_SECONDS
        if stale and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class Workspace:
    """The evaluation slots of one service instance, shared by its workers, in a folder
    of its own."""

    def __init__(self, concurrency: int, owner_pid: int | None = None) -> None:
        """A workspace owned by this process (the master, when made before the fork)."""
        self.root = root_for(owner_pid or os.getpid(), uuid.uuid4().hex[:8])
        self.concurrency = concurrency

    def close(self) -> None:
        """Remove the whole folder (when the instance stops)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _ensure_root(self) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the instance's evaluation slots, or raise InlineBusy at once.

        A slot is an flock on a lock file: the kernel releases it when its holder dies,
        however it dies, so a killed worker never keeps a slot.
        """
        self._ensure_root()
        for number in range(self.concurrency):
            fd = os.open(self.root / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                os.close(fd)  # releases the lock
            return
        raise InlineBusy(1, f"all {self.concurrency} inline evaluation slot(s) of this "
                            "instance are in use")


# ---------------------------------------------------------------------------- evaluation

Render = Callable[[Policy, list[Decision]], bytes]


class InlineEvaluator:
    """The inline evaluations of one service instance: rate-limited per caller, a bounded
    number at once, each in its own child process."""

    def __init__(self, limits: InlineLimits, rate: RateLimiter,
                 workspace: Workspace | None = None) -> None:
        self.limits = limits
        self.rate = rate
        self.workspace = workspace or Workspace(limits.concurrency)

    def evaluate(self, caller: str, files: Mapping[str, str], transcript: Transcript,
                 active: Policy, lexicons_from: Path, render: Render) -> bytes:
        """The response body for a transcript decided by a rule set sent inline.

        PolicyError if the files are refused, RateLimited (or InlineBusy) when the caller
        or the instance is at its limit, InlineLimitExceeded past the time or memory
        limit, InlineFailed if the child died otherwise.
        """
        check_inline_files(files)
        verdict = self.rate.check(caller)
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after,
                              f"at most {self.rate.per_window} inline evaluations per "
                              f"{self.rate.window_seconds:g} s per caller")

        def work() -> bytes:
            # Read in memory "from" the instance's folder (it exists; nothing is written).
            policy = load_inline_policy(files, self.workspace.root, lexicons_from,
                                        active.lexicons)
            return render(policy, decide_transcript(policy, transcript))

        with self.workspace.slot():
            return run_isolated(work, self.limits)

    def close(self) -> None:
        """Remove the workspace (when the instance stops)."""
        self.workspace.close()


# ---------------------------------------------------------------------------- the child

# Python 3.12 warns on every fork of a process with threads; the child is written for
# exactly that case (see the module docstring), so the warning would only fill the log.
warnings.filterwarnings("ignore", message=r".*multi-threaded, use of fork\(\)",
                        category=DeprecationWarning)


def run_isolated(work: Callable[[], T], limits: InlineLimits) -> T:
    """work() run in a forked child under the limits; its result, or its PolicyError.

    InlineLimitExceeded past the time or memory limit, InlineFailed if the child dies
    otherwise. The caller's process is untouched by whatever the child allocated.
    """
    read_end, write_end = os.pipe()
    deadline = time.monotonic() + limits.seconds
    pid = os.fork()
    if pid == 0:  # the child: no return from this branch
        os.close(read_end)
        _child(work, write_end, limits)
    os.close(write_end)
    try:
        data, complete = _read_all(read_end, deadline)
    finally:
        os.close(read_end)
    if not complete:
        _kill(pid)
        _reap(pid)
        raise InlineLimitExceeded("time", f"the evaluation took longer than "
                                          f"{limits.seconds:g} s")
    status = _reap(pid, deadline)
    result: T = _outcome(data, status, limits)
    return result


def _child(work: Callable[[], Any], write_end: int, limits: InlineLimits) -> None:
    """Set the limits, do the work, send (kind, value) pickled, and leave."""
    code = 0
    try:
        _limit_self(limits)
        try:
            message: tuple[str, Any] = ("ok", work())
        except PolicyError as exc:
            message = ("problems", list(exc.problems))
        except MemoryError:
            message = ("memory", None)
        except RecursionError:
            message = ("error", "RecursionError")
        try:
            payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            payload = pickle.dumps(("memory", None))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_end, view):]
    except BaseException as exc:  # anything at all: answer, then leave
        code = 1
        with contextlib.suppress(BaseException):
            os.write(write_end, pickle.dumps(("error", f"{type(exc).__name__}: {exc}"[:500])))
    finally:
        os._exit(code)


def _limit_self(limits: InlineLimits) -> None:
    """In the child: die with the worker, default signals, lower priority, hard limits."""
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        # If the worker is killed (gunicorn's timeout), the child goes too.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # A crash must not write a traceback into the worker's log (faulthandler, if on).
    faulthandler.disable()
    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # A last resort should the worker stop waiting: the default SIGALRM action ends it.
    signal.alarm(math.ceil(limits.seconds) + 2)
    os.nice(CHILD_NICENESS)
    cpu = max(1, math.ceil(limits.seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    address_space = _virtual_size() + limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


def _virtual_size() -> int:
    """This process's address space in bytes (VmSize)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything the child sends until it closes the pipe; False if time ran out first
    (or it sent more than MAX_RESULT_BYTES)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESULT_BYTES:
            return b"", False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int, deadline: float | None = None) -> int:
    """Wait for the child and return its wait status (killing it if it lingers past the
    deadline after closing its end of the pipe)."""
    while True:
        try:
            if deadline is None:
                return os.waitpid(pid, 0)[1]
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if done:
            return status
        if time.monotonic() > deadline:
            _kill(pid)
            deadline = None
        else:
            time.sleep(0.001)


def _outcome(data: bytes, status: int, limits: InlineLimits) -> Any:
    """The child's result, or the right exception for how it ended."""
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL,
                                                         signal.SIGALRM):
        raise InlineLimitExceeded("time", f"the evaluation took longer than "
                                          f"{limits.seconds:g} s of CPU")
    if not data:
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit code {os.WEXITSTATUS(status)}")
        raise InlineFailed(f"the inline evaluation's process ended without an answer ({how})")
    try:
        kind, value = pickle.loads(data)  # our own child's answer, not the caller's bytes
    except Exception as exc:
        raise InlineFailed(f"the inline evaluation's answer could not be read: {exc}") from exc
    if kind == "ok":
        return value
    if kind == "problems":
        raise PolicyError([p for p in value if isinstance(p, Problem)])
    if kind == "memory":
        raise InlineLimitExceeded("memory", f"the evaluation needed more than "
                                            f"{limits.memory_mb} MB")
    raise InlineFailed(f"the inline evaluation failed: {value}")
