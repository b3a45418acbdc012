"""Hot reload: a valid rule change goes live atomically once the folder has settled; a
broken one is refused and the running rules stay; replaced engines are freed only when no
decision uses them. The attacks on reloading, under `escalator serve`, are in
tests/policy/test_reload_attacks.py."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.rulesets import configmap_mount, copy_rules, set_version
from support.servers import http, metric, start_serve, wait_for

from escalator.app import create_app
from escalator.config import Config, default_rules_dir
from escalator.http.services import EXTENSION
from escalator.policy import PolicyHolder, load_policy
from escalator.ruleset.compiler import RuleSetClosed


def break_rules(folder: Path) -> None:
    loops = folder / "loops.yaml"
    loops.write_text(loops.read_text().replace("loop.bot_repeats", "loop.bot_repeat"))


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return copy_rules(tmp_path / "rules")


# Short, so tests do not wait long for a change to settle (the default is 2 s).
SETTLE = 0.3


@pytest.fixture
def asked_app(make_app: Callable[..., Flask], rules: Path) -> Flask:
    """The service on `rules`, without polling, and no reload thread until a reload is asked:
    that ask then starts the thread, and the thread's first read answers it. (Started with
    the app, its first read, the catch-up at worker start, could come after the test's
    edit and take the change itself, leaving the ask an 'unchanged': a race a loaded
    machine has lost.)"""
    return make_app(rules_dir=rules, reload_settle_seconds=SETTLE, start_reloader=False)


@pytest.fixture
def reloading_app(make_app: Callable[..., Flask], rules: Path) -> Flask:
    return make_app(rules_dir=rules, reload_interval_seconds=0.05, reload_settle_seconds=SETTLE)


def test_reload_over_http_swaps_a_valid_change_and_refuses_a_broken_one(
        asked_app: Flask, rules: Path) -> None:
    app = asked_app
    client = app.test_client()

    def reloads(result: str) -> float:
        scraped = client.get("/metrics").get_data(as_text=True)
        return metric(scraped, f'escalator_ruleset_reloads_total{{result="{result}"}}')

    succeeded, failed = reloads("success"), reloads("failed")
    set_version(rules, "2026.12.0")
    reloaded = client.post("/v1/ruleset/reload")
    assert reloaded.status_code == 200
    assert (reloads("success"), reloads("failed")) == (succeeded + 1, failed)
    assert reloaded.get_json()["result"] == "reloaded"
    assert client.get("/v1/ruleset").get_json()["version"] == "2026.12.0"

    break_rules(rules)
    set_version(rules, "2026.12.1-broken")
    refused = client.post("/v1/ruleset/reload")
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_ruleset"
    assert any("loop.bot_repeat" in p and "loops.yaml" in p
               for p in error["details"]["problems"])
    assert client.get("/v1/ruleset").get_json()["version"] == "2026.12.0"
    turn = client.post("/v1/conversations/reload-1/turns",
                       json={"turn_id": "t-1", "message": {"text": "agent please"}})
    assert turn.get_json()["ruleset"]["version"] == "2026.12.0"
    client.delete("/v1/conversations/reload-1")
    # Counted once: the series exists from the start at 0, so being there says nothing.
    assert (reloads("success"), reloads("failed")) == (succeeded + 1, failed + 1)


def test_polling_picks_up_a_change(reloading_app: Flask, rules: Path) -> None:
    client = reloading_app.test_client()
    set_version(rules, "2026.12.5")
    wait_for(lambda: client.get("/v1/ruleset").get_json()["version"] == "2026.12.5", 10,
             "the poller reloads the changed folder")


def test_a_replaced_policy_is_freed_only_when_its_last_user_is_done() -> None:
    first = load_policy(default_rules_dir())
    holder = PolicyHolder(first)
    with holder.use() as in_flight:
        holder.swap(load_policy(default_rules_dir()))
        # Still usable by the decision that took it before the swap.
        assert in_flight.engine.evaluate({"requested_human": True}).decision == \
            "route_to_human"
    with pytest.raises(RuleSetClosed):
        first.engine.evaluate({"requested_human": True})
    holder.close()


@pytest.mark.slow
def test_a_broken_push_under_load_fails_no_request_and_keeps_the_old_rules(
        tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    shipped = load_policy(rules)
    version = shipped.ruleset.version
    shipped.close()
    base, server = start_serve(tmp_path, ESCALATOR_RULES_DIR=str(rules),
                               ESCALATOR_RELOAD_INTERVAL_SECONDS="0.2",
                               ESCALATOR_RELOAD_SETTLE_SECONDS=str(SETTLE))
    statuses: list[int] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            statuses.append(_post(f"{base}/v1/conversations/load-{worker}-{n % 7}/turns",
                                  {"turn_id": f"t-{n}", "message": {"text": f"question {n}"}}))

    try:
        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        break_rules(rules)
        set_version(rules, "2027.1.0-broken")
        # Every worker polls, refuses and counts the broken set.
        wait_for(lambda: metric(str(http(f"{base}/metrics")[1]),
                                'escalator_ruleset_reloads_total{result="failed"}') >= 2, 20,
                 "both workers refuse the broken rules")
        versions = {_version(base) for _ in range(10)}
        assert versions == {version}

        copy_rules(tmp_path / "fixed")
        set_version(tmp_path / "fixed", "2027.1.1")
        shutil.rmtree(rules)
        shutil.move(tmp_path / "fixed", rules)
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: {_version(base) for _ in range(10)} == {"2027.1.1"}, 20,
                 "every worker reloads on SIGHUP")
        stop.set()
        for thread in threads:
            thread.join()
        assert len(statuses) > 50
        assert set(statuses) == {200}
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _post(url: str, body: dict[str, Any]) -> int:
    """The status of a POST; -1 when the service cannot be reached at all."""
    try:
        return http(url, body)[0]
    except OSError:
        return -1


def _version(base: str) -> str:
    _, body = http(f"{base}/v1/ruleset")
    assert isinstance(body, dict)
    version: str = body["version"]
    return version


def test_a_configmap_style_symlink_swap_is_picked_up(redis_url: str, tmp_path: Path) -> None:
    mount = configmap_mount(tmp_path / "mount", "..2026_11_27_1")
    # A swap is complete at once: it must not wait to settle (here: long).
    app = create_app(Config(redis_url=redis_url, env="test", rules_dir=mount,
                            reload_interval_seconds=0.05, reload_settle_seconds=60))
    try:
        client = app.test_client()
        assert client.get("/v1/ruleset").get_json()["version"] != "2027.2.0"
        second = copy_rules(mount / "..2026_11_27_2")
        set_version(second, "2027.2.0")
        (mount / "..data_tmp").symlink_to(second.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        wait_for(lambda: client.get("/v1/ruleset").get_json()["version"] == "2027.2.0", 10,
                 "the poller follows the swapped ..data link")
        # The kubelet removes the old generation after the swap; the admin reload also
        # takes a swapped folder at once.
        shutil.rmtree(mount / "..2026_11_27_1")
        third = copy_rules(mount / "..2026_11_27_3")
        set_version(third, "2027.2.1")
        (mount / "..data_tmp").symlink_to(third.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        started = time.monotonic()
        reloaded = client.post("/v1/ruleset/reload")
        assert reloaded.status_code == 200, reloaded.get_json()
        assert reloaded.get_json()["version"] == "2027.2.1"
        assert time.monotonic() - started < 30
    finally:
        app.extensions[EXTENSION].close()


def test_a_change_that_keeps_the_version_is_reloaded_with_a_warning(
        asked_app: Flask, rules: Path) -> None:
    # Without polling, so that the reload asked here is the one that activates the change.
    app = asked_app
    client = app.test_client()
    before = client.get("/v1/ruleset").get_json()
    loops = rules / "loops.yaml"
    loops.write_text(loops.read_text().replace("description: ", "description: Edited. ",
                                               1))
    reloaded = client.post("/v1/ruleset/reload")
    assert reloaded.status_code == 200
    body = reloaded.get_json()
    assert body["result"] == "reloaded" and body["version"] == before["version"]
    assert body["digest"] != before["digest"]
    assert body["warnings"] == [
        f"the rules changed but their version is still '{before['version']}': decisions "
        "made before and after the change name the same version (their digests "
        "differ); change 'version' with every edit"]
    again = client.post("/v1/ruleset/reload").get_json()
    assert again["result"] == "unchanged" and "warnings" not in again


def test_the_admin_reload_waits_for_a_copy_to_settle_and_answers_409_if_it_does_not(
        asked_app: Flask, rules: Path) -> None:
    app = asked_app
    services = app.extensions[EXTENSION]
    services.reloader.admin_wait_seconds = 1.0
    client = app.test_client()
    writing = threading.Event()
    stop = threading.Event()

    def copy_that_never_ends() -> None:
        # Appends, so the file changes all the time but is never caught empty (a truncate
        # and rewrite can be read empty twice in a row on a busy machine, which is a
        # settled, refused folder rather than a copy in progress).
        topics = rules / "topics.yaml"
        n = 0
        while not stop.is_set():
            n += 1
            with topics.open("a", encoding="utf-8") as out:
                out.write(f"# {n}\n")
            writing.set()
            stop.wait(0.02)  # the writer's pace, well under the settle time

    writer = threading.Thread(target=copy_that_never_ends)
    try:
        version = client.get("/v1/ruleset").get_json()["version"]
        writer.start()
        writing.wait(10)
        started = time.monotonic()
        busy = client.post("/v1/ruleset/reload")
        took = time.monotonic() - started
        assert busy.status_code == 409
        assert busy.get_json()["error"]["code"] == "reload_in_progress"
        assert "activated once it has been unchanged for 0.3 s" in \
            busy.get_json()["error"]["message"]
        assert busy.headers["Retry-After"] == "1"
        assert 1.0 <= took < 10
        assert client.get("/v1/ruleset").get_json()["version"] == version
        stop.set()
        writer.join()
        # The copy is done: the same request now activates it, after one settle time.
        set_version(rules, "2027.3.0")
        reloaded = client.post("/v1/ruleset/reload")
        assert reloaded.status_code == 200 and reloaded.get_json()["version"] == "2027.3.0"
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()


def test_a_link_leading_out_of_the_folder_is_refused_and_the_digest_stays(
        reloading_app: Flask, rules: Path) -> None:
    client = reloading_app.test_client()
    digest = client.get("/v1/ruleset").get_json()["digest"]
    (rules / "lexicons" / "system.yaml").symlink_to("/etc/passwd")
    refused = client.post("/v1/ruleset/reload")
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"]["problems"] == [
        f"{rules}/lexicons/system.yaml: is a link to /etc/passwd, outside the rules folder; "
        "only files inside the folder are read (copy the file in instead)"]
    assert client.get("/v1/ruleset").get_json()["digest"] == digest
