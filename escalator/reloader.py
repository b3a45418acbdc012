"""Hot reload of the rules folder: only a complete folder, checked completely, swapped
atomically, or refused.

A reload is asked for by polling (ESCALATOR_RELOAD_INTERVAL_SECONDS), by SIGHUP (under
`escalator serve` the gunicorn master passes it to every worker) or by
`POST /v1/ruleset/reload`. Every one is served by one thread per process, so requests
coalesce: a storm of them is one reload running and at most one more after it.

A folder is read once (escalator.ruleset.folder) and what was read is loaded, type-checked,
floor-checked and compiled before it replaces the running rules; a broken one is logged,
counted and refused, and the running rules stay. The replaced policy's engine handles
are freed once the last decision using them is done (PolicyHolder).

Half-written folders: a writer copying files in place leaves the folder incomplete for a
while, and an incomplete folder can be a valid rule set with rules missing. A changed
folder is therefore activated only once it is *settled*: read again at least
`settle_seconds` later with exactly the same content. A ConfigMap-style folder (`..data`
swapped to a new, complete folder) is complete by construction and activated at once.
This holds for every way of asking, SIGHUP and the admin route included: the admin may
ask while a copy is still running. A writer that stops for longer than the settle time in
the middle of a file is not detected; writing elsewhere and moving the files in (or
swapping a `..data` link) is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter

from escalator import metrics
from escalator.config import Config
from escalator.errors import PolicyError, Problem
from escalator.model import RulesetRef
from escalator.policy import Policy, load_policy
from escalator.ruleset.folder import FolderKey, RulesFolder, read_folder
from escalator.ruleset.model import RuleSet

log = logging.getLogger(__name__)

DEFAULT_SETTLE_SECONDS = Config.reload_settle_seconds
# How long an admin reload waits beyond the settle time for its result (a reload of the
# default rules takes about 130 ms).
ADMIN_WAIT_SECONDS = 5.0
THREAD_NAME = "escalator-reload"


# What a holder without a rule set yet runs (a shadow folder refused at start).
NO_RULESET = RulesetRef("none", "", "")


class Holder(Protocol):
    """Where a reloader puts what it loads: the live PolicyHolder, or the shadow's."""

    @property
    def current(self) -> Policy | None: ...

    def swap(self, policy: Policy) -> None: ...


def _publish_live(ruleset: RuleSet) -> None:
    metrics.set_ruleset(ruleset.name, ruleset.version, ruleset.digest)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: 'reloaded', 'unchanged' or 'failed' (with the problems)."""

    result: str
    version: str
    digest: str
    seconds: float
    problems: tuple[Problem, ...] = field(default=())
    warnings: tuple[Problem, ...] = field(default=())


class ReloadBusy(Exception):
    """No reload result within the wait: a reload is still running, or the folder has not
    settled yet. The running rules stay; the reload completes by itself."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class _Candidate:
    """A changed folder content seen, waiting to be seen again unchanged."""

    key: FolderKey
    seen: float  # time.monotonic()

    def due(self, settle: float) -> float:
        return self.seen + settle


class RuleReloader:
    """Reloads one app's rules folder into its PolicyHolder, from one thread."""

    def __init__(self, holder: Holder, directory: Path,
                 interval_seconds: float = 0.0,
                 settle_seconds: float = DEFAULT_SETTLE_SECONDS,
                 admin_wait_seconds: float = ADMIN_WAIT_SECONDS, *,
                 what: str = "rules",
                 publish: Callable[[RuleSet], None] = _publish_live,
                 reloads: Counter = metrics.RELOADS) -> None:
        """`what`, `publish` and `reloads` name the rule set in logs, publish it once
        active and count reloads: the live one's by default (the shadow's: escalator.shadow)."""
        self.holder = holder
        self.what = what
        self._publish = publish
        self._reloads = reloads
        self.directory = directory
        self.interval_seconds = interval_seconds
        self.settle_seconds = settle_seconds
        self.admin_wait_seconds = admin_wait_seconds
        self._cond = threading.Condition()
        self._asked = 0  # requests handed out (under _cond)
        self._answered = 0  # every request up to this one has a result (under _cond)
        self._result: ReloadResult | Exception | None = None
        self._signals = 0  # counted by a signal handler: no lock may be taken there
        self._signals_seen = 0
        self._busy_since: float | None = None  # a read or compile started then
        self._candidate: _Candidate | None = None
        self._refused: tuple[FolderKey, ReloadResult] | None = None
        self._wake_fds: tuple[int, int] | None = None
        self._wake_pid = 0  # the process that made the pipe: a fork makes its own
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ asking

    def reload(self, reason: str = "request", timeout: float | None = None) -> ReloadResult:
        """Have the folder read now and activated once complete; the result, or ReloadBusy
        when there is none within `timeout` (default: settle time + admin_wait_seconds)."""
        wait = self.settle_seconds + self.admin_wait_seconds if timeout is None else timeout
        with self._cond:
            self._asked += 1
            ticket = self._asked
        # Asked before the thread starts, so that its first read (the catch-up at worker
        # start) answers this ask; otherwise that read could take the change and leave
        # this ask an 'unchanged' that hides the change's warnings.
        self.start()
        log.info("rules reload asked (%s)", reason)
        self._wake()
        with self._cond:
            if self._cond.wait_for(lambda: self._answered >= ticket, wait):
                result = self._result
                if isinstance(result, Exception):
                    raise RuntimeError("the rules reload failed unexpectedly") from result
                assert result is not None
                return result
        raise self._busy()

    def request_from_signal(self) -> None:
        """Ask for a reload from a signal handler (no lock, no thread started, no wait)."""
        self._signals += 1
        self._wake()

    def _busy(self) -> ReloadBusy:
        retry = max(1, math.ceil(self.settle_seconds))
        candidate = self._candidate
        if candidate is not None:
            return ReloadBusy(
                f"The rules folder changed {time.monotonic() - candidate.seen:.1f} s ago and is "
                f"activated once it has been unchanged for {self.settle_seconds:g} s (a copy "
                "may still be running); the running rule set stays until then.", retry)
        since = self._busy_since
        running = "" if since is None else f" for {time.monotonic() - since:.1f} s"
        return ReloadBusy(f"A reload of the rules folder is running{running}; the running "
                          "rule set stays until it is done.", retry)

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        """Start the reload thread (which also polls, if interval_seconds > 0). In a
        process forked from one where it ran, it is started anew."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self._wake_fds is None or self._wake_pid != os.getpid():
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
            self._wake_fds, self._wake_pid = (read_end, write_end), os.getpid()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name=THREAD_NAME)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a reload in progress finishes first, up to 5 s)."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                return  # stuck in a read: leave it its pipe (it is a daemon thread)
            self._thread = None
        if self._wake_fds is not None and self._wake_pid == os.getpid():
            for fd in self._wake_fds:
                os.close(fd)
        self._wake_fds = None

    def _wake(self) -> None:
        fds = self._wake_fds
        if fds is not None:
            # Full: the thread has plenty to wake for. Closed: it has stopped.
            with contextlib.suppress(OSError):
                os.write(fds[1], b"\0")

    def _sleep(self, seconds: float) -> None:
        fds = self._wake_fds
        if fds is None or seconds <= 0:
            return
        with contextlib.suppress(OSError, ValueError):
            select.select([fds[0]], [], [], None if math.isinf(seconds) else seconds)
            while os.read(fds[0], 4096):  # until BlockingIOError: the pipe is empty
                pass

    def _run(self) -> None:
        interval = self.interval_seconds
        next_poll = time.monotonic() + interval if interval > 0 else math.inf
        # A worker forked from a master that loaded older rules catches up at once.
        attempted_for, first = -1, True
        while not self._stop.is_set():
            with self._cond:
                asked, answered = self._asked, self._answered
            signals = self._signals
            now = time.monotonic()
            candidate = self._candidate
            due = min(next_poll, candidate.due(self.settle_seconds) if candidate else math.inf)
            asked_again = asked != attempted_for or signals != self._signals_seen
            if not (first or asked_again or now >= due):
                self._sleep(due - now)
                continue
            if now >= next_poll:
                next_poll = now + interval
            reason = ("worker start" if first else "SIGHUP" if signals != self._signals_seen
                      else "request" if asked > answered else "poll")
            first, attempted_for, self._signals_seen = False, asked, signals
            result: ReloadResult | Exception | None
            try:
                result = self._attempt(reason, forced=reason != "poll")
            except Exception as exc:  # the thread must never die: the next try may succeed
                log.exception("rules reload (%s) failed unexpectedly", reason)
                self._candidate, result = None, exc
            if result is not None:
                with self._cond:
                    self._answered = max(self._answered, asked)
                    self._result = result
                    self._cond.notify_all()

    # ------------------------------------------------------------------ one attempt

    def _attempt(self, reason: str, forced: bool) -> ReloadResult | None:
        """Read the folder; activate it if it is new and complete. None while a change
        waits to settle."""
        started = time.perf_counter()
        self._busy_since = time.monotonic()
        try:
            folder = read_folder(self.directory)
            return self._consider(folder, reason, forced, started)
        finally:
            self._busy_since = None

    def _running(self) -> RulesetRef:
        current = self.holder.current
        return NO_RULESET if current is None else current.ruleset.ref()

    def _consider(self, folder: RulesFolder, reason: str, forced: bool,
                  started: float) -> ReloadResult | None:
        current = self._running()
        if not folder.refused and folder.digest == current.digest:
            self._candidate = None
            return ReloadResult("unchanged", current.version, current.digest,
                                time.perf_counter() - started)
        if self._refused is not None and self._refused[0] == folder.key:
            # The same bytes give the same problems: do not compile and log them again.
            self._candidate = None
            if forced:
                log.warning("rules reload (%s): the folder is unchanged since it was "
                            "refused; %s %s keeps running", reason, current.name,
                            current.version)
            return self._refused[1]
        now = time.monotonic()
        if not folder.atomic and self.settle_seconds > 0:
            candidate = self._candidate
            if candidate is None or candidate.key != folder.key:
                self._candidate = _Candidate(folder.key, now)
                log.info("rules folder changed (%s); activating it once unchanged for %g s",
                         reason, self.settle_seconds)
                return None
            if now < candidate.due(self.settle_seconds):
                return None
        self._candidate = None
        return self._activate(folder, reason, started)

    def _activate(self, folder: RulesFolder, reason: str, started: float) -> ReloadResult:
        current = self._running()
        try:
            policy = load_policy(folder)
        except PolicyError as exc:
            self._reloads.labels("failed").inc()
            log.error("%s reload (%s) refused; %s %s keeps running:\n%s", self.what, reason,
                      current.name, current.version, exc)
            refused = ReloadResult("failed", current.version, current.digest,
                                   time.perf_counter() - started, tuple(exc.problems))
            self._refused = (folder.key, refused)
            return refused
        self._refused = None
        self.holder.swap(policy)
        ruleset = policy.ruleset
        self._publish(ruleset)
        self._reloads.labels("success").inc()
        seconds = time.perf_counter() - started
        log.info("%s reloaded (%s): %s %s -> %s in %.3f s", self.what, reason,
                 current.version, ruleset.name, ruleset.version, seconds)
        for warning in ruleset.warnings:
            log.warning("rule set %s %s: %s", ruleset.name, ruleset.version, warning)
        warnings: tuple[Problem, ...] = ()
        if ruleset.version == current.version:
            warnings = (Problem(
                str(folder.path), None, f"the rules changed but their version is still "
                f"{ruleset.version!r}: decisions made before and after the change name the "
                "same version (their digests differ); change 'version' with every edit",
                code="version_unchanged"),)
            log.warning("rules reload (%s): %s", reason, warnings[0].message)
        return ReloadResult("reloaded", ruleset.version, ruleset.digest, seconds,
                            warnings=warnings)


# Under gunicorn (escalator serve) each worker reloads its own copy of the rules: a
# reload asked of one worker over HTTP is passed to the master, which sends SIGHUP to
# every worker. Set by the serve command's worker hook; None when not under gunicorn.
master_pid: int | None = None


def notify_other_workers() -> None:
    """Ask the gunicorn master to have every worker reload (no-op outside gunicorn)."""
    import signal

    if master_pid is not None:
        os.kill(master_pid, signal.SIGHUP)
