"""Inline evaluations' machinery, for real: forked children under limits, evaluation slots
as lock files, the instance's folder and its clean-up, and per-caller rate limits on a
real Redis (and without one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.servers import wait_for

from escalator.errors import PolicyError, Problem
from escalator.http.inline import (
    InlineBusy,
    InlineFailed,
    InlineLimitExceeded,
    InlineLimits,
    Workspace,
    clean_stale,
    run_isolated,
)
from escalator.http.ratelimit import RateLimiter
from escalator.ruleset.folder import RulesFolder
from escalator.state.store import StateStore

LIMITS = InlineLimits(seconds=2.0, memory_mb=64, concurrency=1)


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TMPDIR, so workspaces of other test runs on the machine are never seen."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return folder


# ---------------------------------------------------------------------------- the child

def test_the_child_returns_its_result_and_the_worker_keeps_its_memory() -> None:
    def work() -> bytes:
        # About 100 MB in the child; none of it may reach this process.
        blocks = [bytearray(1024 * 1024) for _ in range(100)]
        return b"done %d" % len(blocks)

    before = _rss()
    assert run_isolated(work, InlineLimits(seconds=10, memory_mb=256)) == b"done 100"
    assert _rss() - before < 20 * 1024 * 1024


def test_a_refused_rule_set_comes_back_as_its_problems() -> None:
    problem = Problem("rules.yaml", 3, "too long", rule="r", code="budget", limit="list_values")

    def work() -> None:
        raise PolicyError([problem])

    with pytest.raises(PolicyError) as info:
        run_isolated(work, LIMITS)
    assert info.value.problems == [problem]


def test_too_much_memory_is_the_memory_limit() -> None:
    def work() -> int:
        return len(bytearray(512 * 1024 * 1024))

    with pytest.raises(InlineLimitExceeded) as info:
        run_isolated(work, LIMITS)
    assert info.value.limit == "memory"
    assert "more than 64 MB" in str(info.value)


def test_a_child_that_never_ends_is_killed_at_the_time_limit() -> None:
    def work() -> None:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(InlineLimitExceeded) as info:
        run_isolated(work, InlineLimits(seconds=0.5))
    assert info.value.limit == "time"
    assert time.monotonic() - started < 5  # the limit, plus a shared machine's delays


def test_a_child_that_sleeps_is_killed_at_the_wall_time_limit() -> None:
    def work() -> None:
        time.sleep(60)

    with pytest.raises(InlineLimitExceeded) as info:
        run_isolated(work, InlineLimits(seconds=0.3))
    assert info.value.limit == "time"


def test_a_crashing_child_is_a_failure_not_a_dead_worker() -> None:
    def work() -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    with pytest.raises(InlineFailed, match="signal 11"):
        run_isolated(work, LIMITS)
    assert run_isolated(lambda: "still here", LIMITS) == "still here"


def test_the_child_runs_at_a_lower_priority() -> None:
    assert run_isolated(lambda: os.nice(0), LIMITS) == min(19, os.nice(0) + 10)


def test_no_child_is_left_behind() -> None:
    pids = [run_isolated(os.getpid, LIMITS) for _ in range(3)]
    with pytest.raises(InlineLimitExceeded):
        run_isolated(lambda: time.sleep(60), InlineLimits(seconds=0.2))
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()  # reaped: not even a zombie


# ---------------------------------------------------------------------------- workspace

def test_one_slot_per_instance_is_shared_across_processes(tmpdir_env: Path) -> None:
    workspace = Workspace(concurrency=1)
    with workspace.slot():
        # Another process (a second worker) finds the slot taken.
        with pytest.raises(InlineFailed, match="InlineBusy"):
            run_isolated(lambda: _take(workspace), LIMITS)
        with pytest.raises(InlineBusy):
            _take(workspace)
    assert run_isolated(lambda: _take(workspace), LIMITS) == "got it"
    workspace.close()
    assert not workspace.root.exists()


def test_a_slot_held_by_a_killed_process_is_free_again(tmpdir_env: Path) -> None:
    workspace = Workspace(concurrency=1)
    with workspace.slot():
        pass  # makes the root and the lock file
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR);"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"),
        str(workspace.root / "slot-0.lock")], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    with pytest.raises(InlineBusy):
        _take(workspace)
    holder.kill()
    holder.wait()
    assert _take(workspace) == "got it"


def test_what_a_killed_instance_left_is_removed_at_start(tmpdir_env: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmpdir_env / f"escalator-inline-{dead.pid}-0a1b2c3d" / "7-deadbeef"
    stale.mkdir(parents=True)
    mine = tmpdir_env / f"escalator-inline-{os.getpid()}-0a1b2c3d"  # a restarted pid 1
    mine.mkdir()
    alive = tmpdir_env / f"escalator-inline-{os.getppid()}-0a1b2c3d"  # another instance
    alive.mkdir()
    old_style = tmpdir_env / "escalator-inline-k2j3h4g5"
    old_style.mkdir()
    os.utime(old_style, (time.time() - 3600, time.time() - 3600))
    recent_old_style = tmpdir_env / "escalator-inline-q9w8e7r6"
    recent_old_style.mkdir()

    removed = clean_stale(os.getpid())
    assert sorted(removed) == sorted([stale.parent, mine, old_style])
    assert alive.exists() and recent_old_style.exists()


def _take(workspace: Workspace) -> str:
    with workspace.slot():
        return "got it"


def _rss() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------- rate limits

def test_each_caller_has_its_own_window_in_redis(redis_url: str) -> None:
    store = StateStore.from_url(redis_url, timeout_seconds=1.0)
    limiter = RateLimiter(f"test-{os.getpid()}-{time.monotonic_ns()}", 3, store,
                          window_seconds=30)
    try:
        assert [limiter.check("alice").allowed for _ in range(4)] == [True, True, True, False]
        refused = limiter.check("alice")
        assert not refused.allowed and 1 <= refused.retry_after <= 30
        assert limiter.check("bob").allowed
        # Another worker (another limiter on the same Redis) sees the same count.
        twin = RateLimiter(limiter.name, 3, store, window_seconds=30)
        assert not twin.check("alice").allowed
    finally:
        client = store._client
        for key in client.scan_iter(match=f"escalator:ratelimit:{limiter.name}:*"):
            client.delete(key)
        store.close()


def test_the_window_ends_and_the_caller_may_go_on(redis_url: str) -> None:
    store = StateStore.from_url(redis_url, timeout_seconds=1.0)
    limiter = RateLimiter(f"test-{os.getpid()}-{time.monotonic_ns()}", 1, store,
                          window_seconds=0.2)
    try:
        assert limiter.check("carol").allowed
        assert not limiter.check("carol").allowed
        wait_for(lambda: limiter.check("carol").allowed, 5, "the window ends", interval=0.05)
    finally:
        store.close()


def test_without_redis_each_worker_counts_alone() -> None:
    # Nothing listens on port 1: every call fails at once, the limiter counts locally.
    store = StateStore.from_url("redis://127.0.0.1:1/0", timeout_seconds=0.05)
    now = [100.0]
    limiter = RateLimiter("inline", 2, store, window_seconds=60, clock=lambda: now[0])
    try:
        assert [limiter.check("dave").allowed for _ in range(3)] == [True, True, False]
        assert limiter.check("dave").retry_after == 60
        now[0] += 61
        assert limiter.check("dave").allowed
    finally:
        store.close()


def test_zero_per_window_refuses_everything() -> None:
    verdict = RateLimiter("inline", 0, None).check("erin")
    assert not verdict.allowed and verdict.retry_after == 60


def test_a_child_forked_while_another_thread_reads_a_rules_folder_finishes(
        tmp_path: Path) -> None:
    # The worker's reload thread takes folder digests while a request forks an inline
    # evaluation; the child must not wait on anything that thread held at the fork
    # (functools.cached_property's lock did exactly that: the child hung until its limit).
    big = RulesFolder(tmp_path, {f"r{n}.yaml": b"x" * 4_000_000 for n in range(4)})
    stop = threading.Event()

    def read_folders() -> None:
        while not stop.is_set():
            assert RulesFolder(big.path, big.files).digest.startswith("sha256:")

    reader = threading.Thread(target=read_folders)
    reader.start()
    try:
        for _ in range(20):
            digest = run_isolated(
                lambda: RulesFolder(tmp_path, {"rules.yaml": b"ruleset: x\n"}).digest,
                InlineLimits(seconds=10))
            assert digest.startswith("sha256:")
    finally:
        stop.set()
        reader.join()
