"""`escalator report`: a small hand-built decision log whose every number is worked out
by hand below, the time range, the join of feedback to decisions (before, after, too
late), bad lines, the output formats and the command line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalator.cli import main
from escalator.config import default_rules_dir
from escalator.tools import report as reporting

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
DAY = 86400.0
SPIKE = "frustration-spike"  # the default rules: frustration.fitted >= 0.85
REPEATING = "customer-repeating"


def decision(decision_id: str, at: float, outcome: str, rules: list[str], *,
             channel: str | None = "web", language: str = "en", tier: str | None = "standard",
             score: float = 0.5, shadow: tuple[str, list[str]] | None = None,
             kind: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {
        "decision_id": decision_id, "time": at, "conversation_id": f"c-{decision_id}",
        "turn_id": "t-1", "turn_index": 1, "decision": outcome, "handoff": None,
        "rules": rules,
        "ruleset": {"name": "default", "version": "1", "digest": "sha256:aa"},
        "degraded": False,
        "segment": {"channel": channel, "language": language, "tier": tier, "segment": None},
        "facts": {"frustration.fitted": score, "frustration.score": score,
                  "frustration.mean": score / 2,
                  "turn_index": 1, "loop.repeats": 0, "requested_human": False},
    }
    if kind:
        record["kind"] = "decision"
    if shadow is not None:
        record["shadow"] = {"ruleset": {"name": "candidate", "version": "2",
                                        "digest": "sha256:bb"},
                            "decision": shadow[0], "rules": shadow[1],
                            "agrees": shadow[0] == outcome}
    return record


def feedback(decision_id: str, at: float, label: str, rules: list[str],
             outcome: str = "route_to_human", source: str = "agent") -> dict[str, Any]:
    return {"kind": "feedback", "time": at, "feedback_id": f"f-{decision_id}-{source}",
            "decision_id": decision_id, "conversation_id": f"c-{decision_id}",
            "label": label, "source": source, "reasons": [], "decision": outcome,
            "rules": rules}


ROUTE, KEEP = "route_to_human", "keep_with_bot"


def records() -> list[dict[str, Any]]:
    """Seven decisions and seven feedback records, one of them before its decision."""
    return [
        decision("d1", T0, ROUTE, [SPIKE], tier="gold", score=0.9, shadow=(KEEP, [])),
        decision("d2", T0 + 60, ROUTE, [SPIKE, "sustained-frustration"], score=0.86,
                 shadow=(ROUTE, [SPIKE])),
        feedback("d3", T0 + 100, "handoff_needed", [REPEATING]),  # before its decision
        decision("d3", T0 + 120, ROUTE, [REPEATING], channel="app", language="es"),
        decision("d4", T0 + 3610, KEEP, [], channel="app", tier=None, score=0.7,
                 shadow=(ROUTE, [SPIKE]), kind=False),
        decision("d5", T0 + 3620, KEEP, [], score=0.2, shadow=(ROUTE, [SPIKE])),
        decision("d6", T0 + 3630, ROUTE, ["handoff-in-progress", SPIKE], tier="gold",
                 score=0.95),
        feedback("d1", T0 + 3700, "handoff_needed", [SPIKE]),
        feedback("d2", T0 + 3800, "handoff_not_needed", [SPIKE, "sustained-frustration"]),
        feedback("d4", T0 + 3900, "should_have_escalated", [], KEEP),
        feedback("d5", T0 + 4000, "resolved_by_bot", [], KEEP, source="survey"),
        feedback("gone", T0 + 4100, "handoff_needed", [SPIKE]),  # its decision is not here
        decision("d7", T0 + 2 * DAY, KEEP, [], channel="voice"),
        feedback("d7", T0 + 2 * DAY + 10, "resolved_by_bot", [], KEEP),
    ]


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in rows))
    return path


@pytest.fixture(scope="module")
def ruleset() -> Any:
    return reporting.load_rules(default_rules_dir())


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write(tmp_path / "decisions.jsonl", records())


def run(log: Path, ruleset: Any, **options: Any) -> dict[str, Any]:
    return reporting.build([str(log)], ruleset, **options).result()


def by(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    return next(row for row in rows if row[key] == value)


def test_escalations_by_rule_and_segment(log: Path, ruleset: Any) -> None:
    result = run(log, ruleset)
    e = result["escalation"]
    # 7 decisions; d6 is a turn already with a person: 6 decisions, 3 handoffs (d1-d3).
    assert result["input"]["decisions"] == 7 and result["input"]["feedback"] == 7
    assert (e["decisions"], e["handoffs"], e["with_person"], e["rate"]) == (6, 3, 1, 0.5)
    assert [(x["rule"], x["decided"], x["matched"]) for x in e["by_rule"]] == [
        ("(default)", 3, 0), (SPIKE, 2, 2), (REPEATING, 1, 1)]
    assert by(e["by_rule"], "rule", SPIKE)["outcome"] == ROUTE
    # web: d1, d2 (handoffs) and d5; app: d3 (handoff) and d4; voice: d7.
    assert {x["value"]: (x["decisions"], x["handoffs"]) for x in e["by_channel"]} == {
        "web": (3, 2), "app": (2, 1), "voice": (1, 0)}
    assert {x["value"]: x["decisions"] for x in e["by_tier"]} == {
        "standard": 4, "gold": 1, "(none)": 1}
    assert {x["value"]: x["rate"] for x in e["by_language"]} == {"en": 0.4, "es": 1.0}
    # The decisions span 48 hours, within the 72 shown by hour.
    assert result["range"]["bucket"] == "hour"
    assert [(x["start"], x["decisions"], x["handoffs"]) for x in e["over_time"]] == [
        ("2026-11-01T00:00:00Z", 3, 3), ("2026-11-01T01:00:00Z", 2, 0),
        ("2026-11-03T00:00:00Z", 1, 0)]


def test_precision_per_rule_with_wilson_intervals(log: Path, ruleset: Any) -> None:
    result = run(log, ruleset)
    spike = by(result["precision"], "rule", SPIKE)
    # d1 and "gone" needed, d2 not needed: 2 of 3. Wilson 95% for 2/3, by hand:
    # centre (2/3 + 1.96^2/6) / (1 + 1.96^2/3) = 0.5731,
    # half 1.96 * sqrt(2/27 + 1.96^2/36) / 2.2805 = 0.3654 -> 0.2077 .. 0.9385.
    assert (spike["handoff_needed"], spike["handoff_not_needed"], spike["decided"]) == (2, 1, 2)
    assert spike["precision"] == pytest.approx(0.6667, abs=1e-4)
    assert spike["precision_low"] == pytest.approx(0.2077, abs=2e-4)
    assert spike["precision_high"] == pytest.approx(0.9385, abs=2e-4)
    repeating = by(result["precision"], "rule", REPEATING)
    # 1 of 1: Wilson 95% is 1/(1 + 1.96^2) = 0.2065 .. 1.
    assert repeating["precision"] == 1.0
    assert repeating["precision_low"] == pytest.approx(0.2065, abs=2e-4)
    assert repeating["precision_high"] == 1.0
    default = by(result["precision"], "rule", "(default)")
    # d4 missed; d5 and d7 resolved by the bot: 1 of 3.
    assert (default["should_have_escalated"], default["resolved_by_bot"]) == (1, 2)
    assert default["miss_rate"] == pytest.approx(0.3333, abs=1e-4)
    assert default["precision"] is None
    f = result["feedback"]
    assert f["by_label"] == {"handoff_needed": 3, "handoff_not_needed": 1,
                             "should_have_escalated": 1, "resolved_by_bot": 2}
    assert f["by_source"] == {"agent": 6, "survey": 1}
    # d3's feedback came before d3 and still joined; "gone" never did.
    assert (f["joined"], f["unjoined"]) == (6, 1)


def test_thresholds_and_missed_escalations_by_the_facts_at_the_time(
        log: Path, ruleset: Any) -> None:
    result = run(log, ruleset)
    spike = next(t for t in result["thresholds"]
                 if t["rule"] == SPIKE and t["fact"] == "frustration.fitted")
    assert spike["written"] == "frustration.fitted >= 0.85"
    # needed: d1 0.9 (holds), d3 0.5 (does not); not needed: d2 0.86; missed: d4 0.7.
    assert spike["handoff_needed"] == {"holds": 1, "does_not_hold": 1, "absent": 0}
    assert spike["handoff_not_needed"] == {"holds": 1, "does_not_hold": 0, "absent": 0}
    assert spike["should_have_escalated"] == {"holds": 0, "does_not_hold": 1, "absent": 0}
    hist = spike["histogram"]
    assert 0.85 in hist["edges"]
    at = hist["edges"].index(0.85)
    assert sum(hist["handoff_needed"][at:]) == 1 and sum(hist["handoff_needed"][:at]) == 1
    assert sum(hist["handoff_not_needed"][at:]) == 1
    # A fact the log does not carry is counted as absent, never as a value.
    looping = next(t for t in result["thresholds"] if t["fact"] == "loop.score")
    assert looping["handoff_needed"] == {"holds": 0, "does_not_hold": 0, "absent": 2}
    m = result["missed"]
    assert (m["missed"], m["kept_correctly"]) == (1, 2)
    assert m["by_rule"] == [{"rule": "(default)", "should_have_escalated": 1,
                             "resolved_by_bot": 2, "miss_rate": 0.3333}]
    assert {x["value"]: (x["should_have_escalated"], x["resolved_by_bot"])
            for x in m["by_channel"]} == {"app": (1, 0), "web": (0, 1), "voice": (0, 1)}
    score = by(m["facts"], "fact", "frustration.fitted")
    # missed: 0.7 alone; kept: 0.2 and 0.5 (median: the lower, to the 0.005 step).
    assert score["should_have_escalated"]["median"] == pytest.approx(0.7, abs=0.005)
    assert score["resolved_by_bot"]["median"] == pytest.approx(0.2, abs=0.005)
    assert score["resolved_by_bot"]["count"] == 2
    human = by(m["boolean_facts"], "fact", "requested_human")
    assert human["should_have_escalated"] == {"true": 0, "known": 1, "share": 0.0}


def test_shadow_disagreements_with_examples_and_who_was_right(log: Path,
                                                              ruleset: Any) -> None:
    s = run(log, ruleset)["shadow"]
    # d1, d2, d4, d5 had a shadow verdict; d2 agreed.
    assert (s["decisions"], s["disagreements"], s["disagreement_rate"]) == (4, 3, 0.75)
    assert [(p["active_rule"], p["shadow_rule"], p["active_decision"], p["count"])
            for p in s["pairs"]] == [("(default)", SPIKE, KEEP, 2), (SPIKE, "(default)", ROUTE, 1)]
    example = s["pairs"][0]["examples"][0]
    assert example["decision_id"] == "d4" and example["facts"]["frustration.score"] == 0.7
    assert example["shadow"] == {"decision": ROUTE, "rules": [SPIKE]}
    # d1 (needed, shadow would keep) and d5 (resolved, shadow would route): the active
    # rules were right; d4 (missed, shadow would route): the shadow was.
    assert s["with_feedback"] == {"active_right": 2, "shadow_right": 1}
    assert s["rulesets"][0]["version"] == "2"


def test_a_time_range_selects_records_by_their_own_time(log: Path, ruleset: Any) -> None:
    result = run(log, ruleset, since=T0 + 60, until=T0 + DAY)
    e = result["escalation"]
    # d2, d3 (handoffs), d4, d5; d6 is with a person; d1 before, d7 after.
    assert (e["decisions"], e["handoffs"], e["with_person"]) == (4, 2, 1)
    assert result["input"]["decisions_out_of_range"] == 2
    # All feedback but d7's falls in the range, d1's included (its decision did not).
    assert result["feedback"]["records"] == 6
    assert result["input"]["feedback_out_of_range"] == 1
    assert by(result["precision"], "rule", SPIKE)["handoff_needed"] == 2
    assert result["range"]["since"] == "2026-11-01T00:01:00Z"


def test_the_join_window_bounds_what_is_held(log: Path, ruleset: Any) -> None:
    # Holding one decision: d1's and d2's feedback come after later decisions, so they
    # are counted by rule and label but not joined to facts.
    result = run(log, ruleset, join_window=1)
    assert result["feedback"]["records"] == 7
    assert by(result["precision"], "rule", SPIKE)["handoff_needed"] == 2
    spike = next(t for t in result["thresholds"] if t["rule"] == SPIKE)
    assert spike["handoff_needed"]["holds"] == 0  # d1 is no longer held
    assert result["feedback"]["unjoined"] >= 3


def test_json_and_orjson_give_the_same_report(log: Path, ruleset: Any) -> None:
    with_json = reporting.build([str(log)], ruleset, loads=json.loads).result()
    default = run(log, ruleset)
    assert with_json["input"].pop("parser") == "json"
    default["input"].pop("parser")
    assert with_json == default


def test_a_bad_line_stops_the_report_with_its_code_and_line(tmp_path: Path,
                                                            ruleset: Any) -> None:
    rows: list[Any] = [*records()[:2], "", "{not json", *records()[2:]]
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(reporting.ReportError) as caught:
        run(path, ruleset)
    assert caught.value.code == "log_not_json"
    assert f"{path}:4:" in str(caught.value)
    missing = write(tmp_path / "missing.jsonl",
                    [records()[0], {"kind": "decision", "decision_id": "x", "time": T0,
                                    "decision": ROUTE, "rules": []}])
    with pytest.raises(reporting.ReportError, match=r"log_not_record: .*:2: the field "
                                                    r"'facts' is missing"):
        run(missing, ruleset)
    label = write(tmp_path / "label.jsonl", [feedback("d1", T0, "great", [])])
    with pytest.raises(reporting.ReportError, match=r"log_not_record: .*:1: 'label' is 'great'"):
        run(label, ruleset)
    with pytest.raises(reporting.ReportError, match=r"log_not_record: .*:1: not a JSON object"):
        run(write(tmp_path / "list.jsonl", [[1, 2]]), ruleset)


def test_skip_bad_counts_the_lines_it_skips(tmp_path: Path, ruleset: Any) -> None:
    rows: list[Any] = ["{not json", *records(), "[]", '{"kind": "audit"}']
    result = run(write(tmp_path / "bad.jsonl", rows), ruleset, skip_bad=True)
    assert result["input"]["skipped"] == {"log_not_json": 1, "log_not_record": 1}
    assert [(x["line"], x["code"]) for x in result["input"]["skipped_lines"]] == [
        (1, "log_not_json"), (16, "log_not_record")]
    assert result["input"]["other_records"] == 1  # a kind this version does not know
    assert result["escalation"]["handoffs"] == 3  # the records themselves all counted


def test_the_command_reads_gzip_and_stdin_and_writes_json(log: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "decisions.jsonl.gz"
    zipped.write_bytes(gzip.compress(log.read_bytes()))
    runner = CliRunner()
    out = runner.invoke(main, ["report", str(zipped), "--format", "json",
                               "--until", "2026-11-02"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert list(body) == ["format", "range", "input", "rules", "escalation", "feedback",
                          "precision", "missed", "thresholds", "shadow"]
    assert body["format"] == "escalator-report/1"
    assert body["escalation"]["decisions"] == 5
    assert body["rules"]["thresholds_from"]["made_the_decisions"] is False
    # Standard input, through a real process (the command reads bytes from it).
    piped = subprocess.run([sys.executable, "-m", "escalator", "report", "-"],
                           input=log.read_bytes(), capture_output=True, check=True)
    text = piped.stdout.decode()
    assert "3 handoffs in 6 decisions: 50.0%" in text
    assert f"{SPIKE}" in text and "66.7% [21-94%]" in text


def test_the_command_explains_what_it_cannot_read(log: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = write(tmp_path / "bad.jsonl", [records()[0], "nope"])
    out = runner.invoke(main, ["report", str(bad)])
    assert out.exit_code == 1
    assert f"log_not_json: {bad}:2: not JSON" in out.output
    out = runner.invoke(main, ["report", str(tmp_path / "absent.jsonl")])
    assert out.exit_code == 1 and "log_unreadable" in out.output
    out = runner.invoke(main, ["report", str(log), "--since", "last tuesday"])
    assert out.exit_code == 2 and "not an ISO 8601 time" in out.output
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    out = runner.invoke(main, ["report", str(broken)])
    assert out.exit_code == 1 and "log_unreadable" in out.output


def test_the_html_page_is_self_contained(log: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    out = CliRunner().invoke(main, ["report", str(log), "--format", "html", "--out",
                                    str(page)])
    assert out.exit_code == 0, out.output
    html = page.read_text()
    assert html.count("<svg") >= 8
    assert 'id="handoff-rate">50.0%</strong>' in html
    assert "threshold 0.85" in html  # the marker on frustration-spike's histogram
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "<link" not in html


def test_values_no_report_can_show_are_refused_or_left_out(tmp_path: Path,
                                                          ruleset: Any) -> None:
    late = decision("late", 1e300, ROUTE, [SPIKE])
    with pytest.raises(reporting.ReportError, match=r"log_not_record: .*:1: 'time' is 1e\+300"):
        run(write(tmp_path / "late.jsonl", [late]), ruleset)
    # A fact too large for a float, or of the wrong kind, is absent for the histograms.
    odd = decision("odd", T0, ROUTE, [SPIKE])
    odd["facts"]["frustration.fitted"] = "high"
    huge = json.dumps(decision("huge", T0, ROUTE, [SPIKE])).replace(
        '"frustration.fitted": 0.5', '"frustration.fitted": 1' + "0" * 400)
    rows = [odd, huge, feedback("odd", T0 + 1, "handoff_needed", [SPIKE]),
            feedback("huge", T0 + 2, "handoff_needed", [SPIKE])]
    # (json reads the huge number as an int; orjson refuses the line as log_not_json.)
    result = reporting.build([str(write(tmp_path / "odd.jsonl", rows))], ruleset,
                             loads=json.loads).result()
    spike = next(t for t in result["thresholds"] if t["fact"] == "frustration.fitted")
    assert spike["handoff_needed"] == {"holds": 0, "does_not_hold": 0, "absent": 2}
