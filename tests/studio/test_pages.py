"""Every studio route through the Flask client, as a policy owner's browser uses them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import default_version
from support.servers import wait_for
from support.studio import CORPUS, finished, token

from escalator.ruleset.model import MAX_PRIORITY
from escalator.ruleset.previous import next_version


def _text(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return response.get_data(as_text=True)


def _spike_form(csrf: str, value: str, action: str = "apply") -> dict[str, str]:
    return {"csrf_token": csrf, "original": "frustration-spike", "flat": "1",
            "id": "frustration-spike", "description": "Very frustrated.", "priority": "69",
            "match": "all", "fact-0": "frustration.score", "op-0": "gte", "value-0": value,
            "fact-1": "", "op-1": "eq", "value-1": "", "decision": "route_to_human",
            "queue": "", "urgency": "high", "message": "Sorry. A person will help.",
            "action": action}


def test_the_rules_page_reads_every_rule_as_a_sentence(studio: FlaskClient) -> None:
    page = _text(studio, "/studio/")
    assert ("Route to a person, queue <em>support</em>, urgency <em>high</em>, when the "
            "customer&#39;s average frustration is at least <em>0.65</em> and this is turn "
            "<em>3</em> or later.") in page
    assert "floor: honours a request for a person" in page
    assert "floor: caps bot failures" in page
    assert "Tested by: An explicit request for a person routes at once" in page
    assert "Outranks" in page


def test_a_studio_page_is_refused_under_another_host_name(studio: FlaskClient) -> None:
    response = studio.get("/studio/", headers={"Host": "attacker.example:5000"})
    assert response.status_code == 400


def test_every_post_needs_the_pages_token(studio: FlaskClient, rules: Path) -> None:
    before = (rules / "frustration.yaml").read_text()
    for path in ("/studio/rules/frustration-spike", "/studio/save",
                 "/studio/rules/frustration-spike/delete", "/studio/api/check-rule"):
        response = studio.post(path, data=_spike_form("forged", "0.5"))
        assert response.status_code == 403, path
    assert (rules / "frustration.yaml").read_text() == before


def test_pages_carry_their_security_headers_and_cookie(studio: FlaskClient) -> None:
    fresh = studio.application.test_client()
    response = fresh.get("/studio/", headers={"Host": "127.0.0.1"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/studio" in cookie
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_an_impossible_threshold_is_shown_on_its_row_and_not_applied(
        studio: FlaskClient, rules: Path) -> None:
    csrf = token(studio)
    answer = studio.post("/studio/api/check-rule", data=_spike_form(csrf, "4")).get_json()
    assert answer["ok"] is False
    (row,) = answer["rows"]
    assert (row["row"], row["code"], row["message"]) == (
        0, "never_true", "'frustration.score' is between 0 and 1, so 'gte 4' can never be "
                         "true; check the threshold")
    assert [p["code"] for p in answer["problems"]] == ["never_true"]
    response = studio.post("/studio/rules/frustration-spike", data=_spike_form(csrf, "4"))
    assert response.status_code == 422
    assert "can never be true" in response.get_data(as_text=True)
    answer = studio.post("/studio/api/check-rule", data=_spike_form(csrf, "0.8")).get_json()
    assert answer["ok"] is True and answer["rows"] == []
    assert "at least <em>0.8</em>" in answer["sentence"]
    assert "gte: 0.85" in (rules / "frustration.yaml").read_text()


def test_a_form_edit_goes_to_the_draft_and_is_saved_with_a_new_version(
        studio: FlaskClient, rules: Path) -> None:
    csrf = token(studio)
    assert f"0 to {MAX_PRIORITY}. Of the rules" in _text(studio, "/studio/rules/frustration-spike")
    response = studio.post("/studio/rules/frustration-spike", data=_spike_form(csrf, "0.8"))
    assert response.status_code == 302
    assert "at least <em>0.8</em>" in _text(studio, "/studio/")
    assert "gte: 0.85" in (rules / "frustration.yaml").read_text()  # not yet
    save_page = _text(studio, "/studio/save")
    new = next_version(default_version())
    assert f'value="{new}"' in save_page
    assert "+        - {fact: frustration.score, gte: 0.8}" in save_page
    response = studio.post("/studio/save", data={"csrf_token": csrf, "action": "save",
                                                 "version": new})
    assert "Saved frustration.yaml, ruleset.yaml." in response.get_data(as_text=True)
    assert "{fact: frustration.score, gte: 0.8}" in (rules / "frustration.yaml").read_text()
    assert f'version: "{new}"' in (rules / "ruleset.yaml").read_text()
    assert not [p for p in rules.iterdir() if p.name.startswith(".")]
    check = subprocess.run([sys.executable, "-m", "escalator", "rules", "check", str(rules)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_saving_is_refused_while_the_check_fails(studio: FlaskClient, rules: Path) -> None:
    csrf = token(studio)
    broken = (rules / "loops.yaml").read_text().replace("loop.bot_repeats",
                                                        "loop.bot_repeat")
    studio.post("/studio/files/loops.yaml", data={"csrf_token": csrf, "text": broken})
    page = _text(studio, "/studio/save")
    assert "unknown fact &#39;loop.bot_repeat&#39;" in page
    assert "disabled" in page
    response = studio.post("/studio/save", data={"csrf_token": csrf, "action": "save"})
    assert response.status_code == 409
    assert "Not saved" in response.get_data(as_text=True)
    assert "loop.bot_repeat}" not in (rules / "loops.yaml").read_text()


def test_the_yaml_check_names_the_line(studio: FlaskClient) -> None:
    csrf = token(studio)
    text = "rules:\n  - id: x\n    priority:70\n"
    answer = studio.post("/studio/api/check", json={"file": "extra.yaml", "text": text},
                         headers={"X-CSRF-Token": csrf}).get_json()
    assert answer["ok"] is False
    assert any(p["file"] == "extra.yaml" and p["line"] == 3 and p["code"] == "yaml_syntax"
               and p["severity"] == "error" for p in answer["problems"])
    assert "codemirror-5.65.21/lib/codemirror.js" in _text(studio, "/studio/files/loops.yaml")


def test_add_copy_move_and_delete_a_rule(studio: FlaskClient, rules: Path) -> None:
    csrf = token(studio)
    form = _spike_form(csrf, "0.9")
    form.update({"original": "", "id": "furious-gold", "file": "frustration.yaml",
                 "fact-1": "customer.tier", "op-1": "in", "value-1": "gold, platinum"})
    assert studio.post("/studio/rules/new", data=form).status_code == 302
    page = _text(studio, "/studio/")
    assert ("the frustration in this message is at least <em>0.9</em> and the customer&#39;s "
            "tier is <em>gold</em> or <em>platinum</em>") in page
    assert studio.post("/studio/rules/furious-gold/copy",
                       data={"csrf_token": csrf}).status_code == 302
    assert 'id="rule-furious-gold-copy"' in _text(studio, "/studio/")
    studio.post("/studio/rules/furious-gold/delete", data={"csrf_token": csrf})
    page = _text(studio, "/studio/")
    assert 'id="rule-furious-gold"' not in page and 'id="rule-furious-gold-copy"' in page
    order = re.findall(r'<li class="rule" id="rule-([a-z0-9-]+)"', _text(studio, "/studio/"))
    below = order[order.index("frustration-spike") + 1]
    studio.post("/studio/rules/frustration-spike/move",
                data={"csrf_token": csrf, "direction": "down"})
    order = re.findall(r'<li class="rule" id="rule-([a-z0-9-]+)"', _text(studio, "/studio/"))
    assert order.index("frustration-spike") == order.index(below) + 1


def test_the_playground_decides_with_both_rule_sets(studio: FlaskClient) -> None:
    csrf = token(studio)
    studio.post("/studio/rules/frustration-spike", data=_spike_form(csrf, "0.8"))
    page = studio.post("/studio/try", data={
        "csrf_token": csrf, "text-1": "I want to talk to a human", "channel-1": "web",
        "text-2": "", "intent-2": "order_status", "fallback-2": "on",
        "context-2": "agents_available=0"}).get_data(as_text=True)
    assert page.count("Decided by <strong>explicit-human-request</strong>") == 2
    assert "frustration" in page and "All facts the rules saw" in page
    # The handoff brief, as the person taking over gets it.
    assert page.count("What the person taking over is told") == 4  # 2 turns, 2 rule sets
    assert "<dt>Asked for a person</dt><dd>yes</dd>" in page
    assert "<dt>Tier and channel</dt><dd>(not sent), web</dd>" in page
    bad = studio.post("/studio/try", data={"csrf_token": csrf, "text-1": "hi",
                                           "channel-1": "w e b"}).get_data(as_text=True)
    assert "Some turns are not valid" in bad


def test_replay_shows_the_numbers_of_escalator_replay(studio_app: Flask, studio: FlaskClient,
                                                       rules: Path, tmp_path: Path) -> None:
    finished(studio_app)
    csrf = token(studio)
    studio.post("/studio/rules/frustration-spike", data=_spike_form(csrf, "0.8"))
    response = studio.post("/studio/replay", data={"csrf_token": csrf, "corpus": "0"})
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    finished(studio_app)
    assert studio.get(f"/studio/api/replay/{job_id}").get_json()["status"] == "done"
    page = _text(studio, f"/studio/replay/{job_id}")
    edited = tmp_path / "edited"
    import shutil

    shutil.copytree(rules, edited)
    (edited / "frustration.yaml").write_text(
        (rules / "frustration.yaml").read_text().replace("gte: 0.85", "gte: 0.8"))
    import json

    expected = json.loads(subprocess.run(
        [sys.executable, "-m", "escalator", "replay", str(CORPUS), "--rules", str(edited),
         "--against", str(rules), "--json"], capture_output=True, text=True,
        check=True).stdout)
    assert f'id="changed-count">{expected["decisions_changed"]}<' in page
    assert f'id="rate-edited">{expected["escalation_rate"]["rules"] * 100:.1f}%<' in page
    assert f'id="rate-saved">{expected["escalation_rate"]["against"] * 100:.1f}%<' in page
    assert "<svg" in page and 'role="img"' in page
    changed = expected["changes"][0]["conversation_id"]
    conversation = _text(studio, f"/studio/replay/{job_id}/conversations/{changed}")
    assert "frustration-spike" in conversation
    assert "What the person taking over is told" in conversation  # the brief, from the replay
    audit = _text(studio, "/studio/audit")
    assert "Not enough decisions to compare" in audit
    assert "not enough decisions to compare (" in audit


def with_a_big_corpus(studio_app: Flask, tmp_path: Path) -> Any:
    """The studio (no replay running) with a second corpus, 4,000 times the first: 48,000
    conversations, a replay long enough to be caught running (4,800 were sometimes all
    replayed before the test's next request was served)."""
    finished(studio_app)
    big = tmp_path / "big.jsonl"
    big.write_text(CORPUS.read_text() * 4000)
    s = studio_app.extensions["escalator.studio"]
    s.corpora.append(big)
    return s


def test_a_replay_runs_in_a_process_of_its_own_which_cancelling_ends(
        studio_app: Flask, studio: FlaskClient, tmp_path: Path) -> None:
    s = with_a_big_corpus(studio_app, tmp_path)
    csrf = token(studio)
    response = studio.post("/studio/replay", data={"csrf_token": csrf, "corpus": "1"})
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job = s.jobs.get(job_id)
    wait_for(lambda: job.done > 0, 60, "the replay to get going")
    replaying = psutil.Process(job.pid)
    assert replaying.pid != os.getpid() and replaying.is_running()
    cancel = studio.post(f"/studio/replay/{job_id}/cancel", data={"csrf_token": csrf})
    assert cancel.status_code == 302
    finished(studio_app)
    progress = studio.get(f"/studio/api/replay/{job_id}").get_json()
    assert progress["status"] == "cancelled", progress
    assert 0 < progress["done"] < progress["total"] == 48000
    assert not psutil.pid_exists(replaying.pid)
    assert "cancelled" in _text(studio, f"/studio/replay/{job_id}")


def test_a_replay_whose_process_is_killed_fails_with_the_reason(
        studio_app: Flask, studio: FlaskClient, tmp_path: Path) -> None:
    s = with_a_big_corpus(studio_app, tmp_path)
    response = studio.post("/studio/replay", data={"csrf_token": token(studio), "corpus": "1"})
    job = s.jobs.get(response.headers["Location"].rsplit("/", 1)[1])
    wait_for(lambda: job.done > 0, 60, "the replay to get going")
    os.kill(job.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    finished(studio_app)
    assert job.status == "failed"
    assert job.error == "the replay's process ended unexpectedly (exit code -9)"
    assert "ended unexpectedly" in _text(studio, f"/studio/replay/{job.id}")


def test_closing_the_studio_ends_its_replays_first(studio_app: Flask, studio: FlaskClient,
                                                   tmp_path: Path) -> None:
    s = with_a_big_corpus(studio_app, tmp_path)
    response = studio.post("/studio/replay", data={"csrf_token": token(studio), "corpus": "1"})
    job = s.jobs.get(response.headers["Location"].rsplit("/", 1)[1])
    wait_for(lambda: job.done > 0, 60, "the replay to get going")
    s.close()  # as Ctrl-C does, with the replay still deciding
    assert job.status == "cancelled" and job.done < job.total == 48000
    assert not psutil.pid_exists(job.pid)


def test_the_rule_tests_page_runs_the_folders_tests(studio: FlaskClient) -> None:
    page = _text(studio, "/studio/tests")
    assert re.search(r'id="test-summary">\d+ passed, 0 failed<', page)
