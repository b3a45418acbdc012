"""Hot reload of the rules folder: checked completely, swapped atomically, or refused.

A reload is asked for by polling (ESCALATOR_RELOAD_INTERVAL_SECONDS), by SIGHUP (under
`escalator serve` the gunicorn master passes it to every worker) or by
`POST /v1/ruleset/reload`. The new rule set is loaded, type-checked, floor-checked and
compiled before it replaces the running one; a broken one is logged, counted and
refused, and the running rules stay. The replaced policy's engine handles are freed once
the last decision using them is done (PolicyHolder).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from escalator import metrics
from escalator.errors import PolicyError, Problem
from escalator.policy import LEXICON_FOLDER, PolicyHolder, load_policy

log = logging.getLogger(__name__)


def fingerprint(directory: Path) -> str:
    """A digest of every rule and lexicon file's name and bytes (links followed, so a
    Kubernetes ConfigMap's symlink swap is seen)."""
    digest = hashlib.sha256()
    files = sorted([*directory.glob("*.yaml"), *(directory / LEXICON_FOLDER).glob("*.yaml")])
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0unreadable"
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: 'reloaded', 'unchanged' or 'failed' (with the problems)."""

    result: str
    version: str
    digest: str
    seconds: float
    problems: tuple[Problem, ...] = field(default=())


class RuleReloader:
    """Reloads one app's rules folder into its PolicyHolder, one reload at a time."""

    def __init__(self, holder: PolicyHolder, directory: Path, interval_seconds: float = 0.0
                 ) -> None:
        self.holder = holder
        self.directory = directory
        self.interval_seconds = interval_seconds
        self._lock = threading.Lock()
        self._seen = fingerprint(directory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self, reason: str = "request", force: bool = True) -> ReloadResult:
        """Load the folder again and swap it in if it is valid and different."""
        with self._lock:
            started = time.perf_counter()
            current = self.holder.current.ruleset
            seen = fingerprint(self.directory)
            if not force and seen == self._seen:
                return ReloadResult("unchanged", current.version, current.digest, 0.0)
            try:
                policy = load_policy(self.directory)
            except PolicyError as exc:
                self._seen = seen  # do not retry (and log) the same broken files every poll
                metrics.RELOADS.labels("failed").inc()
                log.error("rules reload (%s) refused; %s %s keeps running:\n%s", reason,
                          current.name, current.version, exc)
                return ReloadResult("failed", current.version, current.digest,
                                    time.perf_counter() - started, tuple(exc.problems))
            if fingerprint(self.directory) != seen:
                # The folder changed while it was read (a ConfigMap update in progress):
                # what was loaded may mix two versions. Try again on the next poll.
                policy.close()
                return ReloadResult("unchanged", current.version, current.digest,
                                    time.perf_counter() - started)
            self._seen = seen
            if policy.ruleset.digest == current.digest:
                policy.close()
                return ReloadResult("unchanged", current.version, current.digest,
                                    time.perf_counter() - started)
            self.holder.swap(policy)
            ruleset = policy.ruleset
            metrics.set_ruleset(ruleset.name, ruleset.version, ruleset.digest)
            metrics.RELOADS.labels("success").inc()
            seconds = time.perf_counter() - started
            log.info("rules reloaded (%s): %s %s -> %s in %.3f s", reason, current.version,
                     ruleset.name, ruleset.version, seconds)
            return ReloadResult("reloaded", ruleset.version, ruleset.digest, seconds)

    def reload_in_background(self, reason: str, force: bool = True) -> None:
        """Reload on another thread (safe to call from a signal handler)."""
        threading.Thread(target=self.reload, args=(reason, force), daemon=True,
                         name="escalator-reload").start()

    def start(self) -> None:
        """Poll the folder every interval_seconds (no-op when the interval is 0)."""
        if self.interval_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, daemon=True,
                                        name="escalator-rules-poll")
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.reload("poll", force=False)
            except Exception:  # a poll must never die: the next one may succeed
                log.exception("rules poll failed")

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


# Under gunicorn (escalator serve) each worker reloads its own copy of the rules: a
# reload asked of one worker over HTTP is passed to the master, which sends SIGHUP to
# every worker. Set by the serve command's worker hook; None when not under gunicorn.
master_pid: int | None = None


def notify_other_workers() -> None:
    """Ask the gunicorn master to have every worker reload (no-op outside gunicorn)."""
    import os
    import signal

    if master_pid is not None:
        os.kill(master_pid, signal.SIGHUP)
