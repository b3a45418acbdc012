"""`escalator replay`: a corpus through one rule set, or two side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.rulesets import copy_rules

from escalator.cli import main
from escalator.config import default_rules_dir


def conversation(cid: str, *texts: str) -> str:
    return json.dumps({"conversation_id": cid,
                       "turns": [{"message": {"text": t}} for t in texts]})


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join([
        conversation("calm", "What time do you open?", "Thanks!"),
        conversation("asks", "Hello", "I want to speak to a human"),
        "",
        json.dumps({"conversation_id": "fails", "turns": [
            {"message": {"intent": "x"}, "bot": {"prompt_id": f"p{i}", "fallback": True}}
            for i in range(3)]}),
    ]) + "\n")
    return path


@pytest.fixture
def strict_rules(tmp_path: Path) -> Path:
    """The default rules with the fallback cap lowered from 3 to 2."""
    folder = tmp_path / "strict"
    copy_rules(folder, with_tests=True)
    floor = folder / "ruleset.yaml"
    floor.write_text(floor.read_text().replace("{fact: loop.fallback_streak, gte: 3}",
                                               "{fact: loop.fallback_streak, gte: 2}")
                     .replace('version: "', 'version: "strict-'))
    return folder


def replay(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["replay", *args])
    return result.exit_code, result.output


def test_a_replay_reports_rates_first_turns_and_rule_counts(corpus: Path) -> None:
    code, output = replay(str(corpus), "--json")
    assert code == 0, output
    body = json.loads(output[output.index("{"):])
    assert body["conversations"] == 3 and body["turns"] == 7
    assert body["escalation_rate"]["rules"] == pytest.approx(2 / 3, abs=1e-4)
    summary = body["rules"]
    assert summary["first_escalation_turn"] == {"mean": 2.5, "median": 2.5}
    assert summary["rule_matches"]["explicit-human-request"] == 1
    assert summary["deciding_rules"] == {"explicit-human-request": 1, "bot-fallback-cap": 1}


def test_against_another_rule_set_lists_the_conversations_that_change(
        corpus: Path, strict_rules: Path) -> None:
    code, output = replay(str(corpus), "--rules", str(strict_rules), "--against",
                          str(default_rules_dir()))
    assert code == 0, output
    assert "decisions changed in 1 of 3 conversations" in output
    assert "fails turn 2: keep_with_bot (default) -> route_to_human (bot-fallback-cap)" in output
    code, output = replay(str(corpus), "--rules", str(strict_rules), "--against",
                          str(default_rules_dir()), "--json")
    body = json.loads(output[output.index("{"):])
    assert body["decisions_changed"] == 1
    # Both route the failing conversation in the end: the rate is the same, the turn not.
    assert body["escalation_rate"] == {"rules": pytest.approx(2 / 3, abs=1e-4),
                                       "against": pytest.approx(2 / 3, abs=1e-4)}
    assert body["rules"]["first_escalation_turn"]["mean"] == 2.0
    assert body["changes"][0]["conversation_id"] == "fails"


def test_a_bad_corpus_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(conversation("ok", "hi") + "\n" + '{"turns": [{"message": {}}]}\n')
    code, output = replay(str(path))
    assert code != 0
    assert "bad.jsonl:2" in output and "Some turns are not valid" in output
    path.write_text("not json\n")
    code, output = replay(str(path))
    assert code != 0 and "bad.jsonl:1: not JSON" in output


def test_a_replay_writes_the_service_decision_records_for_a_report(
        corpus: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    code, output = replay(str(corpus), "--decision-log", str(log))
    assert code == 0, output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 7  # one per turn, as the service logs each decision
    assert [r["conversation_id"] for r in records] == ["calm"] * 2 + ["asks"] * 2 + ["fails"] * 3
    asks = records[3]
    assert asks["decision"] == "route_to_human" and asks["rules"][0] == "explicit-human-request"
    assert asks["facts"]["requested_human"] is True
    # What the customer wrote is nowhere in the records: only numbers, labels and ids.
    assert "speak to a human" not in log.read_text()
    result = CliRunner().invoke(main, ["report", str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    # "asks" routes at its turn 2 and "fails" at its turn 3: 2 handoffs in 7 decisions.
    e = body["escalation"]
    assert (e["decisions"], e["handoffs"], e["with_person"]) == (7, 2, 0)
    assert {r["rule"]: r["decided"] for r in e["by_rule"]} == {
        "(default)": 5, "explicit-human-request": 1, "bot-fallback-cap": 1}


def mixed_corpus(path: Path, conversations: int) -> Path:
    """Conversations of several kinds, so that rules match, route at various turns, and
    the strict rules change some decisions."""
    lines = []
    for n in range(conversations):
        kind = n % 5
        if kind == 0:
            lines.append(conversation(f"calm-{n}", "What time do you open?", "Thanks!"))
        elif kind == 1:
            lines.append(conversation(f"asks-{n}", *["Hello"] * (n % 4),
                                      "I want to speak to a human"))
        elif kind == 2:
            lines.append(json.dumps({"conversation_id": f"fails-{n}", "turns": [
                {"message": {"intent": "x"}, "bot": {"prompt_id": f"p{i}", "fallback": True}}
                for i in range(2 + n % 3)]}))
        elif kind == 3:
            lines.append(conversation(f"angry-{n}", "My parcel never came",
                                      "This is the THIRD time I ask, useless!!",
                                      "I will cancel and report you"))
        else:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jobs_give_the_result_of_one_job(tmp_path: Path, strict_rules: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from escalator.tools import replay as replaying

    # Small chunks: the 3 jobs get many each, and their results arrive out of order.
    monkeypatch.setattr(replaying, "CHUNK_LINES", 7)
    corpus = mixed_corpus(tmp_path / "mixed.jsonl", 120)
    args = [str(corpus), "--rules", str(strict_rules), "--against",
            str(default_rules_dir()), "--json"]
    code, one = replay(*args, "--jobs", "1")
    assert code == 0, one
    code, three = replay(*args, "--jobs", "3")
    assert code == 0, three
    assert three == one  # byte for byte: counts, rule order, changes and their order
    body = json.loads(one)
    assert body["conversations"] == 96 and body["decisions_changed"] > 1
    assert [c["conversation_id"] for c in body["changes"]] == sorted(
        (c["conversation_id"] for c in body["changes"]),
        key=lambda cid: int(cid.rsplit("-", 1)[1]))
    code, text_one = replay(*args[:-1], "--jobs", "1")
    code, text_three = replay(*args[:-1], "--jobs", "3")
    assert text_three == text_one


def test_jobs_write_the_decision_records_of_one_job_in_corpus_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from escalator.tools import replay as replaying

    monkeypatch.setattr(replaying, "CHUNK_LINES", 7)  # many chunks, finishing out of order
    corpus = mixed_corpus(tmp_path / "mixed.jsonl", 60)
    logs = {jobs: tmp_path / f"decisions-{jobs}.jsonl" for jobs in ("1", "3")}
    for jobs, log in logs.items():
        code, output = replay(str(corpus), "--jobs", jobs, "--decision-log", str(log))
        assert code == 0, output

    def without_clock(log: Path) -> list[dict[str, Any]]:
        # The corpus has no timestamps, so times and conversation minutes come from the
        # replay's clock (and decision ids are new): everything else must be the same.
        records = [json.loads(line) for line in log.read_text().splitlines()]
        for record in records:
            del record["time"], record["decision_id"]
            del record["facts"]["conversation.minutes"]
            if record["handoff"] is not None:
                del record["handoff"]["brief"]["conversation"]["minutes"]
        return records

    one, three = (without_clock(log) for log in logs.values())
    assert len(one) > 60 and three == one


def test_jobs_name_the_first_bad_line_as_one_job_does(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from escalator.tools import replay as replaying

    monkeypatch.setattr(replaying, "CHUNK_LINES", 5)
    path = mixed_corpus(tmp_path / "bad.jsonl", 40)
    lines = path.read_text().splitlines()
    lines[22] = "not json"
    lines[31] = '{"turns": [{"message": {}}]}'
    path.write_text("\n".join(lines) + "\n")
    outputs = set()
    for jobs in ("1", "2"):
        code, output = replay(str(path), "--jobs", jobs)
        assert code != 0
        assert "bad.jsonl:23: not JSON" in output
        outputs.add(output)
    assert len(outputs) == 1


def test_no_progress_bar_when_stderr_is_not_a_terminal(corpus: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(corpus), "--json", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    json.loads(result.output)  # nothing but the JSON: no "replaying" label or bar
