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
    Superseded,
    pack_decision,
    state_key,
    turns_key,
    unpack_decision,
    unpack_scoring,
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
    store = StateStore.from_url(redis_url, timeout_seconds=2.0, max_turn_records=64,
                                remembered_turns=64)
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


def test_ttl_is_set_and_refreshed_every_turn(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))
    assert 990 <= raw.ttl(state_key(cid)) <= 1000

    raw.expire(state_key(cid), 20)
    store.commit(cid, 1, a_state(2), "t-2", make_decision(cid, "t-2", 2))
    assert 990 <= raw.ttl(state_key(cid)) <= 1000


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
    assert raw.exists(state_key(kept)) == 1
    assert store.load(gone, "t-1") == Snapshot(state=None, version=0, replay=None)
    assert store.erase(gone) is False


def test_release_hands_the_conversation_back_to_the_bot(
        redis_url: str, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store = StateStore.from_url(redis_url, ttl_seconds=1000)
    escalated = a_state(3, escalated=True, escalated_turn=3, handoff_queue="support",
                        handoff_priority="high")
    decision = make_decision(cid, "t-3", 3)
    store.commit(cid, 0, escalated, "t-3", decision)
    raw.expire(state_key(cid), 20)

    released = store.release(cid)

    expected = escalated.evolve(escalated=False, escalated_turn=None, handoff_queue=None,
                                handoff_priority=None)
    assert released == expected
    assert store.summary(cid) == (expected, 2)
    assert 990 <= raw.ttl(state_key(cid)) <= 1000
    assert store.load(cid, "t-3").replay == decision  # a retry still replays
    # A turn decided on the pre-release version must not overwrite the release.
    assert store.commit(cid, 1, escalated, "t-4", make_decision(cid, "t-4", 4)) == Conflict(2)


def test_release_of_an_unknown_conversation(store: StateStore, raw: redis.Redis,
                                            new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    assert store.release(cid) is None
    assert raw.exists(state_key(cid), turns_key(cid)) == 0


def decide_turns(store: StateStore, cid: str, count: int,
                 make_decision: MakeDecision) -> list[dict[str, Any]]:
    """Commit turns t-1 .. t-<count> one after the other; their decisions."""
    decisions = [make_decision(cid, f"t-{n}", n) for n in range(1, count + 1)]
    for n, decision in enumerate(decisions, start=1):
        assert store.commit(cid, n - 1, a_state(n), f"t-{n}", decision) == Committed(n)
    return decisions


def test_retries_of_the_last_two_turns_replay_their_decisions(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decisions = decide_turns(store, cid, 10, make_decision)

    assert store.load(cid, "t-10").replay == decisions[9]
    assert store.load(cid, "t-9").replay == decisions[8]
    assert store.commit(cid, 10, a_state(11), "t-9", make_decision(cid, "t-9", 9)) \
        == Replayed(decisions[8])
    assert store.summary(cid) == (a_state(10), 10)


def test_a_retry_of_an_older_turn_is_superseded_and_changes_nothing(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 10, make_decision)
    before = raw.hgetall(state_key(cid))

    snapshot = store.load(cid, "t-8")  # the third most recent
    assert snapshot == Snapshot(state=a_state(10), version=10, replay=None, superseded=True)
    assert store.commit(cid, 10, a_state(11), "t-8", make_decision(cid, "t-8", 8)) \
        == Superseded()
    assert store.load(cid, "t-1").superseded  # the 10th most recent: still remembered

    assert raw.hgetall(state_key(cid)) == before


def test_turn_ids_are_remembered_for_the_last_sixteen_turns(
        store: StateStore, new_conversation_id: NewId, make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 20, make_decision)

    assert store.load(cid, "t-5").superseded
    forgotten = store.load(cid, "t-4")  # 17th most recent: decided as a new turn
    assert forgotten == Snapshot(state=a_state(20), version=20, replay=None)
    assert store.commit(cid, 20, a_state(21), "t-4", make_decision(cid, "t-4", 21)) \
        == Committed(21)


def test_a_conversation_in_the_old_format_is_read_and_migrated(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    # As the previous version wrote it: a plain state hash and a turns hash.
    cid = new_conversation_id()
    old = a_state(3, escalated=True, escalated_turn=3, handoff_queue="support",
                  handoff_priority="high")
    t2, t3 = make_decision(cid, "t-2", 2), make_decision(cid, "t-3", 3)
    raw.hset(state_key(cid), mapping={
        **{k: v for k, v in old.encode().items() if v != "null"},
        "_version": 3, "_turn_order": "t-1 t-2 t-3"})
    raw.hset(turns_key(cid), mapping={"t-2": pack_decision(t2), "t-3": pack_decision(t3)})

    assert store.load(cid, "t-4") == Snapshot(state=old, version=3, replay=None)
    assert store.load(cid, "t-3").replay == t3
    assert store.commit(cid, 3, a_state(4), "t-2", make_decision(cid, "t-2", 2)) == Replayed(t2)

    assert store.commit(cid, 3, a_state(4), "t-4", make_decision(cid, "t-4", 4)) == Committed(4)
    assert raw.exists(turns_key(cid)) == 0
    assert store.load(cid, "t-3").replay == t3  # the previous turn's decision came along
    assert store.load(cid, "t-2").superseded
    assert store.summary(cid) == (a_state(4), 4)


def test_an_old_format_conversation_can_be_released(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId) -> None:
    cid = new_conversation_id()
    old = a_state(3, escalated=True, escalated_turn=3, handoff_queue="support",
                  handoff_priority="high")
    raw.hset(state_key(cid), mapping={
        **{k: v for k, v in old.encode().items() if v != "null"},
        "_version": 3, "_turn_order": "t-3"})

    assert store.release(cid) == a_state(3)
    assert store.summary(cid) == (a_state(3), 4)


def test_keys_use_the_hash_tag_form(store: StateStore, raw: redis.Redis,
                                    new_conversation_id: NewId,
                                    make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    store.commit(cid, 0, a_state(1), "t-1", make_decision(cid, "t-1", 1))

    keys = sorted(raw.scan_iter(match=f"escalator:*{cid}*"))
    assert keys == [f"escalator:{{{cid}}}:state".encode()]
    # The tag puts every key of a conversation (the old turns key too) in one cluster slot,
    # the slot of the id itself.
    assert {key_slot(key) for key in (*keys, turns_key(cid).encode())} \
        == {key_slot(cid.encode())}


def test_stored_values_hold_numbers_labels_and_compact_decisions(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decision = make_decision(cid, "t-1", 1)
    store.commit(cid, 0, a_state(1), "t-1", decision)

    fields = raw.hgetall(state_key(cid))
    assert fields[b"_version"] == b"1"
    assert fields[b"_t0"] == b"t-1"
    assert fields[b"turn_index"] == b"1"
    assert b"escalated" not in fields  # default values are not stored
    scoring = b"".join(fields[f"_s{n}".encode()] for n in range(1, 10)
                       if f"_s{n}".encode() in fields)
    assert json.loads(unpack_scoring(scoring)) == a_state(1).scoring
    record = b"".join(value for name, value in sorted(fields.items())
                      if name.startswith(b"_r0."))
    assert unpack_decision(record) == decision
    plain = json.dumps(decision, separators=(",", ":")).encode()
    assert len(record) < len(plain) / 3
    # Every value short enough for Redis's compact hash encoding.
    assert max(len(value) for value in fields.values()) <= 64
    assert raw.object("encoding", state_key(cid)) in (b"listpack", b"ziplist")


def test_memory_of_a_twenty_turn_conversation(
        store: StateStore, raw: redis.Redis, new_conversation_id: NewId,
        make_decision: MakeDecision) -> None:
    cid = new_conversation_id()
    decide_turns(store, cid, 20, make_decision)

    usage = raw.memory_usage(state_key(cid), samples=0)
    print(f"MEMORY USAGE of a 20-turn conversation: {usage} bytes")
    assert usage is not None
    assert usage <= 2048  # the target; 8 full records and a hashtable hash cost ~7 KB


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
