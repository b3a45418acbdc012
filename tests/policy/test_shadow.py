"""Shadow rule sets: judged on every live turn's facts, deciding nothing; reloaded and
refused like the live rules without ever touching them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from support.rulesets import VIP_RULE, copy_rules, set_version

from escalator.app import create_app
from escalator.config import Config
from escalator.http.services import EXTENSION
from escalator.pipeline import STICKY_RULE


def shadow_folder(where: Path) -> Path:
    folder = copy_rules(where)
    (folder / "vip.yaml").write_text(VIP_RULE)
    set_version(folder, "shadow-1")
    return folder


def start(redis_url: str, tmp_path: Path, shadow: Path | None) -> tuple[Flask, Path]:
    log = tmp_path / "decisions.jsonl"
    app = create_app(Config(redis_url=redis_url, env="test", decision_log=str(log),
                            shadow_rules_dir=shadow, reload_settle_seconds=0),
                     start_reloader=False)
    return app, log


@pytest.fixture
def shadowed(redis_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Path, Path]]:
    folder = shadow_folder(tmp_path / "shadow")
    app, log = start(redis_url, tmp_path, folder)
    yield app, log, folder
    app.extensions[EXTENSION].close()


def turn(client: FlaskClient, cid: str, turn_id: str, text: str = "Where is my parcel?",
         query: str = "", **extra: Any) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{cid}/turns{query}",
                           json={"turn_id": turn_id, "message": {"text": text}, **extra})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def disagreements(active: str, shadow: str) -> float:
    return REGISTRY.get_sample_value("escalator_shadow_disagreements_total",
                                     {"active_rule": active, "shadow_rule": shadow}) or 0.0


def records(log: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return {r["decision_id"]: r for r in lines}


def test_the_shadow_decides_nothing_but_is_recorded_and_counted(
        shadowed: tuple[Flask, Path, Path], new_conversation_id: Callable[..., str]) -> None:
    app, log, _ = shadowed
    client = app.test_client()
    before = disagreements("none", "vip-to-a-person")
    plain = turn(client, new_conversation_id(), "t-1", context={"vip": True})
    # The answer is the live decision, without a shadow block.
    assert plain["decision"] == "keep_with_bot" and "shadow" not in plain
    assert disagreements("none", "vip-to-a-person") == before + 1
    record = records(log)[plain["decision_id"]]
    assert record["kind"] == "decision"
    assert record["shadow"]["decision"] == "route_to_human"
    assert record["shadow"]["rules"] == ["vip-to-a-person"]
    assert record["shadow"]["agrees"] is False
    assert record["shadow"]["ruleset"]["version"] == "shadow-1"
    assert record["ruleset"]["version"] != "shadow-1"

    asked = turn(client, new_conversation_id(), "t-1", query="?shadow=1",
                 context={"vip": True})
    assert asked["decision"] == "keep_with_bot"
    assert asked["shadow"] == {**record["shadow"], "ruleset": asked["shadow"]["ruleset"]}
    agreeing = turn(client, new_conversation_id(), "t-1", query="?shadow=true")
    assert agreeing["shadow"]["agrees"] is True
    assert records(log)[agreeing["decision_id"]]["shadow"]["agrees"] is True


def test_a_conversation_with_a_person_stays_with_them_in_the_shadow_too(
        shadowed: tuple[Flask, Path, Path], new_conversation_id: Callable[..., str]) -> None:
    client = shadowed[0].test_client()
    cid = new_conversation_id()
    first = turn(client, cid, "t-1", "I want to talk to a human", query="?shadow=1")
    assert first["shadow"]["agrees"] is True
    second = turn(client, cid, "t-2", "thanks", query="?shadow=1", context={"vip": True})
    assert second["shadow"]["rules"][:2] == [STICKY_RULE, "vip-to-a-person"]
    assert second["shadow"]["agrees"] is True


def test_a_retry_has_no_shadow_and_is_not_judged_again(
        shadowed: tuple[Flask, Path, Path], new_conversation_id: Callable[..., str]) -> None:
    client = shadowed[0].test_client()
    cid = new_conversation_id()
    turn(client, cid, "t-1", context={"vip": True})
    before = disagreements("none", "vip-to-a-person")
    retried = turn(client, cid, "t-1", query="?shadow=1", context={"vip": True})
    assert retried["replayed"] is True and retried["shadow"] is None
    assert disagreements("none", "vip-to-a-person") == before


def test_a_broken_shadow_folder_is_refused_and_the_previous_shadow_stays(
        shadowed: tuple[Flask, Path, Path], new_conversation_id: Callable[..., str]) -> None:
    app, _, folder = shadowed
    svc = app.extensions[EXTENSION]
    live = svc.policies.current
    (folder / "vip.yaml").write_text(VIP_RULE.replace("eq: true", "equals: true"))
    result = svc.pipeline.shadow.reloader.reload("test")
    assert result.result == "failed"
    assert any("vip.yaml" in str(p) for p in result.problems)
    assert svc.policies.current is live
    body = turn(app.test_client(), new_conversation_id(), "t-1", query="?shadow=1",
                context={"vip": True})
    assert body["shadow"]["ruleset"]["version"] == "shadow-1"
    assert body["shadow"]["rules"] == ["vip-to-a-person"]

    # Fixed: the new shadow replaces the old one; the live rules are still untouched.
    (folder / "vip.yaml").write_text(VIP_RULE.replace("eq: true", "eq: false"))
    set_version(folder, "shadow-2")
    assert svc.pipeline.shadow.reloader.reload("test").result == "reloaded"
    assert svc.policies.current is live
    body = turn(app.test_client(), new_conversation_id(), "t-1", query="?shadow=1",
                context={"vip": True})
    assert body["shadow"] == {**body["shadow"], "ruleset": body["shadow"]["ruleset"],
                              "decision": "keep_with_bot", "rules": [], "agrees": True}
    assert body["shadow"]["ruleset"]["version"] == "shadow-2"
    shadow_sets = {labels["version"]: value for labels, value in (
        (sample.labels, sample.value) for metric in REGISTRY.collect()
        if metric.name == "escalator_shadow_ruleset_info" for sample in metric.samples)}
    assert (shadow_sets["shadow-1"], shadow_sets["shadow-2"]) == (0, 1)


def test_a_shadow_folder_broken_at_start_does_not_stop_the_service(
        redis_url: str, tmp_path: Path, new_conversation_id: Callable[..., str]) -> None:
    folder = shadow_folder(tmp_path / "shadow")
    (folder / "vip.yaml").write_text("rules: [")
    app, log = start(redis_url, tmp_path, folder)
    try:
        client = app.test_client()
        body = turn(client, new_conversation_id(), "t-1", query="?shadow=1")
        assert body["shadow"] is None
        assert "shadow" not in records(log)[body["decision_id"]]
        (folder / "vip.yaml").write_text(VIP_RULE)
        assert app.extensions[EXTENSION].pipeline.shadow.reloader.reload(
            "test").result == "reloaded"
        body = turn(client, new_conversation_id(), "t-1", query="?shadow=1",
                    context={"vip": True})
        assert body["shadow"]["agrees"] is False
    finally:
        app.extensions[EXTENSION].close()


def test_without_a_shadow_the_answer_says_so_when_asked(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    assert turn(client, new_conversation_id(), "t-1", query="?shadow=1")["shadow"] is None
    assert "shadow" not in turn(client, new_conversation_id(), "t-1")


def test_the_admin_route_reloads_the_shadow_and_names_a_refused_folders_problems(
        shadowed: tuple[Flask, Path, Path], new_conversation_id: Callable[..., str]) -> None:
    app, _, folder = shadowed
    client = app.test_client()
    live = client.get("/v1/ruleset").get_json()
    (folder / "vip.yaml").write_text(VIP_RULE.replace("eq: true", "equals: true"))
    refused = client.post("/v1/shadow/reload")
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_ruleset"
    assert {d["file"] for d in error["details"]["diagnostics"]} == {"vip.yaml"}
    assert turn(client, new_conversation_id(), "t-1", query="?shadow=1")["shadow"][
        "ruleset"]["version"] == "shadow-1"
    (folder / "vip.yaml").write_text(VIP_RULE.replace("priority: 95", "priority: 94"))
    set_version(folder, "shadow-2")
    reloaded = client.post("/v1/shadow/reload")
    assert reloaded.status_code == 200
    assert reloaded.get_json()["result"] == "reloaded"
    assert reloaded.get_json()["version"] == "shadow-2"
    assert client.get("/v1/ruleset").get_json() == live


def test_the_shadow_route_needs_an_admin_key_and_a_shadow(
        redis_url: str, tmp_path: Path) -> None:
    app = create_app(Config(redis_url=redis_url, env="test", api_keys=("k-caller",),
                            admin_keys=("k-admin",)), start_reloader=False)
    try:
        client = app.test_client()
        assert client.post("/v1/shadow/reload", headers={
            "Authorization": "Bearer k-caller"}).status_code == 403
        missing = client.post("/v1/shadow/reload", headers={"Authorization": "Bearer k-admin"})
        assert missing.status_code == 404
        assert missing.get_json()["error"]["code"] == "not_found"
    finally:
        app.extensions[EXTENSION].close()
