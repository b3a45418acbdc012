"""The pod's handoff cache: shared by forked workers, bounded, expiring, and holding no id."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from escalator.app import create_app
from escalator.config import Config, ConfigError
from escalator.state.handoff_cache import PURGE_EVERY, Handoff, HandoffCache

SUPPORT = Handoff(turn=3, queue="support", urgency="high")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def in_a_child(method: str, cache: HandoffCache, conversation_id: str) -> None:
    """Call cache.<method>(conversation_id, ...) in a forked process: another worker."""
    def run() -> None:
        if method == "forget":
            cache.forget(conversation_id)
        else:
            cache.remember(conversation_id, SUPPORT)

    child = multiprocessing.get_context("fork").Process(target=run)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0


def test_a_handoff_is_recalled_until_released_or_erased(tmp_path: Path) -> None:
    cache = HandoffCache(tmp_path / "handoffs.sqlite", ttl_seconds=60)
    assert cache.recall("c-1") is None
    cache.close()  # and opened again on the next call
    cache.remember("c-1", SUPPORT)
    cache.remember("c-2", Handoff(turn=1, queue="billing", urgency="urgent"))
    assert cache.recall("c-1") == SUPPORT
    cache.forget("c-1")
    assert cache.recall("c-1") is None
    assert cache.recall("c-2") == Handoff(turn=1, queue="billing", urgency="urgent")
    cache.close()


def test_forked_workers_share_one_file(tmp_path: Path) -> None:
    cache = HandoffCache(tmp_path / "handoffs.sqlite", ttl_seconds=60)
    cache.remember("c-parent", SUPPORT)  # this process has a connection open at the fork
    in_a_child("remember", cache, "c-child")
    assert cache.recall("c-child") == SUPPORT  # written by the other process
    assert cache.recall("c-parent") == SUPPORT
    cache.close()


def test_an_entry_expires_with_the_state_ttl_and_a_later_turn_refreshes_it(
        tmp_path: Path) -> None:
    clock = Clock()
    cache = HandoffCache(tmp_path / "handoffs.sqlite", ttl_seconds=800, clock=clock)
    cache.remember("c-1", SUPPORT)
    clock.now += 799
    assert cache.recall("c-1") == SUPPORT
    cache.remember("c-1", SUPPORT)  # a later turn still with the person
    clock.now += 799
    assert cache.recall("c-1") == SUPPORT
    clock.now += 2
    assert cache.recall("c-1") is None
    cache.close()


def test_a_process_writes_a_handoff_once_not_on_every_turn(tmp_path: Path) -> None:
    clock = Clock()
    cache = HandoffCache(tmp_path / "handoffs.sqlite", ttl_seconds=800, clock=clock)
    cache.remember("c-1", SUPPORT)
    in_a_child("forget", cache, "c-1")
    cache.remember("c-1", SUPPORT)  # within an eighth of the TTL: not written again
    assert cache.recall("c-1") is None
    later = Handoff(turn=7, queue="support", urgency="high")
    cache.remember("c-1", later)  # another handoff is written at once
    assert cache.recall("c-1") == later
    in_a_child("forget", cache, "c-1")
    clock.now += 101  # past an eighth of the TTL: written again
    cache.remember("c-1", later)
    assert cache.recall("c-1") == later
    cache.close()


def test_it_keeps_about_max_entries_the_newest_and_drops_what_expired(tmp_path: Path) -> None:
    clock = Clock()
    cache = HandoffCache(tmp_path / "handoffs.sqlite", ttl_seconds=600, max_entries=100,
                         clock=clock)
    for n in range(1000):
        cache.remember(f"c-{n}", SUPPORT)
    assert 100 <= len(cache) <= 100 + PURGE_EVERY
    assert cache.recall("c-999") == SUPPORT and cache.recall("c-900") == SUPPORT
    assert cache.recall("c-800") is None and cache.recall("c-0") is None
    clock.now += 601
    for n in range(PURGE_EVERY):
        cache.remember(f"new-{n}", SUPPORT)
    assert len(cache) == PURGE_EVERY
    cache.close()


def test_the_file_names_no_conversation_and_a_restart_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "handoffs.sqlite"
    cache = HandoffCache(path, ttl_seconds=600)
    cache.remember("customer-4242-conversation", SUPPORT)
    cache.close()
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"customer-4242" not in written and b"support" in written  # labels only

    again = HandoffCache(path, ttl_seconds=600)  # a new run: a new key, nothing carried over
    assert again.recall("customer-4242-conversation") is None
    assert len(again) == 0
    again.close()


def test_a_broken_file_never_fails_a_turn(tmp_path: Path) -> None:
    path = tmp_path / "handoffs.sqlite"
    cache = HandoffCache(path, ttl_seconds=600)
    cache.close()
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    path.write_bytes(b"this is not a SQLite database" * 100)
    errors = REGISTRY.get_sample_value("escalator_handoff_cache_errors_total") or 0.0
    cache.remember("c-1", SUPPORT)
    assert cache.recall("c-1") is None
    cache.forget("c-1")
    cache.close()
    assert REGISTRY.get_sample_value("escalator_handoff_cache_errors_total") == errors + 3


def test_in_memory_it_serves_one_process() -> None:
    cache = HandoffCache(None, ttl_seconds=600)
    cache.remember("c-1", SUPPORT)
    assert cache.recall("c-1") == SUPPORT
    cache.close()


def test_a_cache_file_that_cannot_be_made_refuses_to_start(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(ConfigError, match="ESCALATOR_HANDOFF_CACHE="):
        create_app(Config(env="test", redis_url="redis://127.0.0.1:1/0",
                          handoff_cache=blocked / "handoffs.sqlite"))
