"""A turn that keeps losing the race for its conversation's state gives up after
MAX_COMMIT_ATTEMPTS conflicting commits and is decided without state (answered, flagged
degraded, counted), rather than failing or retrying for ever.

The conflicts are real: after every load of the turn under test, a rival writer (a second
StateStore on its own connection) commits another turn of the same conversation through
the same compare-and-set script, so the test turn's commit finds a newer version in Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from support.turns import say

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.model import ConversationState
from escalator.pipeline import MAX_COMMIT_ATTEMPTS
from escalator.state.store import Committed, Snapshot, StateStore


class RivalledStore(StateStore):
    """A store whose every load of a conversation is followed by a rival's commit to it."""

    rival: StateStore
    rival_commits = 0

    def load(self, conversation_id: str, turn_id: str | None = None,
             content: str | None = None) -> Snapshot:
        snapshot = super().load(conversation_id, turn_id, content)
        if turn_id is not None and not turn_id.startswith("rival-"):
            self._rival_turn(conversation_id)
        return snapshot

    def _rival_turn(self, conversation_id: str) -> None:
        rival_turn = f"rival-{self.rival_commits}"
        seen = self.rival.load(conversation_id, rival_turn)
        state = seen.state or ConversationState()
        written = self.rival.commit(conversation_id, seen,
                                    state.evolve(turn_index=state.turn_index + 1),
                                    rival_turn, {"decision": "keep_with_bot"})
        assert isinstance(written, Committed)
        self.rival_commits += 1


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
def rivalled(redis_url: str) -> Iterator[RivalledStore]:
    store = RivalledStore.from_url(redis_url, timeout_seconds=1.0)
    assert isinstance(store, RivalledStore)
    store.rival = StateStore.from_url(redis_url, timeout_seconds=1.0)
    yield store
    store.rival.close()
    store.close()


def app_on(redis_url: str, store: StateStore, **settings: Any) -> Flask:
    """The service, its pipeline deciding through `store`."""
    app = create_app(Config(redis_url=redis_url, env="test", **settings))
    app.extensions[EXTENSION].pipeline.store = store
    return app


def test_after_the_last_conflicting_commit_the_turn_is_decided_without_state(
        redis_url: str, rivalled: RivalledStore,
        new_conversation_id: Callable[..., str]) -> None:
    app = app_on(redis_url, rivalled)
    try:
        cid = new_conversation_id()
        conflicts, degraded = (sample("escalator_state_conflicts_total"),
                               sample("escalator_degraded_decisions_total"))
        body = say(app.test_client(), cid, "t-1", "I want to talk to a human")
        assert body["degraded"] is True
        assert body["decision"] == "route_to_human"  # the floor holds without state
        assert rivalled.rival_commits == MAX_COMMIT_ATTEMPTS
        assert sample("escalator_state_conflicts_total") == conflicts + MAX_COMMIT_ATTEMPTS
        assert sample("escalator_degraded_decisions_total") == degraded + 1
        # Nothing of the turn was written: Redis holds the rival's turns only.
        state, version = rivalled.rival.summary(cid) or (None, 0)
        assert version == MAX_COMMIT_ATTEMPTS and state is not None
        assert not state.escalated
        assert rivalled.rival.load(cid, "t-1").retry is None
    finally:
        app.extensions[EXTENSION].close()


def test_one_conflict_is_retried_on_the_new_state(
        redis_url: str, new_conversation_id: Callable[..., str]) -> None:
    class OnceRivalled(RivalledStore):
        def load(self, conversation_id: str, turn_id: str | None = None,
                 content: str | None = None) -> Snapshot:
            snapshot = StateStore.load(self, conversation_id, turn_id, content)
            if self.rival_commits == 0:
                self._rival_turn(conversation_id)
            return snapshot

    store = OnceRivalled.from_url(redis_url, timeout_seconds=1.0)
    assert isinstance(store, OnceRivalled)
    store.rival = StateStore.from_url(redis_url, timeout_seconds=1.0)
    app = app_on(redis_url, store)
    try:
        body = say(app.test_client(), new_conversation_id(), "t-1", "where is my parcel?")
        # Decided again on top of the rival's turn: the second turn of the conversation.
        assert (body["degraded"], body["turn_index"]) == (False, 2)
    finally:
        app.extensions[EXTENSION].close()
        store.rival.close()
        store.close()


def test_with_fail_mode_error_giving_up_is_a_503(
        redis_url: str, rivalled: RivalledStore,
        new_conversation_id: Callable[..., str]) -> None:
    app = app_on(redis_url, rivalled, fail_mode="error")
    try:
        response = app.test_client().post(
            f"/v1/conversations/{new_conversation_id()}/turns",
            json={"turn_id": "t-1", "message": {"text": "hello"}})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "state_unavailable"
        assert rivalled.rival_commits == MAX_COMMIT_ATTEMPTS
    finally:
        app.extensions[EXTENSION].close()
