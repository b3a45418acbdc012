"""Fixtures for the state store tests: stores on the shared test Redis, realistic decisions."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from support.servers import RedisServer

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.state.embedded import EmbeddedRedis, start_embedded
from escalator.state.store import StateStore

RULESET_DIGEST = "sha256:" + hashlib.sha256(b"rules/default.yaml").hexdigest()


def realistic_decision(conversation_id: str, turn_id: str, turn_index: int,
                       rng: random.Random | None = None) -> dict[str, Any]:
    """A response body shaped like the pipeline's (~1.2 KB of compact JSON, no customer text)."""
    rng = rng or random.Random(turn_index)
    route = turn_index % 5 == 0
    frustration = round(rng.random(), 2)
    return {
        "decision": "route_to_human" if route else "keep_with_bot",
        "decision_id": uuid.uuid4().hex,
        "conversation_id": conversation_id,
        "turn_id": turn_id,
        "turn_index": turn_index,
        "handoff": {"queue": "support", "urgency": "high",
                    "customer_message": "I'm connecting you with a member of our team now.",
                    "priority": "high"}
        if route else None,
        "reasons": [
            {"rule": "loop-repeated-request", "priority": 80, "decision": "route_to_human",
             "description": "The customer has repeated the same request 3 times."},
            {"rule": "sustained-frustration", "priority": 70, "decision": "route_to_human",
             "description": "The customer has been frustrated for several turns."},
        ] if route else [
            {"rule": "default", "priority": 0, "decision": "keep_with_bot",
             "description": "No rule asked for a person; the bot keeps the conversation."},
        ],
        "scores": {"sentiment": round(rng.uniform(-1, 1), 2), "frustration": frustration,
                   "complexity": round(rng.random(), 2), "loop": round(rng.random(), 2)},
        "facts": {
            "turn_index": turn_index, "message.chars": rng.randint(5, 300),
            "message.language": "en", "message.intent": "order_status",
            "sentiment.score": round(rng.uniform(-1, 1), 3),
            "sentiment.mean": round(rng.uniform(-1, 1), 3),
            "sentiment.trend": round(rng.uniform(-0.5, 0.5), 3),
            "sentiment.negative_streak": rng.randint(0, 4),
            "frustration.score": frustration, "frustration.mean": round(rng.random(), 3),
            "frustration.cues": ["repetition", "waiting"] if route else [],
            "complexity.score": round(rng.random(), 3), "complexity.questions": rng.randint(0, 2),
            "complexity.issues": 1, "complexity.topics": [],
            "intent.confidence": round(rng.random(), 2), "intent.low_confidence_streak": 0,
            "loop.score": round(rng.random(), 3), "loop.repeats": rng.randint(0, 3),
            "loop.fallback_streak": rng.randint(0, 2), "loop.fallbacks": rng.randint(0, 4),
            "loop.bot_repeats": rng.randint(0, 2), "loop.intent_repeats": rng.randint(0, 3),
            "requested_human": False, "conversation.escalated": False,
            "conversation.minutes": round(turn_index * 0.7, 1),
            "customer.tier": "gold", "customer.segment": "consumer", "channel": "web",
            "context.agents_available": 3, "context.business_hours": True,
        },
        "ruleset": {"name": "default", "version": "2026.11.1", "digest": RULESET_DIGEST},
        "degraded": False,
        "replayed": False,
    }


@pytest.fixture
def make_decision() -> Callable[..., dict[str, Any]]:
    """Builds realistic decision bodies."""
    return realistic_decision


@pytest.fixture
def store(redis_url: str) -> Iterator[StateStore]:
    """A store on the test Redis, configured as the service would configure it."""
    state_store = StateStore.from_url(redis_url, timeout_seconds=1.0)
    yield state_store
    state_store.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A binary-safe client on the test Redis, for looking at what the store wrote."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private embedded server, for tests that stop it or count its commands."""
    server = start_embedded(tmp_path / "redis")
    yield server
    server.shutdown()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill, pause and start again."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def own_app(own_redis: RedisServer) -> Iterator[Flask]:
    """The service on own_redis, with a Redis budget of 100 ms."""
    application = create_app(Config(redis_url=own_redis.url, env="test", redis_timeout_ms=100))
    yield application
    application.extensions[EXTENSION].close()
