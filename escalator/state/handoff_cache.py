"""Handoffs this pod has seen, for when Redis cannot be read: a conversation already with a
person stays with a person.

Without it, a Redis outage answered every turn of such a conversation statelessly, usually
`keep_with_bot`: the sticky handoff was lost exactly when the bot is least able to cope. A
per-worker dict would miss about half the time with two workers, so the workers of one pod
share a small SQLite file (stdlib sqlite3, in `escalator serve`'s own run folder unless
ESCALATOR_HANDOFF_CACHE says otherwise).

What it holds, per conversation handed to a person: a keyed BLAKE2b signature of the
conversation id (the key is random, made when the service starts and never written down, so
the file names no conversation to anyone else, and a restart starts it empty), the turn of the
handoff, its queue and urgency (labels from the rule set), and when the entry expires (the
state TTL after its last write). Never text.

When it is written: by a turn that leaves a conversation with a person, decided with state or
degraded (a handoff decided during an outage sticks too), with the customer's consent; a
worker that wrote the same handoff less than an eighth of the TTL ago skips it, so the cost
(~45 us) is paid about once per handoff and worker, and any pod that decides a turn of the
conversation learns it. Removed by release, erase and a turn without consent, in this pod:
another pod that saw the conversation keeps its entry until it expires, so during an outage
it may still hand a released conversation to a person, the side a customer would choose to
err on. When it is read: only when a turn is decided without state (~20 us).

Bounded: at most MAX_ENTRIES conversations, give or take the PURGE_EVERY writes between two
trims of each worker (the oldest written go first; about 4 MB on disk), a small page cache
per process, and every SQLite call waits at most BUSY_TIMEOUT_MS for the other workers. It
never fails a turn: a SQLite error is logged, counted and ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalator import metrics

log = logging.getLogger(__name__)

# Enough for the handoffs of a busy pod over several hours (at 500 turns/s, one handoff in
# ten conversations of ten turns: 5 a second, 18,000 an hour), most of them long finished:
# the ones still with a person when Redis fails are the recent ones. About 4 MB on disk.
MAX_ENTRIES = 50_000
# A write holds SQLite's lock for microseconds; a turn never waits longer than this for it.
BUSY_TIMEOUT_MS = 50
# Every this many writes a process trims the table to MAX_ENTRIES and removes what has
# expired, oldest first (writes are in expiry order); a read ignores expired entries anyway.
# Not on every write: a write alone costs ~45 us, with the trimming ~85 us.
PURGE_EVERY = 64
# A process rewrites an entry it wrote itself only after this share of the TTL (the entry
# then expires at most that much before the state would), and remembers its recent writes
# for this many conversations: a conversation with a person costs a write at its handoff,
# not one on every turn.
REFRESH_SHARE = 8
RECENT_WRITES = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handoffs (
    id INTEGER PRIMARY KEY,  -- write order: the oldest go first when full
    conversation BLOB NOT NULL UNIQUE,  -- keyed signature of the conversation id
    expires REAL NOT NULL,
    turn INTEGER,
    queue TEXT,
    urgency TEXT
)
"""

# Connections inherited through a fork are never closed in the child: closing one would drop
# the POSIX locks the child's own connection holds on the same file.
_INHERITED: list[sqlite3.Connection] = []


@dataclass(frozen=True)
class Handoff:
    """A conversation handed to a person: at which turn, to which queue, how urgently."""

    turn: int | None
    queue: str | None
    urgency: str | None


class HandoffCache:
    """The handoffs of the conversations this pod decided, shared by its worker processes."""

    def __init__(self, path: Path | None, *, ttl_seconds: int,
                 max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        """`path` None: in memory, each process its own. Otherwise the file is emptied now
        (entries signed with an earlier run's key could never be read again), its table
        made afresh (so a file left by an earlier version of the table is fine)."""
        self._path = path
        self._ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        # This process's recent writes: signature -> (handoff, when written).
        self._recent: OrderedDict[bytes, tuple[Handoff, float]] = OrderedDict()
        self._writes = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Set up and closed at once: this runs in gunicorn's master before the fork.
            connection = self._open(schema=False)
            try:
                with connection:
                    connection.execute("DROP TABLE IF EXISTS handoffs")
                    connection.execute(_SCHEMA)
            finally:
                connection.close()

    def remember(self, conversation_id: str, handoff: Handoff) -> None:
        """Keep (or refresh) the handoff of a conversation for the state TTL."""
        now = self._clock()
        signature = self._sign(conversation_id)
        recent = self._recent.get(signature)
        if (recent is not None and recent[0] == handoff
                and now - recent[1] < self._ttl_seconds / REFRESH_SHARE):
            return
        written = self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO handoffs (conversation, expires, turn, queue, urgency) "
            "VALUES (?, ?, ?, ?, ?)", (signature, now + self._ttl_seconds, handoff.turn,
                                       handoff.queue, handoff.urgency)), "remember")
        if written is None:
            return
        self._recent[signature] = (handoff, now)
        self._recent.move_to_end(signature)
        if len(self._recent) > RECENT_WRITES:
            self._recent.popitem(last=False)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self._purge(now)

    def _purge(self, now: float) -> None:
        self._run(lambda db: (
            db.execute("DELETE FROM handoffs WHERE id <= (SELECT max(id) FROM handoffs) - ?",
                       (self._max_entries,)),
            db.execute("DELETE FROM handoffs WHERE id IN (SELECT id FROM handoffs ORDER BY id "
                       "LIMIT ?) AND expires <= ?", (PURGE_EVERY * 2, now)),
        ), "trim", transaction=True)

    def forget(self, conversation_id: str) -> None:
        """Drop the conversation's handoff, if any (release, erase, no consent)."""
        signature = self._sign(conversation_id)
        self._recent.pop(signature, None)
        self._run(lambda db: db.execute("DELETE FROM handoffs WHERE conversation = ?",
                                        (signature,)), "forget")

    def recall(self, conversation_id: str) -> Handoff | None:
        """The conversation's handoff if this pod knows one that has not expired."""
        row = self._run(lambda db: db.execute(
            "SELECT turn, queue, urgency FROM handoffs WHERE conversation = ? AND expires > ?",
            (self._sign(conversation_id), self._clock())).fetchone(), "recall")
        return None if row is None else Handoff(*row)

    def __len__(self) -> int:
        """How many entries are kept (expired ones not yet purged included)."""
        count = self._run(lambda db: db.execute("SELECT count(*) FROM handoffs").fetchone(),
                          "count")
        return 0 if count is None else int(count[0])

    def close(self) -> None:
        """Close this process's connection (the file stays for the other workers)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None
            self._pid = -1  # a later call opens a new one

    def _sign(self, conversation_id: str) -> bytes:
        return hashlib.blake2b(conversation_id.encode(), digest_size=16, key=self._key).digest()

    def _open(self, *, schema: bool = True) -> sqlite3.Connection:
        target = ":memory:" if self._path is None else str(self._path)
        # isolation_level None: each statement commits at once, `with connection` groups
        # several; check_same_thread off because the lock serialises every use.
        connection = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA cache_size = -256")  # KiB: the whole table is a few MB
        if self._path is not None:
            # WAL: readers never wait for the writer. synchronous OFF: no fsync per write; a
            # crash of the machine may lose recent entries, and a restart empties it anyway.
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = OFF")
            # The write-ahead log is folded back every 1 MB and cut back to 1 MB after.
            connection.execute("PRAGMA wal_autocheckpoint = 256")
            connection.execute("PRAGMA journal_size_limit = 1048576")
        if schema:
            connection.execute(_SCHEMA)
        return connection

    def _run(self, operation: Callable[[sqlite3.Connection], Any], what: str, *,
             transaction: bool = False) -> Any:
        """Run operation on this process's connection (in one write transaction if asked);
        None on failure."""
        try:
            with self._lock:
                if self._pid != os.getpid():
                    if self._connection is not None:
                        _INHERITED.append(self._connection)
                    self._connection = self._open()
                    self._pid = os.getpid()
                assert self._connection is not None
                if transaction:
                    with self._connection:
                        self._connection.execute("BEGIN IMMEDIATE")
                        return operation(self._connection)
                return operation(self._connection)
        except sqlite3.Error as exc:
            metrics.HANDOFF_CACHE_ERRORS.inc()
            log.warning("handoff cache: %s failed: %s", what, exc)
            return None
