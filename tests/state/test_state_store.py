"""The state store against a real Redis: what a turn loads and commits, what a retry finds, what
release and erase do."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from redis.crc import key_slot
from support.servers import wait_for

from escalator.errors import StateUnavailable, StateUnreadable
from escalator.model import ConversationState
from escalator.state.codec import _ZDICT, pack_conversation, turn_signature, unpack_conversation
from escalator.state.store import (
    RELEASE_ATTEMPTS,
    Committed,
    Conflict,
    Snapshot,
    StateStore,
    conversation_key,
)

NewId = Callable[..., str]
MakeDecision = Callable[..., dict[str, Any]]

UNKNOWN = Snapshot(state=None, version=0, retry=None)


def a_state(turn_index: int = 1, **changes: Any) -> ConversationState:
    """A state as the scorers would leave it after `turn_index` turns (no text in it)."""
    return ConversationState(
        turn_index=turn_index, started_at=1764255845.0, updated_at=1764255845.0 + turn_index,
        scoring={"frustration_mean": 0.4, "signatures": [184467440737, 92233720368],
                 "prompts": ["ask_order_number"]},
    ).evolve(**changes)


def escalated_state(turn_index: int) -> ConversationState:
    return a_state(turn_index, escalated=True, escalated_turn=turn_index,
                   handoff_queue="support", handoff_urgency="high")


def handed_back(state: ConversationState) -> ConversationState:
    """A release that resets the handoff only (the pipeline's also resets the scorers')."""
    return state.evolve(escalated=False, escalated_turn=None, handoff_queue=None,
                        handoff_urgency=None)


def seen(snapshot: Snapshot) -> tuple[Any, ...]:
    """What a turn learns from a load: state, version, retry, superseded."""
    return snapshot.state, snapshot.version, snapshot.retry, snapshot.superseded


def decide(store: StateStore, cid: str, turn_id: str, state: ConversationState,
           decision: dict[str, Any]) -> Committed | Conflict:
    """A turn as the pipeline takes it: load (not a retry), then commit."""
    snapshot = store.load(cid, turn_id)
    assert snapshot.retry is None and not snapshot.superseded
    return store.commit(cid, snapshot, state, turn_id, decision)


def decide_turns(store: StateStore, cid: str, count: int,
                 make_decision: MakeDecision) -> list[dict[str, Any]]:
    """Decide turns t-1 .. t-<count> one after the other; their decisions."""
    decisions = [make_decision(cid, f"t-{n}", n) for n in range(1, count + 1)]
    for n, decision in enumerate(decisions, start=1):
        assert decide(store, cid, f"t-{n}", a_state(n), decision) == Committed(n)
    return decisions


def stored(raw: redis.Redis, cid: str) -> tuple[bytes | None, int]:
    """The raw stored value and its TTL: what a call that changes nothing leaves alone."""
    value = raw.get(conversation_key(cid))
    assert value is None or isinstance(value, bytes)
    return value, int(raw.ttl(conversation_key(cid)))


# -- Turns ------------------------------------------------------------------------------------

def test_unknown_conversation_loads_empty(store: StateStore, new_conversation_id: NewId) -> None:
    assert store.load(new_conversation_id(), "t-1") == UNKNOWN
    assert store.load(new_conversation_id()) == UNKNOWN


def test_commit_then_load_round_trip(store: StateStore, new_conversation_id: NewId,
                                     make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    state = escalated_state(1)
    decision = make_decision(cid, "t-1", 1)

    assert decide(store, cid, "t-1", state, decision) == Committed(version=1)

    assert seen(store.load(cid, "t-2")) == (state, 1, None, False)
    assert seen(store.load(cid)) == (state, 1, None, False)
    assert store.load(cid, "t-1").retry == decision
    assert store.summary(cid) == (state, 1)


def test_a_fresh_state_round_trips_too(store: StateStore, new_conversation_id: NewId,
                                       make_decision: MakeDecision) -> None:
    # Fields equal to the defaults are not stored; they must still come back.
    cid = new_conversation_id()
    decide(store, cid, "t-1", ConversationState(), make_decision(cid, "t-1", 1))
    assert seen(store.load(cid, "t-2")) == (ConversationState(), 1, None, False)


def test_a_retry_finds_the_stored_decision_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    first = make_decision(cid, "t-1", 1)
    # A retry that arrives while the first attempt is still being decided loads first.
    racing = store.load(cid, "t-1")
    assert decide(store, cid, "t-1", a_state(1), first) == Committed(1)
    raw.expire(conversation_key(cid), 500)
    before = stored(raw, cid)

    retried = store.load(cid, "t-1")
    assert seen(retried) == (a_state(1), 1, first, False)
    # The racing retry was decided again (a new decision id): its commit must not land...
    second = make_decision(cid, "t-1", 1)
    assert second["decision_id"] != first["decision_id"]
    assert store.commit(cid, racing, a_state(2), "t-1", second) == Conflict(1)
    # ... and once it loads again, it finds the first decision too.
    assert store.load(cid, "t-1").retry == first

    value, ttl = stored(raw, cid)
    assert value == before[0]
    assert ttl <= 500
    assert store.summary(cid) == (a_state(1), 1)


def test_a_stale_snapshot_conflicts_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide(store, cid, "t-1", a_state(1), make_decision(cid, "t-1", 1))
    stale = store.load(cid, "t-3")
    decide(store, cid, "t-2", a_state(2), make_decision(cid, "t-2", 2))
    before = stored(raw, cid)

    assert store.commit(cid, stale, a_state(3), "t-3", make_decision(cid, "t-3", 3)) \
        == Conflict(2)
    invented = Snapshot(state=a_state(2), version=5, retry=None)
    assert store.commit(cid, invented, a_state(3), "t-3", make_decision(cid, "t-3", 3)) \
        == Conflict(2)

    assert stored(raw, cid)[0] == before[0]
    assert seen(store.load(cid, "t-3")) == (a_state(2), 2, None, False)


def test_the_first_commit_must_come_from_an_empty_snapshot(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    invented = Snapshot(state=None, version=3, retry=None)
    assert store.commit(cid, invented, a_state(1), "t-1", make_decision(cid, "t-1", 1)) \
        == Conflict(0)
    assert raw.exists(conversation_key(cid)) == 0
    assert store.load(cid, "t-1") == UNKNOWN


def test_concurrent_turns_lose_no_update(redis_url: str, new_conversation_id: NewId,
                                         make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, timeout_seconds=2.0, kept_decisions=64,
                                remembered_turns=64)
    turn_ids = [f"t-{n:02d}" for n in range(50)]
    conflicts = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def take_turn(turn_id: str) -> None:
        # What the pipeline does: load, compute the next state, commit; on Conflict, again.
        while True:
            snapshot = store.load(cid, turn_id)
            # A Conflict wrote nothing, so this turn was never decided.
            assert snapshot.retry is None and not snapshot.superseded
            state = snapshot.state or ConversationState()
            turns_seen = [*state.scoring.get("seen", []), turn_id]
            result = store.commit(cid, snapshot,
                                  state.evolve(turn_index=state.turn_index + 1,
                                               scoring={"seen": turns_seen}),
                                  turn_id, make_decision(cid, turn_id, len(turns_seen)))
            if isinstance(result, Committed):
                assert result.version == snapshot.version + 1
                return
            assert isinstance(result, Conflict)
            assert result.version > snapshot.version
            with lock:
                conflicts[0] += 1

    def worker(mine: list[str]) -> None:
        try:
            for turn_id in mine:
                take_turn(turn_id)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(turn_ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    found = store.summary(cid)
    assert found is not None
    state, version = found
    assert version == 50
    assert state.turn_index == 50
    assert sorted(state.scoring["seen"]) == turn_ids  # every turn's update survived
    for turn_id in turn_ids:
        retry = store.load(cid, turn_id).retry
        assert retry is not None
        assert retry["turn_id"] == turn_id
    store.close()
    # Not an assertion on timing, just that the test exercised contention at all.
    print(f"{conflicts[0]} conflicts retried")


def test_ttl_is_set_and_refreshed_every_turn(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    decide(store, cid, "t-1", a_state(1), make_decision(cid, "t-1", 1))
    assert 990 <= raw.ttl(conversation_key(cid)) <= 1000

    raw.expire(conversation_key(cid), 20)
    decide(store, cid, "t-2", a_state(2), make_decision(cid, "t-2", 2))
    assert 990 <= raw.ttl(conversation_key(cid)) <= 1000
    store.close()


def test_state_expires(redis_url: str, new_conversation_id: NewId,
                       make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1)
    decide(store, cid, "t-1", a_state(1), make_decision(cid, "t-1", 1))
    assert store.load(cid, "t-1").version == 1
    wait_for(lambda: store.load(cid, "t-1") == UNKNOWN, 5, "the state expires", interval=0.05)
    store.close()


def test_erase_removes_every_key_of_the_conversation_and_only_those(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    gone, kept = new_conversation_id(), new_conversation_id()
    for cid in (gone, kept):
        decide(store, cid, "t-1", a_state(1), make_decision(cid, "t-1", 1))

    assert store.erase(gone) is True

    assert list(raw.scan_iter(match=f"escalator:{{{gone}}}:*")) == []
    assert store.load(gone, "t-1") == UNKNOWN
    assert store.erase(gone) is False
    assert raw.exists(conversation_key(kept)) == 1
    assert store.load(kept, "t-1").version == 1


# -- Release ----------------------------------------------------------------------------------

def test_release_hands_the_conversation_back_to_the_bot(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    decision = make_decision(cid, "t-3", 3)
    decide(store, cid, "t-3", escalated_state(3), decision)
    before_release = store.load(cid, "t-4")
    raw.expire(conversation_key(cid), 20)

    released = store.release(cid, handed_back)

    assert released == escalated_state(3).evolve(
        escalated=False, escalated_turn=None, handoff_queue=None, handoff_urgency=None)
    assert released == a_state(3)
    assert store.summary(cid) == (released, 2)
    assert 990 <= raw.ttl(conversation_key(cid)) <= 1000
    assert store.load(cid, "t-3").retry == decision  # a retry still finds its decision
    # A turn decided on the pre-release version must not overwrite the release.
    assert store.commit(cid, before_release, escalated_state(3), "t-4",
                        make_decision(cid, "t-4", 4)) == Conflict(2)
    assert store.summary(cid) == (released, 2)
    store.close()


def test_release_of_an_unknown_conversation(store: StateStore, raw: redis.Redis,
                                            new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    assert store.release(cid, handed_back) is None
    assert raw.exists(conversation_key(cid)) == 0


def test_a_release_retries_a_conflict_and_gives_up_after_release_attempts(
        store: StateStore, redis_url: str, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    # Real conflicts: between the release's read and its compare-and-set, another client
    # commits a turn of the conversation (`released` runs in between).
    cid = new_conversation_id()
    decide(store, cid, "t-1", escalated_state(1), make_decision(cid, "t-1", 1))
    rival = StateStore.from_url(redis_url, timeout_seconds=1.0)
    rival_turns = 0

    def released_while_a_turn_commits(state: ConversationState, times: int) -> ConversationState:
        nonlocal rival_turns
        if rival_turns < times:
            rival_turns += 1
            index = state.turn_index + 1
            turn = f"t-{index}"
            assert isinstance(decide(rival, cid, turn, escalated_state(index),
                                     make_decision(cid, turn, index)), Committed)
        return handed_back(state)

    try:
        # One conflict: read again, and the release goes through on the newer state.
        released = store.release(cid, lambda state: released_while_a_turn_commits(state, 1))
        assert released == handed_back(escalated_state(2))
        assert store.summary(cid) == (released, 3)

        # A turn committing before every try: after RELEASE_ATTEMPTS, StateUnavailable
        # (the API's 503 state_unavailable), and the release wrote nothing.
        decide(store, cid, "t-3", escalated_state(3), make_decision(cid, "t-3", 3))
        rival_turns = 0
        with pytest.raises(StateUnavailable, match=f"{RELEASE_ATTEMPTS} conflicting updates"):
            store.release(cid, lambda state: released_while_a_turn_commits(
                state, RELEASE_ATTEMPTS))
        assert rival_turns == RELEASE_ATTEMPTS
        state, version = store.summary(cid) or (None, 0)
        assert version == 4 + RELEASE_ATTEMPTS and state is not None and state.escalated
    finally:
        rival.close()


# -- Remembered turns -------------------------------------------------------------------------

def test_retries_of_the_last_two_turns_find_their_decisions(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decisions = decide_turns(store, cid, 10, make_decision)
    before = stored(raw, cid)

    assert seen(store.load(cid, "t-10")) == (a_state(10), 10, decisions[9], False)
    assert seen(store.load(cid, "t-9")) == (a_state(10), 10, decisions[8], False)

    assert stored(raw, cid)[0] == before[0]
    assert store.summary(cid) == (a_state(10), 10)


def test_a_retry_of_an_older_turn_is_superseded_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 10, make_decision)
    before = stored(raw, cid)

    # The third most recent: remembered, but its decision is gone.
    assert seen(store.load(cid, "t-8")) == (a_state(10), 10, None, True)
    assert store.load(cid, "t-1").superseded  # the 10th most recent: still remembered
    assert not store.load(cid, "t-11").superseded

    assert stored(raw, cid)[0] == before[0]


def test_a_turn_id_sent_with_other_content_is_reused_not_a_retry(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    for n in range(1, 5):
        snapshot = store.load(cid, f"t-{n}", f"c0ffee0{n}")
        store.commit(cid, snapshot, a_state(n), f"t-{n}", make_decision(cid, f"t-{n}", n),
                     f"c0ffee0{n}")

    same = store.load(cid, "t-4", "c0ffee04")
    assert same.retry is not None and not same.reused
    other = store.load(cid, "t-4", "deadbeef")
    assert (other.retry, other.superseded, other.reused) == (None, False, True)
    older = store.load(cid, "t-1", "deadbeef")  # superseded, but reused says more
    assert (older.superseded, older.reused) == (False, True)
    assert store.load(cid, "t-1", "c0ffee01").superseded
    assert store.load(cid, "t-4").retry is not None  # no content to compare: a retry
    with pytest.raises(ValueError):
        store.commit(cid, same, a_state(5), "t-5", make_decision(cid, "t-5", 5), "not hex")


def test_turns_remembered_before_content_was_signed_are_retries_whatever_the_content(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decisions = decide_turns(store, cid, 3, make_decision)  # no content signature
    assert store.load(cid, "t-3", "deadbeef").retry == decisions[2]
    assert store.load(cid, "t-1", "deadbeef").superseded


def test_turn_ids_are_remembered_for_the_last_sixteen_turns(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 20, make_decision)

    assert store.load(cid, "t-5").superseded  # the 16th most recent
    forgotten = store.load(cid, "t-4")  # the 17th: decided as a new turn
    assert seen(forgotten) == (a_state(20), 20, None, False)
    again = make_decision(cid, "t-4", 21)
    assert store.commit(cid, forgotten, a_state(21), "t-4", again) == Committed(21)
    assert store.load(cid, "t-4").retry == again
    assert store.load(cid, "t-6").superseded  # now the 16th most recent
    assert not store.load(cid, "t-5").superseded


# -- What is stored ---------------------------------------------------------------------------

def test_keys_use_the_hash_tag_form(store: StateStore, raw: redis.Redis,
                                    new_conversation_id: NewId,
                                    make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide(store, cid, "t-1", a_state(1), make_decision(cid, "t-1", 1))

    keys = sorted(raw.scan_iter(match=f"escalator:*{cid}*"))
    assert keys == [f"escalator:{{{cid}}}:conversation".encode()]
    # The tag puts the conversation's key in the cluster slot of the id itself.
    assert key_slot(conversation_key(cid).encode()) == key_slot(cid.encode())


def test_the_stored_value_is_compact_and_holds_no_plain_turn_id(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    turn_ids = ["turn-7f3a9c2e41d8", "turn-0b6e5d18a3f2"]
    decisions = [make_decision(cid, turn_id, n) for n, turn_id in enumerate(turn_ids, start=1)]
    for n, (turn_id, decision) in enumerate(zip(turn_ids, decisions, strict=True), start=1):
        decide(store, cid, turn_id, a_state(n), decision)

    value = raw.get(conversation_key(cid))
    assert isinstance(value, bytes)
    assert value.startswith(b"3:2:")
    unpacked = unpack_conversation(value)
    assert unpacked.version == 2
    assert unpacked.state == a_state(2)
    # Turn ids only as one-way signatures, newest first; decisions as the API answered them.
    assert unpacked.turns == (turn_signature(turn_ids[1]), turn_signature(turn_ids[0]))
    assert not set(unpacked.turns) & set(turn_ids)
    assert [json.loads(record) for record in unpacked.decisions] == decisions[::-1]
    for turn_id in turn_ids:
        assert turn_id.encode() not in value
    plain = json.dumps({"state": asdict(a_state(2)), "decisions": decisions},
                       separators=(",", ":")).encode()
    print(f"stored value: {len(value)} bytes; plain JSON: {len(plain)} bytes")
    assert len(value) < len(plain) / 3


def test_memory_of_a_twenty_turn_conversation(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 20, make_decision)

    usage = raw.memory_usage(conversation_key(cid), samples=0)
    print(f"MEMORY USAGE of a 20-turn conversation: {usage} bytes")
    assert usage is not None
    assert usage <= 2048  # the target


# -- Misuse and failures ----------------------------------------------------------------------

@pytest.mark.parametrize("turn_id", ["t 1", "t-1\n", "\tt-1", ""])
def test_commit_rejects_whitespace_in_turn_ids(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision, turn_id: str) -> None:
    cid = new_conversation_id()
    with pytest.raises(ValueError, match="turn id"):
        store.commit(cid, store.load(cid), a_state(1), turn_id, make_decision(cid, turn_id, 1))
    assert raw.exists(conversation_key(cid)) == 0


def test_a_decoding_client_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        StateStore(client)
    client.close()


def deflated(*lines: bytes) -> bytes:
    """Lines deflated as format 3 deflates them (its preset dictionary)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zdict=_ZDICT)
    return deflate.compress(b"\n".join(lines)) + deflate.flush()


def corrupt(raw: redis.Redis, cid: str, kind: str) -> None:
    """Store an unreadable value of this kind for the conversation, without a TTL."""
    key = conversation_key(cid)
    if kind == "garbage":
        raw.set(key, b"not an escalator value")
    elif kind == "deflate":
        raw.set(key, b"3:7:\xff\x00 not deflate")
    elif kind == "json":
        raw.set(key, b"3:4:" + deflated(b'{"turns": [nope'))
    elif kind == "fields":
        raw.set(key, b"3:2:" + deflated(b'{"turns": [], "state": {"turn_index": "two"}}'))
    elif kind == "hash":
        raw.hset(key, "turn_index", "1")  # another Redis type: WRONGTYPE for GET
    else:
        raise AssertionError(kind)


REASONS = {"garbage": "format", "deflate": "deflate", "json": "json", "fields": "fields",
           "hash": "type"}


def unreadable_count(reason: str) -> float:
    return REGISTRY.get_sample_value("escalator_state_unreadable_total", {"reason": reason}) \
        or 0.0


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_an_unreadable_value_is_reported_once_and_the_next_turn_replaces_it(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    cid = new_conversation_id()
    corrupt(raw, cid, kind)
    before = unreadable_count(REASONS[kind])

    snapshot = store.load(cid, "t-1")
    assert snapshot.unreadable and snapshot.state is None and snapshot.retry is None
    for call in (store.summary, lambda cid: store.release(cid, handed_back)):
        with pytest.raises(StateUnreadable) as caught:
            call(cid)
        assert caught.value.reason == REASONS[kind]
    # Counted and logged once (without the value), and no longer kept for ever.
    assert unreadable_count(REASONS[kind]) == before + 1
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert warnings == [f"conversation {cid}: its stored state cannot be read "
                        f"({REASONS[kind]}); the next turn starts it afresh"]
    assert 0 < raw.ttl(conversation_key(cid)) <= 86400

    decision = make_decision(cid, "t-1", 1)
    committed = store.commit(cid, snapshot, a_state(1), "t-1", decision)
    assert isinstance(committed, Committed)
    assert store.summary(cid) == (a_state(1), committed.version)
    assert 0 < raw.ttl(conversation_key(cid)) <= 86400
    assert store.load(cid, "t-1").retry == decision


def test_two_turns_replacing_one_unreadable_value_lose_no_update(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    corrupt(raw, cid, "deflate")
    first, second = store.load(cid, "t-1"), store.load(cid, "t-2")
    assert store.commit(cid, first, a_state(1), "t-1",
                        make_decision(cid, "t-1", 1)) == Committed(8)
    # The second turn loaded the same unreadable value: it must not overwrite the first.
    assert store.commit(cid, second, a_state(1), "t-2",
                        make_decision(cid, "t-2", 1)) == Conflict(8)
    again = store.load(cid, "t-2")
    assert not again.unreadable and again.state == a_state(1)
    assert store.commit(cid, again, a_state(2), "t-2",
                        make_decision(cid, "t-2", 2)) == Committed(9)


def test_a_retry_whose_stored_decision_is_unreadable_is_superseded(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    before = unreadable_count("record")
    raw.set(conversation_key(cid), pack_conversation(
        3, a_state(3), [turn_signature("t-3")], [b"{not a decision"]))
    snapshot = store.load(cid, "t-3")
    assert snapshot.superseded and snapshot.retry is None and snapshot.state == a_state(3)
    assert unreadable_count("record") == before + 1


def test_an_error_answer_from_a_script_is_unavailable_not_a_crash(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    # A turn that loaded a readable value commits while another client has put a hash
    # there meanwhile: the script fails (WRONGTYPE) and the turn degrades.
    cid = new_conversation_id()
    snapshot = store.load(cid, "t-1")
    raw.hset(conversation_key(cid), "turn_index", "1")
    with pytest.raises(StateUnavailable, match="ResponseError"):
        store.commit(cid, snapshot, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    assert raw.hgetall(conversation_key(cid)) == {b"turn_index": b"1"}


def test_ping(store: StateStore) -> None:
    assert store.ping() is True
