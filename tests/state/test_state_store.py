"""The state store against a real Redis: what a turn loads, commits, replays and erases."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from escalator.errors import StateUnavailable
from escalator.model import ConversationState
from escalator.state import (
    Committed,
    Conflict,
    Replayed,
    Snapshot,
    StateStore,
    state_key,
    turns_key,
    unpack_decision,
)

NewId = Callable[..., str]
MakeDecision = Callable[..., dict[str, Any]]


def a_state(turn_index: int = 1, **changes: Any) -> ConversationState:
    """A state as the scorers would leave it after `turn_index` turns (no text in it)."""
    return ConversationState(
        turn_index=turn_index, started_at=1764255845.0, updated_at=1764255845.0 + turn_index,
        scoring={"frustration_mean": 0.4, "signatures": [184467440737, 92233720368],
                 "prompts": ["ask_order_number"]},
    ).evolve(**changes)


def test_unknown_conversation_loads_empty(store: StateStore, new_conversation_id: NewId) -> None:
    assert store.load(new_conversation_id(), "t-1") == Snapshot(state=None, version=0, replay=None)


def test_commit_then_load_round_trip(store: StateStore, new_conversation_id: NewId,
                                     make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    state = a_state(1, escalated=True, escalated_turn=1, handoff_queue="support",
                    handoff_priority="high")
    decision = make_decision(cid, "t-1", 1)

    assert store.commit(cid, 0, state, "t-1", decision) == Committed(version=1)

    next_turn = store.load(cid, "t-2")
    assert next_turn == Snapshot(state=state, version=1, replay=None)
    retried_turn = store.load(cid, "t-1")
    assert retried_turn.replay == decision
    assert store.summary(cid) == (state, 1)


def test_a_fresh_state_round_trips_too(store: StateStore, new_conversation_id: NewId,
                                       make_decision: MakeDecision) -> None:
    # Fields equal to the defaults are not stored; they must still come back.
    cid = new_conversation_id()
    store.commit(cid, 0, ConversationState(), "t-1", make_decision(cid, "t-1", 1))
    assert store.load(cid, "t-2") == Snapshot(state=ConversationState(), version=1, replay=None)


def test_retry_replays_the_stored_decision_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    first = make_decision(cid, "t-1", 1)
    store.commit(cid, 0, a_state(1), "t-1", first)
    raw.expire(state_key(cid), 500)
    raw.expire(turns_key(cid), 500)
    before = (raw.hgetall(state_key(cid)), raw.hgetall(turns_key(cid)))

    # The retry is decided again (a new decision id) and the pipeline tries to commit it.
    retry = make_decision(cid, "t-1", 1)
    assert retry["decision_id"] != first["decision_id"]
    assert store.commit(cid, 1, a_state(2), "t-1", retry) == Replayed(first)
    # Even with a stale version, a retry of a decided turn is a replay, not a conflict.
    assert store.commit(cid, 0, a_state(2), "t-1", retry) == Replayed(first)

    assert (raw.hgetall(state_key(cid)), raw.hgetall(turns_key(cid))) == before
    assert raw.ttl(state_key(cid)) <= 500
    assert raw.ttl(turns_key(cid)) <= 500
    assert store.load(cid, "t-1") == Snapshot(state=a_state(1), version=1, replay=first)


def test_stale_version_conflicts_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    store.commit(cid, 1, a_state(2), "t-2", make_decision(cid, "t-2", 2))
    before = (raw.hgetall(state_key(cid)), raw.hgetall(turns_key(cid)))

    assert store.commit(cid, 1, a_state(3), "t-3", make_decision(cid, "t-3", 3)) == Conflict(2)
    assert store.commit(cid, 5, a_state(3), "t-3", make_decision(cid, "t-3", 3)) == Conflict(2)

    assert (raw.hgetall(state_key(cid)), raw.hgetall(turns_key(cid))) == before
    assert store.load(cid, "t-3").replay is None


def test_first_commit_must_expect_version_zero(store: StateStore, raw: redis.Redis,
                                               new_conversation_id: NewId,
                                               make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    assert store.commit(cid, 3, a_state(1), "t-1", make_decision(cid, "t-1", 1)) == Conflict(0)
    assert raw.exists(state_key(cid), turns_key(cid)) == 0


def test_concurrent_turns_lose_no_update(redis_url: str, new_conversation_id: NewId,
                                         make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, timeout_seconds=2.0, max_turn_records=64)
    turn_ids = [f"t-{n:02d}" for n in range(50)]
    conflicts = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def decide(turn_id: str) -> None:
        # What the pipeline does: load, compute the next state, commit; on Conflict, again.
        while True:
            snapshot = store.load(cid, turn_id)
            state = snapshot.state or ConversationState()
            seen = [*state.scoring.get("seen", []), turn_id]
            result = store.commit(cid, snapshot.version,
                                  state.evolve(turn_index=state.turn_index + 1,
                                               scoring={"seen": seen}),
                                  turn_id, make_decision(cid, turn_id, len(seen)))
            if isinstance(result, Committed):
                return
            assert isinstance(result, Conflict)
            with lock:
                conflicts[0] += 1

    def worker(mine: list[str]) -> None:
        try:
            for turn_id in mine:
                decide(turn_id)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(turn_ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    store.close()

    assert not errors
    found = StateStore.from_url(redis_url).summary(cid)
    assert found is not None
    state, version = found
    assert version == 50
    assert state.turn_index == 50
    assert sorted(state.scoring["seen"]) == turn_ids  # every turn's update survived
    for turn_id in turn_ids:
        replay = StateStore.from_url(redis_url).load(cid, turn_id).replay
        assert replay is not None
        assert replay["turn_id"] == turn_id
    # Not an assertion on timing, just that the test exercised contention at all.
    print(f"{conflicts[0]} conflicts retried")


def test_ttl_is_set_on_both_keys_and_refreshed_every_turn(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    for key in (state_key(cid), turns_key(cid)):
        assert 990 <= raw.ttl(key) <= 1000

    raw.expire(state_key(cid), 20)
    raw.expire(turns_key(cid), 20)
    store.commit(cid, 1, a_state(2), "t-2", make_decision(cid, "t-2", 2))
    for key in (state_key(cid), turns_key(cid)):
        assert 990 <= raw.ttl(key) <= 1000


def test_state_expires(redis_url: str, new_conversation_id: NewId,
                       make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1)
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    deadline = time.monotonic() + 5
    while store.load(cid, "t-1").version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.load(cid, "t-1") == Snapshot(state=None, version=0, replay=None)


def test_erase_removes_every_key_of_the_conversation_and_only_those(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    gone, kept = new_conversation_id(), new_conversation_id()
    for cid in (gone, kept):
        store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))

    assert store.erase(gone) is True

    assert list(raw.scan_iter(match=f"escalator:{{{gone}}}:*")) == []
    assert raw.exists(state_key(kept), turns_key(kept)) == 2
    assert store.load(gone, "t-1") == Snapshot(state=None, version=0, replay=None)
    assert store.erase(gone) is False


def test_release_hands_the_conversation_back_to_the_bot(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    escalated = a_state(3, escalated=True, escalated_turn=3, handoff_queue="support",
                        handoff_priority="high")
    store.commit(cid, 0, escalated, "t-3", make_decision(cid, "t-3", 3))
    raw.expire(state_key(cid), 20)
    raw.expire(turns_key(cid), 20)

    released = store.release(cid)

    expected = escalated.evolve(escalated=False, escalated_turn=None, handoff_queue=None,
                                handoff_priority=None)
    assert released == expected
    assert store.summary(cid) == (expected, 2)
    for key in (state_key(cid), turns_key(cid)):
        assert 990 <= raw.ttl(key) <= 1000
    # A turn decided on the pre-release version must not overwrite the release.
    assert store.commit(cid, 1, escalated, "t-4", make_decision(cid, "t-4", 4)) == Conflict(2)


def test_release_of_an_unknown_conversation(store: StateStore, raw: redis.Redis,
                                            new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    assert store.release(cid) is None
    assert raw.exists(state_key(cid), turns_key(cid)) == 0


def test_turn_records_are_bounded_to_the_most_recent(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, max_turn_records=4)
    for n in range(1, 11):
        store.commit(cid, n - 1, a_state(n), f"t-{n}", make_decision(cid, f"t-{n}", n))

    assert sorted(raw.hkeys(turns_key(cid))) == [b"t-10", b"t-7", b"t-8", b"t-9"]
    assert store.load(cid, "t-7").replay is not None
    assert store.load(cid, "t-6").replay is None
    assert store.summary(cid) == (a_state(10), 10)


def test_turn_records_left_without_state_are_dropped(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    # E.g. maxmemory eviction took the state key but not the turns key: that conversation is
    # over, and its records would otherwise never be trimmed.
    cid = new_conversation_id()
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    raw.delete(state_key(cid))

    assert store.commit(cid, 0, a_state(1), "t-2", make_decision(cid, "t-2", 1)) == Committed(1)
    assert raw.hkeys(turns_key(cid)) == [b"t-2"]


def test_keys_use_the_hash_tag_form(store: StateStore, raw: redis.Redis,
                                    new_conversation_id: NewId,
                                    make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))

    keys = sorted(raw.scan_iter(match=f"escalator:*{cid}*"))
    assert keys == [f"escalator:{{{cid}}}:state".encode(), f"escalator:{{{cid}}}:turns".encode()]
    # The tag puts both keys in one cluster slot, the slot of the id itself.
    assert {key_slot(key) for key in keys} == {key_slot(cid.encode())}


def test_stored_values_hold_numbers_labels_and_compact_decisions(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decision = make_decision(cid, "t-1", 1)
    store.commit(cid, 0, a_state(1), "t-1", decision)

    fields = raw.hgetall(state_key(cid))
    assert fields[b"_version"] == b"1"
    assert fields[b"_turn_order"] == b"t-1"
    assert json.loads(fields[b"scoring"]) == a_state(1).scoring
    assert b"escalated" not in fields  # default values are not stored
    record = raw.hget(turns_key(cid), "t-1")
    assert record is not None
    assert unpack_decision(record) == decision
    plain = json.dumps(decision, separators=(",", ":")).encode()
    assert len(record) < len(plain) / 3


def test_memory_of_a_twenty_turn_conversation(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    usage: dict[int, int] = {}
    for records in (32, 4):
        cid = new_conversation_id()
        store = StateStore.from_url(redis_url, max_turn_records=records)
        for n in range(1, 21):
            store.commit(cid, n - 1, a_state(n), f"t-{n:04d}", make_decision(cid, f"t-{n:04d}", n))
        usage[records] = sum(raw.memory_usage(key, samples=0) or 0
                             for key in (state_key(cid), turns_key(cid)))
    print(f"MEMORY USAGE of a 20-turn conversation: {usage}")
    # ~1.3 KB bodies: 20 records kept must cost far less than 20 x 1.3 KB.
    assert usage[32] < 12_000
    assert usage[4] < 3_000


def test_retries_of_commit_reject_whitespace_in_turn_ids(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    with pytest.raises(ValueError):
        store.commit(cid, 0, a_state(1), "t 1", make_decision(cid, "t 1", 1))


def test_a_decoding_client_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        StateStore(client)
    client.close()


def test_a_failing_script_is_unavailable_not_a_crash(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    raw.set(state_key(cid), "not a hash")  # WRONGTYPE inside the script
    with pytest.raises(StateUnavailable):
        store.load(cid, "t-1")
    with pytest.raises(StateUnavailable):
        store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    with pytest.raises(StateUnavailable):
        store.release(cid)
    assert raw.get(state_key(cid)) == b"not a hash"


def test_ping(store: StateStore) -> None:
    assert store.ping() is True
