"""The embedded Redis and the failure modes: its lifecycle, degraded calls, round trips."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
import redis
from support.servers import answers_within, command_calls, wait_for

from escalator.errors import StateUnavailable
from escalator.model import ConversationState
from escalator.state.embedded import EmbeddedRedis, start_embedded
from escalator.state.store import Committed, Snapshot, StateStore

MakeDecision = Callable[..., dict[str, Any]]

BOUND_SECONDS = 1.0  # a bound on "quickly", not a benchmark


def every_call(store: StateStore, make_decision: MakeDecision) -> list[Callable[[], object]]:
    decision = make_decision("c-1", "t-1", 1)
    unknown = Snapshot(state=None, version=0, retry=None)
    return [
        lambda: store.load("c-1", "t-1"),
        lambda: store.commit("c-1", unknown, ConversationState(turn_index=1), "t-1", decision),
        lambda: store.summary("c-1"),
        lambda: store.erase("c-1"),
        lambda: store.release("c-1", lambda state: state),
    ]


def assert_unavailable_quickly(store: StateStore, make_decision: MakeDecision) -> None:
    for call in every_call(store, make_decision):
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            call()
        assert time.monotonic() - started < BOUND_SECONDS
    started = time.monotonic()
    assert store.ping() is False
    assert time.monotonic() - started < BOUND_SECONDS


def test_embedded_server_serves_other_processes(embedded: EmbeddedRedis, tmp_path: Path,
                                                make_decision: MakeDecision) -> None:
    decision = make_decision("c-embedded", "t-1", 1)
    script = textwrap.dedent(f"""
        from escalator.model import ConversationState
        from escalator.state.store import StateStore
        store = StateStore.from_url({embedded.url!r})
        snapshot = store.load("c-embedded", "t-1")
        print(store.commit("c-embedded", snapshot, ConversationState(turn_index=1), "t-1",
                           {decision!r}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "Committed(version=1)"

    store = StateStore.from_url(embedded.url)
    snapshot = store.load("c-embedded", "t-1")
    assert snapshot.version == 1
    assert snapshot.retry == decision
    store.close()


def test_shutdown_stops_the_server_and_cleans_up(tmp_path: Path) -> None:
    server = start_embedded(tmp_path / "redis")
    process = psutil.Process(server.pid)
    socket_dir = Path(server.socket_path).parent
    assert StateStore.from_url(server.url).ping()

    server.shutdown()
    server.shutdown()  # idempotent

    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert not socket_dir.exists()
    assert (tmp_path / "redis" / "redis.db").exists()  # the data file stays in its directory
    assert not (tmp_path / "redis" / "redis.db.settings").exists()


def test_data_survives_a_restart_in_the_same_directory(
        tmp_path: Path, make_decision: MakeDecision) -> None:
    with start_embedded(tmp_path / "redis") as first:
        store = StateStore.from_url(first.url)
        assert store.commit("c-1", store.load("c-1", "t-1"), ConversationState(turn_index=1),
                            "t-1", make_decision("c-1", "t-1", 1)) == Committed(1)
        store.close()
    with start_embedded(tmp_path / "redis") as second:
        assert StateStore.from_url(second.url).load("c-1", "t-2").version == 1


def test_joining_a_running_server_does_not_own_it(embedded: EmbeddedRedis,
                                                  tmp_path: Path) -> None:
    assert embedded.owned
    joined = start_embedded(tmp_path / "redis")
    assert joined.url == embedded.url
    assert not joined.owned

    joined.shutdown()

    assert StateStore.from_url(embedded.url).ping()  # still serving its owner


def test_a_server_whose_owner_died_is_adopted(embedded: EmbeddedRedis, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "redis" / "owner.pid").write_text(dead.stdout)

    adopted = start_embedded(tmp_path / "redis")
    assert adopted.owned and adopted.url == embedded.url
    adopted.shutdown()

    assert not StateStore.from_url(embedded.url).ping()


def test_a_forked_worker_exiting_leaves_the_server_running(embedded: EmbeddedRedis) -> None:
    # gunicorn workers are forks of the process that started the server; when one exits
    # (sys.exit runs the atexit hooks it inherited) the server must stay up for the others.
    pid = os.fork()
    if pid == 0:  # the "worker"
        try:
            atexit._run_exitfuncs()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert StateStore.from_url(embedded.url).ping()


def test_server_shut_down_means_unavailable_quickly(
        tmp_path: Path, make_decision: MakeDecision) -> None:
    server = start_embedded(tmp_path / "redis")
    store = StateStore.from_url(server.url)
    assert store.ping()  # a pooled connection exists when the server goes away
    server.shutdown()

    assert_unavailable_quickly(store, make_decision)


def test_nothing_listening_means_unavailable_quickly(make_decision: MakeDecision) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = StateStore.from_url(f"redis://127.0.0.1:{port}/0")

    assert_unavailable_quickly(store, make_decision)


def test_a_stuck_server_times_out_within_the_budget_and_recovers(
        embedded: EmbeddedRedis, make_decision: MakeDecision) -> None:
    store = StateStore.from_url(embedded.url, timeout_seconds=0.1)
    assert store.ping()
    blocker = redis.Redis.from_url(embedded.url)
    sleeping = threading.Thread(target=blocker.execute_command, args=("DEBUG", "SLEEP", "3"))
    sleeping.start()
    wait_for(lambda: not answers_within(embedded.url, 0.05), 5, "the server is asleep")

    started = time.monotonic()
    with pytest.raises(StateUnavailable):
        store.load("c-1", "t-1")
    # It gave up on its own budget, not when the server woke up (a bound on "quickly").
    assert sleeping.is_alive()
    assert time.monotonic() - started < BOUND_SECONDS

    sleeping.join()
    assert store.load("c-1", "t-1").version == 0  # the next turn gets state again
    blocker.close()


def test_load_and_commit_are_one_round_trip_each(
        embedded: EmbeddedRedis, make_decision: MakeDecision) -> None:
    store = StateStore.from_url(embedded.url)
    counter = redis.Redis.from_url(embedded.url)
    first = store.load("c-1", "t-1")
    store.commit("c-1", first, ConversationState(turn_index=1), "t-1",
                 make_decision("c-1", "t-1", 1))  # scripts cached, connection open

    counter.config_resetstat()
    snapshot = store.load("c-1", "t-2")
    # EVALSHA is the one command the store sent; the GET ran inside the script.
    assert command_calls(counter) == {"evalsha": 1, "get": 1}

    counter.config_resetstat()
    outcome = store.commit("c-1", snapshot, ConversationState(turn_index=2), "t-2",
                           make_decision("c-1", "t-2", 2))
    assert outcome == Committed(2)
    # The compare (the value's head) and the set, inside one script.
    assert command_calls(counter) == {"evalsha": 1, "getrange": 1, "set": 1}
    counter.close()
    store.close()


def test_scripts_are_reloaded_after_a_script_flush(
        embedded: EmbeddedRedis, make_decision: MakeDecision) -> None:
    store = StateStore.from_url(embedded.url)
    assert store.commit("c-1", store.load("c-1", "t-1"), ConversationState(turn_index=1), "t-1",
                        make_decision("c-1", "t-1", 1)) == Committed(1)
    redis.Redis.from_url(embedded.url).script_flush()

    snapshot = store.load("c-1", "t-2")
    assert snapshot.version == 1
    assert store.commit("c-1", snapshot, ConversationState(turn_index=2), "t-2",
                        make_decision("c-1", "t-2", 2)) == Committed(2)
    assert store.load("c-1", "t-2").version == 2
