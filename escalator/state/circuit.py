"""The circuit breaker of the state store: a dead or stuck Redis must not cost every turn
its whole budget.

After CIRCUIT_FAILURE_THRESHOLD consecutive outages the store fails fast for
CIRCUIT_COOLDOWN_SECONDS, then lets one call through as a probe (half-open); its success
closes the circuit, its failure starts another cool-down. No Redis here: the store tells
the breaker what happened to each call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from escalator import metrics

log = logging.getLogger(__name__)

# Consecutive outages that open the circuit, and how long it then fails fast. Three in a
# row is no accident (one timeout can be); two seconds spare a dead Redis all but one
# call per cool-down and bound recovery once it is back.
CIRCUIT_FAILURE_THRESHOLD = 3
CIRCUIT_COOLDOWN_SECONDS = 2.0


class CircuitBreaker:
    """Counts consecutive outages; once open, refuses calls until a cool-down has passed and
    then admits one probe at a time (half-open) until a call succeeds. Thread-safe.

    Its state is per process (a gunicorn worker learns of an outage by itself); a forked
    process starts closed, and publishes escalator_state_circuit_open on its first call.
    """

    def __init__(self, *, threshold: int = CIRCUIT_FAILURE_THRESHOLD,
                 cooldown_seconds: float = CIRCUIT_COOLDOWN_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown_seconds <= 0:
            raise ValueError("cooldown_seconds must be positive")
        self.threshold = threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._pid = -1  # no process has published its state yet
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # None: closed
        # While a probe is out, other calls are refused until it reports or this passes
        # (a probe that never reports must not keep the circuit open for ever).
        self._probe_until = 0.0

    @property
    def is_open(self) -> bool:
        """True while calls are refused or only probes go through (open or half-open)."""
        return self._opened_at is not None

    def allow(self) -> bool:
        """True if a call may go to Redis now; False: fail fast."""
        if os.getpid() != self._pid:
            # First call in this process (or in a fork that inherited a parent's state).
            self._reset()
            self._pid = os.getpid()
            metrics.STATE_CIRCUIT_OPEN.set(0)
        if self._opened_at is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock()
            if now < self._opened_at + self.cooldown_seconds or now < self._probe_until:
                return False
            self._probe_until = now + self.cooldown_seconds  # this call is the probe
            return True

    def succeeded(self) -> None:
        """Redis answered: the circuit closes."""
        if self._failures == 0 and self._opened_at is None:
            return  # the common case, without the lock
        with self._lock:
            self._failures = 0
            if self._opened_at is None:
                return
            down = self._clock() - self._opened_at
            self._opened_at = None
            self._probe_until = 0.0
        metrics.STATE_CIRCUIT_OPEN.set(0)
        log.warning("state store: Redis answers again; circuit closed (open for %.1f s)", down)

    def failed(self) -> None:
        """Redis was unreachable or did not answer in time."""
        with self._lock:
            self._failures += 1
            if self._opened_at is not None:
                # A failed probe (or a call that started before the circuit opened).
                self._opened_at = self._clock()
                self._probe_until = 0.0
                return
            if self._failures < self.threshold:
                return
            self._opened_at = self._clock()
            failures = self._failures
        metrics.STATE_CIRCUIT_OPEN.set(1)
        log.warning("state store: %d consecutive Redis failures; circuit open, failing fast "
                    "for %.1f s between probes", failures, self.cooldown_seconds)
