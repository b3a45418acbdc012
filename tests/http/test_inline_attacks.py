"""Hostile inline rule sets, sent for real to `escalator serve` with 2 workers and auth on,
while a canary caller keeps deciding turns with its own key.

Each attack once took a worker: for seconds to minutes, to gigabytes, or both (see
bench/attacks/inline_rulesets.py, which sends the same payloads and reports times and
memory). Now each gets a clear answer, both workers survive it under the memory
threshold, and every canary turn succeeds within CANARY_BOUND (generous: two cores shared
with other work).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from support.servers import start_serve, stop, wait_for

from bench.attacks import inline_rulesets as attacks
from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION

pytestmark = pytest.mark.slow

CANARY_BOUND = 5.0  # seconds for any one canary turn while an attack runs
ATTACK_BOUND = 15.0  # seconds for the attack's own answer
MAX_RSS_MB = 256  # ESCALATOR_WORKER_MAX_RSS_MB's default
KEYS = f"{attacks.ATTACKER_KEY},{attacks.CANARY_KEY}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    """escalator serve, 2 workers, an attacker key and a canary key, its own TMPDIR."""
    folder = tmp_path_factory.mktemp("attacks")
    tmp = folder / "tmp"
    tmp.mkdir()
    base, process = start_serve(folder, ESCALATOR_API_KEYS=KEYS, TMPDIR=str(tmp),
                                ESCALATOR_INLINE_PER_MINUTE="1000")
    try:
        yield base, process, tmp
    finally:
        stop(process)


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def workers(process: subprocess.Popen[bytes]) -> list[int]:
    return attacks.children(process.pid)


def settled_workers(process: subprocess.Popen[bytes]) -> list[int]:
    """The 2 workers, once both are up."""
    wait_for(lambda: len(workers(process)) == 2, 30, "2 workers")
    return workers(process)


EXPECTED = {
    "lists": (422, "ruleset_too_large", "list_values"),
    "lists-100": (422, "ruleset_too_large", "engine_tests"),
    "streak": (200, None, None),  # a valid rule set now: the floor check is cheap
    "streak-2^62": (200, None, None),
    "bomb": (422, "ruleset_too_large", "yaml_nodes"),
    "deep": (422, "ruleset_too_large", "yaml_depth"),
    "complex-key": (400, "invalid_request", None),
}


@pytest.mark.parametrize("attack", [a for a in attacks.ATTACKS if a.name in EXPECTED],
                         ids=lambda a: a.name)
def test_an_attack_gets_a_clear_answer_and_takes_no_worker(
        service: tuple[str, Any, Path], attack: attacks.Attack) -> None:
    base, process, _ = service
    before = settled_workers(process)
    with attacks.Canary(base) as canary:
        wait_for(lambda: len(canary.latencies) >= 2, 10, "the canary's first turns")
        status, body, _ = attacks.post(f"{base}/v1/evaluate", attack.body(),
                                       attacks.ATTACKER_KEY, timeout=60)
        turns = len(canary.latencies)
        wait_for(lambda: len(canary.latencies) >= turns + 2, 10, "canary turns after")

    want_status, want_code, want_limit = EXPECTED[attack.name]
    assert status == want_status, body
    assert isinstance(body, dict)
    if want_code is not None:
        assert body["error"]["code"] == want_code
    if want_limit is not None:
        assert want_limit in body["error"]["details"]["limits"]
        assert all(p.startswith("ruleset.yaml") for p in body["error"]["details"]["ruleset"])
    assert not canary.failures
    assert max(canary.latencies) < CANARY_BOUND
    assert workers(process) == before, "a worker was replaced"
    for pid in before:
        rss = attacks.rss_mb(pid)
        assert rss is not None and rss < MAX_RSS_MB, (pid, rss)


def test_two_alias_bombs_at_once_leave_both_workers_serving(
        service: tuple[str, Any, Path]) -> None:
    base, process, _ = service
    before = settled_workers(process)
    answers: list[tuple[int, Any]] = []

    def send() -> None:
        status, body, headers = attacks.post(
            f"{base}/v1/evaluate", attacks.evaluation({"ruleset.yaml": attacks.alias_bomb()}),
            attacks.ATTACKER_KEY, timeout=60)
        answers.append((status, body))
        if status == 429:
            assert body["error"]["code"] == "rate_limited"  # type: ignore[index]
            assert int(headers["Retry-After"]) >= 1

    with attacks.Canary(base) as canary:
        wait_for(lambda: len(canary.latencies) >= 2, 10, "the canary's first turns")
        senders = [threading.Thread(target=send) for _ in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(ATTACK_BOUND)
    assert sorted(status for status, _ in answers) in ([422, 422], [422, 429])
    assert not canary.failures and max(canary.latencies) < CANARY_BOUND
    assert workers(process) == before


def test_a_valid_inline_evaluation_still_answers(service: tuple[str, Any, Path]) -> None:
    base, _, tmp = service
    status, body, _ = attacks.post(f"{base}/v1/evaluate",
                                   attacks.evaluation(attacks.default_rules()),
                                   attacks.ATTACKER_KEY)
    assert status == 200, body
    assert isinstance(body, dict) and len(body["decisions"]) == len(attacks.TURNS)
    assert body["decisions"][1]["reasons"] == []  # one fallback: below the cap
    # Nothing on disk but the instance's folder and its slot's lock file.
    (root,) = tmp.glob("escalator-inline-*")
    assert sorted(p.name for p in root.iterdir()) == ["slot-0.lock"]


# ---------------------------------------------------------------------------- clean-up

def long_evaluation() -> dict[str, Any]:
    """A valid inline evaluation that takes a second or more: 500 long turns."""
    text = ("I already told you twice, order {} never came, the tracking page is useless "
            "and nobody answers my emails or my calls, this is terrible! ") * 40
    return {"turns": [{"message": {"text": text.replace("{}", str(i))}} for i in range(500)],
            "ruleset": {"files": attacks.default_rules()}}


def test_a_worker_killed_mid_evaluation_leaves_nothing_behind(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # What a killed instance left: removed at start (its owner is not running).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp / f"escalator-inline-{dead.pid}-12345678" / "99-abcdef").mkdir(parents=True)
    base, process = start_serve(tmp_path, ESCALATOR_API_KEYS=KEYS, TMPDIR=str(tmp),
                                ESCALATOR_MAX_BODY_BYTES="40000000",
                                ESCALATOR_INLINE_TIMEOUT_SECONDS="60")
    try:
        assert list(tmp.glob("escalator-inline-*")) == []
        body = long_evaluation()
        answers: list[int] = []
        for _attempt in range(3):
            thread = threading.Thread(target=lambda: answers.append(attacks.post(
                f"{base}/v1/evaluate", body, attacks.ATTACKER_KEY)[0]), daemon=True)
            thread.start()
            found: list[tuple[int, int]] = []

            def evaluating(found: list[tuple[int, int]] = found,
                           thread: threading.Thread = thread) -> bool:
                found[:] = [(worker, child) for worker in workers(process)
                            for child in attacks.children(worker)]
                return bool(found) or not thread.is_alive()

            wait_for(evaluating, 30, "an evaluation's child process", interval=0.005)
            if found:
                break
            thread.join()  # it was done before its child was seen: try again
        else:
            pytest.fail("never caught an evaluation in flight")
        ((worker, child),) = found
        os.kill(worker, signal.SIGKILL)
        # The child goes with its worker, and with it the slot it held.
        wait_for(lambda: gone(child), 10, "the evaluation's child process to end")
        thread.join(30)
        assert answers == [0]  # the connection was cut
        settled_workers(process)
        status, body_after, _ = attacks.post(f"{base}/v1/evaluate",
                                             attacks.evaluation(attacks.default_rules()),
                                             attacks.ATTACKER_KEY)
        assert status == 200, body_after  # not 429: the killed worker's slot is free
        (root,) = tmp.glob("escalator-inline-*")
        assert sorted(p.name for p in root.iterdir()) == ["slot-0.lock"]
    finally:
        stop(process)
    assert list(tmp.glob("escalator-inline-*")) == []  # the instance's folder at exit


# ---------------------------------------------------------------------------- memory

def test_a_worker_above_the_memory_threshold_is_replaced_after_its_request(
        tmp_path: Path) -> None:
    # A threshold below what any worker uses: every request ends its worker's life.
    base, process = start_serve(tmp_path, ESCALATOR_WORKER_MAX_RSS_MB="1")
    try:
        first = settled_workers(process)
        for turn in range(1, 4):
            status, _, _ = attacks.post(f"{base}/v1/conversations/recycled/turns",
                                        {"turn_id": f"t-{turn}", "message": {"text": "hi"}},
                                        "no-key-needed")
            assert status == 200
        wait_for(lambda: not set(first) & set(workers(process)), 30,
                 "both first workers replaced")
        settled_workers(process)
        log = (tmp_path / "serve.log").read_text()
        assert "is above ESCALATOR_WORKER_MAX_RSS_MB (1 MB): replacing it" in log
    finally:
        stop(process)


# ---------------------------------------------------------------------------- rate limits

@pytest.fixture
def limited(redis_url: str) -> Iterator[FlaskClient]:
    """The app in process, on the test Redis, with 2 inline evaluations per minute."""
    app = create_app(Config(redis_url=redis_url, env="test", inline_per_minute=2,
                            api_keys=("key-a", "key-b")))
    store = app.extensions[EXTENSION].store
    try:
        yield app.test_client()
    finally:
        client = store._client
        for key in client.scan_iter(match="escalator:ratelimit:inline:*"):
            client.delete(key)
        app.extensions[EXTENSION].close()


def test_inline_evaluations_are_rate_limited_per_caller(limited: FlaskClient) -> None:
    body = attacks.evaluation(attacks.default_rules())
    a = {"Authorization": "Bearer key-a"}
    assert [limited.post("/v1/evaluate", json=body, headers=a).status_code
            for _ in range(2)] == [200, 200]
    refused = limited.post("/v1/evaluate", json=body, headers=a)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert error["details"]["retry_after"] == int(refused.headers["Retry-After"])
    # Another caller, and the active rules, are not limited.
    b = {"Authorization": "Bearer key-b"}
    assert limited.post("/v1/evaluate", json=body, headers=b).status_code == 200
    assert limited.post("/v1/evaluate", json={"turns": attacks.TURNS},
                        headers=a).status_code == 200


def test_the_limit_holds_across_instances_through_redis(redis_url: str,
                                                        limited: FlaskClient) -> None:
    other = create_app(Config(redis_url=redis_url, env="test", inline_per_minute=2,
                              api_keys=("key-a",)))
    try:
        body = attacks.evaluation(attacks.default_rules())
        a = {"Authorization": "Bearer key-a"}
        assert limited.post("/v1/evaluate", json=body, headers=a).status_code == 200
        assert other.test_client().post("/v1/evaluate", json=body,
                                         headers=a).status_code == 200
        assert limited.post("/v1/evaluate", json=body, headers=a).status_code == 429
    finally:
        other.extensions[EXTENSION].close()


def test_without_redis_the_limit_holds_per_worker() -> None:
    app = create_app(Config(redis_url="redis://127.0.0.1:1/0", redis_timeout_ms=20,
                            env="test", inline_per_minute=1))
    root = app.extensions[EXTENSION].inline.workspace.root
    try:
        client = app.test_client()
        body = attacks.evaluation(attacks.default_rules())
        assert client.post("/v1/evaluate", json=body).status_code == 200
        assert client.post("/v1/evaluate", json=body).status_code == 429
        assert root.is_dir()
    finally:
        app.extensions[EXTENSION].close()
    assert not root.exists()  # the app's workspace goes with it
