"""Conversation state in Redis: load a conversation, commit a turn, release, erase.

The only module that imports redis. One key per conversation,
`escalator:{<conversation_id>}:conversation` (the braces are a Redis Cluster hash tag: the
key lives in the slot of the conversation id), holding the value escalator.state.codec
describes: the state, the remembered turns and the last 2 decisions.

Concurrency: a turn costs two round trips, a GET-like load and a compare-and-set commit.
Python finds retries at load; the commit only checks that the version is still the one
loaded (if it is, nothing was decided in between, so the load's finding still holds) and
replaces the value. Of two turns of one conversation decided at once, one commits and the
other gets a Conflict and decides again on the new state. A retry of one of the last 2
turns is answered with its stored decision (Snapshot.retry); a retry of an older
remembered turn is refused (Snapshot.superseded; the API answers 409 turn_superseded) and
changes nothing; a remembered turn id sent with other content is refused too
(Snapshot.reused; 422 idempotency_key_reused); a turn id never seen (or forgotten) is
decided as usual.

The key carries a TTL, refreshed by every commit and release. Nothing here stores customer
text: state fields are numbers, labels and signatures, and the pipeline hands over decision
bodies without text. When the customer did not consent, the pipeline simply never calls
commit(), so nothing is written.

Failure handling: every Redis failure becomes StateUnavailable, quickly, so the pipeline can
decide statelessly instead. Each call is bounded by the budget (connect and read timeouts,
no retries) and goes through a circuit breaker (escalator.state.circuit), so a dead or stuck
Redis does not cost every turn its whole budget. The connection pool reconnects by itself.

An unreadable stored value (garbage, a bad deflate stream, bad JSON, fields of the wrong
shape, a key of another Redis type) is not an outage: Redis answers, and trying again will
not help. It is logged (without its content) and counted once per process, its key gets a
TTL if it had none, summary() and release() raise StateUnreadable, and load() hands the
turn a fresh conversation (Snapshot.unreadable) whose commit replaces the value,
compare-and-set like any commit: of two turns replacing it at once, one wins and the other
reloads.

Redis Cluster (`from_url(..., cluster=True)`): every script touches one key, so it runs on
one node; the decision-log stream is one key too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import RedisError as RedisError  # also what embedded.py catches
from redis.retry import Retry

from escalator import metrics
from escalator.config import Config
from escalator.errors import StateUnavailable, StateUnreadable
from escalator.model import ConversationState
from escalator.state.circuit import CircuitBreaker
from escalator.state.codec import (
    Stored,
    claimed_version,
    find_turn,
    pack_conversation,
    pack_decision,
    remembered_turn,
    unpack_conversation,
    unpack_decision,
    unreadable_reason,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Either client: the calls used here are the same on both.
RedisClient = redis.Redis | redis.RedisCluster

# A connection idle this long is PINGed before reuse, so a dead one fails early, not mid-turn.
HEALTH_CHECK_INTERVAL_SECONDS = 30
# A release retried this often against concurrent turns before it gives up.
RELEASE_ATTEMPTS = 5
# How many conversations with an unreadable stored value a process remembers having
# reported (logged and counted), so each is reported once rather than on every call.
REPORTED_UNREADABLE = 1024

# Failures that say Redis is unreachable or not serving, as opposed to an answer it gave
# (WRONGTYPE, out of memory): only these count towards opening the circuit.
OUTAGES: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # also BusyLoadingError: loading its data
    redis.exceptions.TimeoutError,
    ClusterError,  # ClusterDownError, MasterDownError
    TryAgainError,  # a slot being migrated
    ReadOnlyError,  # a replica that was a master before a failover
    RedisClusterException,  # no node answers the topology query; not a RedisError
)

# How many recent turns keep their decision for idempotent retries. A chatbot platform
# retries a turn within seconds, before more than a turn or two has followed it; every
# stored decision costs ~300 bytes of Redis memory per conversation (bench/perf/load.py).
DEFAULT_KEPT_DECISIONS = 2
# How many recent turn ids are remembered: a retry of one of them that no longer has its
# decision is refused (Snapshot.superseded) rather than decided a second time.
DEFAULT_REMEMBERED_TURNS = 16


def conversation_key(conversation_id: str) -> str:
    """The key of a conversation's stored value."""
    return f"escalator:{{{conversation_id}}}:conversation"


@dataclass(frozen=True)
class Snapshot:
    """A conversation as loaded: its state (None if unknown), its version, and the stored
    decision if the turn is a retry."""

    state: ConversationState | None
    version: int
    # The stored decision body if this turn_id was already decided: the turn is a retry,
    # answered with it (idempotent retries).
    retry: dict[str, Any] | None
    # True if this turn_id was decided, but newer turns followed and its decision is gone.
    superseded: bool = False
    # True if this turn_id was decided with other content: the id was reused for another
    # turn (neither retry nor superseded is set then).
    reused: bool = False
    # What the next commit carries over: signatures of the remembered turn ids and the
    # stored decision bodies (compact JSON) of the last turns, newest first.
    turns: tuple[str, ...] = ()
    decisions: tuple[bytes, ...] = ()
    # True if the stored value could not be read: state is None, and the next commit
    # replaces the value (unless a readable one has replaced it since: a Conflict).
    unreadable: bool = False


@dataclass(frozen=True)
class Committed:
    """The state and the decision were written; the state now has this version."""

    version: int


@dataclass(frozen=True)
class Conflict:
    """Another writer got there first: the stored version is this one; nothing was written."""

    version: int


# KEYS: the conversation. Returns {stored value} ({false} if there is none), or {false, 1}
# if the key holds another Redis type (pcall: a WRONGTYPE error would otherwise fail every
# turn).
_LOAD = """
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then
  return {false, 1}
end
return {value}
"""

# KEYS: the conversation. ARGV: expected version, new value (its version is expected + 1),
# ttl_seconds, and 'replace' if the loaded value was unreadable. Compare and set: returns
# {1, current version} (conflict: nothing written) or {2, new version}.
#
# Replacing an unreadable value (garbage, or a key of another type) writes the new value over
# it (SET replaces a key of any type), unless a readable value of another version is there by
# now: then another turn replaced it first (with expected + 1), and this one must reload.
_COMMIT = """
if ARGV[4] == 'replace' then
  if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
    local now = tonumber(string.match(redis.call('GETRANGE', KEYS[1], 0, 31), '^3:(%d+):'))
    if now and now ~= tonumber(ARGV[1]) then
      return {1, now}
    end
  end
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return {2, tonumber(ARGV[1]) + 1}
end
local head = redis.call('GETRANGE', KEYS[1], 0, 31)
local current = 0
if head ~= '' then
  current = tonumber(string.match(head, '^3:(%d+):'))
  if not current then
    return redis.error_reply('ERR not an escalator conversation value: ' .. KEYS[1])
  end
end
if current ~= tonumber(ARGV[1]) then
  return {1, current}
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return {2, current + 1}
"""

# KEYS: the conversation. ARGV: ttl_seconds. An unreadable value that no turn replaces must
# not stay for ever: a key without a TTL gets one.
_EXPIRE_UNREADABLE = """
if redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""

def _check_turn_id(turn_id: str) -> None:
    # Turn ids are validated by the API; this guards other callers of the store.
    if not turn_id or any(c.isspace() for c in turn_id):
        raise ValueError(f"turn id must be non-empty and contain no whitespace: {turn_id!r}")


# INCR, and start the window on its first event (also if a key somehow lost its expiry).
_COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


class StateStore:
    """Loads and atomically commits conversation state and decided turns in Redis."""

    def __init__(self, client: RedisClient | Callable[[], RedisClient], *,
                 ttl_seconds: int = Config.state_ttl_seconds,
                 kept_decisions: int = DEFAULT_KEPT_DECISIONS,
                 remembered_turns: int = DEFAULT_REMEMBERED_TURNS,
                 breaker: CircuitBreaker | None = None) -> None:
        """`client` may be a factory: the client is then made on the first call (a cluster
        client queries the topology as it is made, which must not stop the service starting
        while Redis is down, and is best made in each worker rather than before the fork)."""
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        if kept_decisions < 1:
            raise ValueError("kept_decisions must be at least 1")
        if remembered_turns < kept_decisions:
            raise ValueError("remembered_turns must be at least kept_decisions")
        self._client_or_none: RedisClient | None = None
        self._client_pid = 0  # the process that made _client_or_none (with a factory)
        self._factory: Callable[[], RedisClient] | None = None
        self._factory_lock = threading.Lock()
        if isinstance(client, redis.Redis | redis.RedisCluster):
            self._client_or_none = _checked(client)
        else:
            self._factory = client
        self._ttl_seconds = ttl_seconds
        self._kept_decisions = kept_decisions
        self._remembered_turns = remembered_turns
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        # Conversations whose unreadable value this process has already reported, oldest
        # first (bounded: only the log and the counter depend on it).
        self._reported: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_url(cls, url: str, *, ttl_seconds: int = Config.state_ttl_seconds,
                 timeout_seconds: float = Config.redis_timeout_ms / 1000,
                 kept_decisions: int = DEFAULT_KEPT_DECISIONS,
                 remembered_turns: int = DEFAULT_REMEMBERED_TURNS, cluster: bool = False,
                 breaker: CircuitBreaker | None = None) -> StateStore:
        """A store on the Redis at url (redis://, rediss://, unix://), failing within the budget;
        cluster=True: on the Redis Cluster that url's node belongs to (no unix://)."""
        # A stuck Redis must not hold a turn longer than the budget: the caller degrades to a
        # stateless decision instead, so no retries either.
        options: dict[str, Any] = {
            "socket_connect_timeout": timeout_seconds,
            "socket_timeout": timeout_seconds,
            "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
            "client_name": "escalator",
        }
        if not cluster:
            def single() -> RedisClient:
                # One connection per process, made in the process that uses it (see
                # _client): a worker decides one turn at a time, and taking a connection
                # from a pool and giving it back cost ~15 us per command (two a turn).
                # It reconnects by itself after a failure, as a pooled one does.
                return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0),
                                            retry_on_error=[], single_connection_client=True,
                                            **options)

            return cls(single, ttl_seconds=ttl_seconds, kept_decisions=kept_decisions,
                       remembered_turns=remembered_turns, breaker=breaker)
        if url.startswith("unix:"):
            raise ValueError("a Redis Cluster is reached over TCP (redis:// or rediss://)")

        def connect() -> RedisClient:
            # Retries 0: the cluster client still follows MOVED/ASK redirections (a slot that
            # moved), and refreshes its slot map after a connection error for the next call.
            return redis.RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)

        return cls(connect, ttl_seconds=ttl_seconds, kept_decisions=kept_decisions,
                   remembered_turns=remembered_turns, breaker=breaker)

    @property
    def _client(self) -> RedisClient:
        client = self._client_or_none
        if client is None or (self._factory is not None and self._client_pid != os.getpid()):
            # First use, or first use in a fork (a gunicorn worker): a client made by the
            # factory is this process's own, never a connection shared with the parent.
            assert self._factory is not None
            with self._factory_lock:
                if self._client_or_none is None or self._client_pid != os.getpid():
                    self._client_or_none = _checked(self._factory())
                    self._client_pid = os.getpid()
                client = self._client_or_none
        return client

    @property
    def circuit_open(self) -> bool:
        """True while the circuit breaker fails calls fast (Redis found down)."""
        return self.breaker.is_open

    def load(self, conversation_id: str, turn_id: str | None = None,
             content: str | None = None) -> Snapshot:
        """The conversation's state and version, and the stored decision if turn_id was decided
        (or superseded=True if it was decided before the last few turns, reused=True if it was
        decided with content other than `content`, a signature as Turn.content_signature
        makes). An unreadable stored value loads as unreadable=True with no state: the turn
        starts afresh."""
        try:
            stored = self._stored(conversation_id)
        except StateUnreadable as exc:
            return Snapshot(state=None, version=exc.version, retry=None, unreadable=True)
        if stored is None:
            return Snapshot(state=None, version=0, retry=None)
        retry, superseded, reused = None, False, False
        position, seen = find_turn(stored.turns, turn_id) if turn_id is not None else (None, None)
        if position is not None and content is not None and seen and seen != content:
            reused = True
        elif position is not None:
            if position < len(stored.decisions):
                retry = self._decoded(stored.decisions[position], conversation_id)
            # A stored decision that cannot be read is as good as gone: the retry is refused
            # (nothing changes) rather than decided, and so counted, a second time.
            superseded = retry is None
        return Snapshot(state=stored.state, version=stored.version, retry=retry,
                        superseded=superseded, reused=reused, turns=stored.turns,
                        decisions=stored.decisions)

    def commit(self, conversation_id: str, loaded: Snapshot, state: ConversationState,
               turn_id: str, decision: Mapping[str, Any] | bytes,
               content: str | None = None) -> Committed | Conflict:
        """Write state and decision (its body, or that body already as compact JSON), the turn
        (and the signature of its content, if given) now the newest remembered, if the version
        is still the loaded one (then nothing was decided since, so no retry of turn_id can
        have been either); a loaded value that was unreadable is replaced, unless another turn
        replaced it first."""
        _check_turn_id(turn_id)
        packed = decision if isinstance(decision, bytes) else pack_decision(decision)
        remembered = remembered_turn(turn_id, content)
        written = self._write(
            conversation_id, loaded.version, state,
            (remembered, *loaded.turns[:self._remembered_turns - 1]),
            (packed, *loaded.decisions[:self._kept_decisions - 1]), replace=loaded.unreadable)
        if loaded.unreadable and isinstance(written, Committed):
            self._reported.pop(conversation_id, None)  # a new corruption is news again
        return written

    def summary(self, conversation_id: str) -> tuple[ConversationState, int] | None:
        """The stored state and its version, or None if the conversation is unknown
        (StateUnreadable if the stored value cannot be read)."""
        stored = self._stored(conversation_id)
        return None if stored is None else (stored.state, stored.version)

    def erase(self, conversation_id: str) -> bool:
        """Delete every key of the conversation; True if anything existed."""
        deleted = self._call(lambda: self._client.delete(conversation_key(conversation_id)))
        return bool(deleted)

    def release(self, conversation_id: str,
                released: Callable[[ConversationState], ConversationState]
                ) -> ConversationState | None:
        """Hand the conversation back to the bot: its state becomes `released(state)` (what
        a release resets is the pipeline's to say), version bumped, TTL refreshed; None if
        it is unknown (StateUnreadable if it cannot be read)."""
        def change(state: ConversationState) -> tuple[ConversationState, ConversationState]:
            after = released(state)
            return after, after

        return self.update(conversation_id, change)

    def update(self, conversation_id: str,
               change: Callable[[ConversationState], tuple[ConversationState | None, T]]
               ) -> T | None:
        """Change the conversation's state with `change` (which says what to write, None:
        nothing, and what to answer) in one compare-and-set commit, tried again on the
        fresh state if a turn got there first; None if the conversation is unknown. An
        exception from `change` leaves everything as it was (StateUnreadable if the stored
        value cannot be read)."""
        for _ in range(RELEASE_ATTEMPTS):
            stored = self._stored(conversation_id)
            if stored is None:
                return None
            state, answer = change(stored.state)
            if state is None:
                return answer
            written = self._write(conversation_id, stored.version, state,
                                  stored.turns[:self._remembered_turns],
                                  stored.decisions[:self._kept_decisions])
            if isinstance(written, Committed):
                return answer
        raise StateUnavailable(f"could not update {conversation_id!r}: "
                               f"{RELEASE_ATTEMPTS} conflicting updates in a row")

    def _stored(self, conversation_id: str) -> Stored | None:
        """The conversation as stored, or None if it is unknown; StateUnreadable (logged and
        counted once per value and process) if it cannot be read."""
        value, *wrong_type = self._run(_LOAD, conversation_id)
        if wrong_type:
            raise self._unreadable(conversation_id, "type", 0)
        if value is None:
            return None
        try:
            return unpack_conversation(value)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError,
                zlib.error) as exc:
            raise self._unreadable(conversation_id, unreadable_reason(exc),
                                   claimed_version(value)) from exc

    def _unreadable(self, conversation_id: str, reason: str, version: int) -> StateUnreadable:
        """The error for an unreadable stored value; the first time this process meets it,
        it is logged (without its content), counted, and its keys given a TTL if they had
        none (a value no turn replaces must not stay for ever)."""
        if conversation_id not in self._reported:
            self._reported[conversation_id] = None
            if len(self._reported) > REPORTED_UNREADABLE:
                self._reported.popitem(last=False)
            metrics.STATE_UNREADABLE.labels(reason).inc()
            log.warning("conversation %s: its stored state cannot be read (%s); the next turn "
                        "starts it afresh", conversation_id, reason)
            with contextlib.suppress(StateUnavailable):
                self._run(_EXPIRE_UNREADABLE, conversation_id, self._ttl_seconds)
        return StateUnreadable(conversation_id, reason, version)

    def _write(self, conversation_id: str, expected_version: int, state: ConversationState,
               turns: Sequence[str], decisions: Sequence[bytes], *,
               replace: bool = False) -> Committed | Conflict:
        value = pack_conversation(expected_version + 1, state, turns, decisions)
        outcome, version = self._run(_COMMIT, conversation_id, expected_version, value,
                                     self._ttl_seconds, "replace" if replace else "")
        return Committed(int(version)) if outcome == 2 else Conflict(int(version))

    def _decoded(self, stored: bytes, conversation_id: str) -> dict[str, Any] | None:
        """A stored decision's body, or None if it cannot be read (logged and counted)."""
        try:
            return unpack_decision(stored)
        except ValueError:
            self._unreadable(conversation_id, "record", 0)
            return None

    def append_decision(self, key: str, record: bytes, max_length: int) -> None:
        """Add a decision record to a capped stream (the decision log); one round trip."""
        # approximate=True lets Redis trim whole nodes: the cap is kept cheaply, give or
        # take a few records.
        self._call(lambda: self._client.xadd(key, {"r": record}, maxlen=max_length,
                                             approximate=True))

    def ping(self) -> bool:
        """True if Redis answers within the budget (every node of a cluster); False at once
        while the circuit is open, and a probe once its cool-down has passed."""
        try:
            return bool(self._call(lambda: self._client.ping()))
        except StateUnavailable:
            return False

    def close(self) -> None:
        """Close the connections; the store is not used afterwards."""
        if self._client_or_none is not None:
            self._client_or_none.close()

    def count_in_window(self, key: str, window_ms: int) -> tuple[int, int]:
        """Count one event under `key` in a fixed window of window_ms that the window's
        first event starts: the events counted in the window so far, and the ms left of it
        (rate limits; one round trip)."""
        count, ms_left = self._eval(_COUNT_IN_WINDOW, (key,), window_ms)
        return int(count), int(ms_left)

    def _run(self, script: str, conversation_id: str, *args: str | bytes | int) -> Any:
        """Run a script on the conversation's keys: EVALSHA, one round trip once cached."""
        return self._eval(script, (conversation_key(conversation_id),), *args)

    def _eval(self, script: str, keys: Sequence[str], *args: str | bytes | int) -> Any:
        """Run a script on these keys: EVALSHA, one round trip once cached."""
        sha = _script_sha(script)

        def run() -> Any:
            try:
                return self._client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server (or after SCRIPT FLUSH): EVAL also caches it.
                return self._client.eval(script, len(keys), *keys, *args)

        return self._call(run)

    def _call(self, operation: Callable[[], Any]) -> Any:
        """Run one Redis operation through the circuit breaker, turning any Redis failure
        into StateUnavailable."""
        if not self.breaker.allow():
            raise StateUnavailable("state store unavailable: circuit open after repeated "
                                   "failures (failing fast until the next probe)")
        try:
            result = operation()
        except OUTAGES as exc:
            self.breaker.failed()
            raise StateUnavailable(f"state store unavailable: {type(exc).__name__}: {exc}") \
                from exc
        except RedisError as exc:
            self.breaker.succeeded()  # Redis answered, if not as hoped: it is up
            raise StateUnavailable(f"state store unavailable: {type(exc).__name__}: {exc}") \
                from exc
        self.breaker.succeeded()
        return result


def _checked(client: RedisClient) -> RedisClient:
    # Stored decisions are binary (deflated): a decoding client would corrupt them.
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("StateStore needs a client with decode_responses=False")
    return client


_SCRIPT_SHAS: dict[str, str] = {}


def _script_sha(script: str) -> str:
    sha = _SCRIPT_SHAS.get(script)
    if sha is None:
        sha = _SCRIPT_SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


def shut_down(client: redis.Redis) -> bool:
    """Ask the server behind `client` to save its data and stop; False if it did not answer
    (the embedded Redis's owner then signals the process)."""
    # Without retries: the server closing the connection is SHUTDOWN's success, and the
    # default policy would spend seconds reconnecting to a socket that is gone.
    client.set_retry(Retry(NoBackoff(), 0))
    try:
        client.shutdown()
    except RedisError:
        return False
    return True
