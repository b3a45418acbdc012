"""Per-caller rate limits, shared by every worker and instance through Redis.

Limits first: a fixed window per caller (the first call starts it), counted in Redis so
that the limit holds across workers and pods. When Redis cannot be asked (down, or its
circuit open), each worker counts on its own: the limit then holds per worker, so a
caller may get up to `workers x instances` times as many calls through until Redis is
back. A caller is a one-way digest of its key (never the key), or its address when auth
is off.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from escalator.errors import StateUnavailable
from escalator.state.store import StateStore

WINDOW_SECONDS = 60.0
# Callers tracked locally while Redis is away; past this, finished windows are dropped.
MAX_LOCAL_CALLERS = 10_000


@dataclass(frozen=True)
class Verdict:
    """Whether a call may go ahead, and if not, in how many seconds it may."""

    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """At most `per_window` calls per caller per window, for one kind of call."""

    def __init__(self, name: str, per_window: int, store: StateStore | None,
                 window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.per_window = per_window
        self.window_seconds = window_seconds
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._local: dict[str, tuple[float, int]] = {}  # caller -> (window end, count)

    def check(self, caller: str) -> Verdict:
        """Count one call by `caller`; allowed unless over the limit in this window."""
        if self.per_window <= 0:
            return Verdict(False, math.ceil(self.window_seconds))
        try:
            if self._store is None:
                raise StateUnavailable("no state store")
            count, ms_left = self._store.count_in_window(
                f"escalator:ratelimit:{self.name}:{{{caller}}}",
                int(self.window_seconds * 1000))
            seconds_left = ms_left / 1000
        except StateUnavailable:
            count, seconds_left = self._count_locally(caller)
        if count <= self.per_window:
            return Verdict(True)
        return Verdict(False, max(1, math.ceil(seconds_left)))

    def _count_locally(self, caller: str) -> tuple[int, float]:
        now = self._clock()
        with self._lock:
            if len(self._local) > MAX_LOCAL_CALLERS:
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
            ends, count = self._local.get(caller, (0.0, 0))
            if ends <= now:
                ends, count = now + self.window_seconds, 0
            count += 1
            self._local[caller] = (ends, count)
        return count, ends - now
