"""The state store's circuit breaker: when it opens, fails fast, probes and closes again."""

from __future__ import annotations

import socket

import pytest
import redis
from prometheus_client import REGISTRY

from escalator.errors import StateUnavailable
from escalator.model import ConversationState
from escalator.state.circuit import CircuitBreaker
from escalator.state.store import StateStore, conversation_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gauge() -> float | None:
    return REGISTRY.get_sample_value("escalator_state_circuit_open")


def test_it_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_seconds=2.0, clock=Clock())
    assert breaker.allow()
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # not consecutive: starts again
    breaker.failed()
    breaker.failed()
    assert breaker.allow() and not breaker.is_open
    breaker.failed()
    assert breaker.is_open
    assert not breaker.allow()
    assert gauge() == 1


def test_after_the_cooldown_one_probe_goes_through_and_its_outcome_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_seconds=2.0, clock=clock)
    breaker.allow()
    breaker.failed()
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # others still fail fast while it is out
    breaker.failed()  # the probe failed: another full cool-down
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.is_open
    assert breaker.allow() and breaker.allow()
    assert gauge() == 0


def test_a_probe_that_never_reports_does_not_keep_it_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_seconds=2.0, clock=clock)
    breaker.allow()
    breaker.failed()
    clock.now += 2.1
    assert breaker.allow()  # a probe that dies without a word
    clock.now += 2.1
    assert breaker.allow()


def test_a_dead_redis_costs_only_the_threshold_then_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = Clock()
    store = StateStore.from_url(f"redis://127.0.0.1:{port}/0",
                                breaker=CircuitBreaker(threshold=2, clock=clock))
    for _ in range(2):
        with pytest.raises(StateUnavailable, match="ConnectionError"):
            store.load("c-1", "t-1")
    assert store.circuit_open
    with pytest.raises(StateUnavailable, match="circuit open"):
        store.load("c-1", "t-1")
    assert store.ping() is False
    store.close()


def test_an_error_answer_is_not_an_outage(redis_url: str, raw: redis.Redis,
                                          new_conversation_id: object) -> None:
    store = StateStore.from_url(redis_url, breaker=CircuitBreaker(threshold=1))
    assert callable(new_conversation_id)
    cid = new_conversation_id()
    loaded = store.load(cid, "t-1")
    raw.hset(conversation_key(cid), "turn_index", "1")  # WRONGTYPE inside the commit script
    for _ in range(3):
        with pytest.raises(StateUnavailable, match="ResponseError"):
            store.commit(cid, loaded, ConversationState(turn_index=1), "t-1", b"{}")
    assert not store.circuit_open  # Redis answered every time
    store.close()
