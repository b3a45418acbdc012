"""The fairness audit of the decision log: segments compared within frustration bands,
disparities below four fifths flagged and explained, `escalator audit` on a log file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalator.cli import main
from escalator.tools.audit import audit, report


def record(channel: str, routed: bool, frustration: float,
           escalated: bool = False) -> dict[str, Any]:
    return {"decision": "route_to_human" if routed else "keep_with_bot",
            "segment": {"channel": channel, "language": "en", "tier": None},
            "facts": {"frustration.score": frustration, "conversation.escalated": escalated}}


def test_the_audit_flags_a_segment_below_four_fifths_within_a_band() -> None:
    records = (
        # Highly frustrated customers: web routed 20 of 40, sms only 6 of 40.
        [record("web", i < 20, 0.8) for i in range(40)]
        + [record("sms", i < 6, 0.8) for i in range(40)]
        # Calm customers: both rarely routed, and alike.
        + [record("web", i < 2, 0.1) for i in range(40)]
        + [record("sms", i < 2, 0.1) for i in range(40)]
        # Turns already with a person do not count.
        + [record("sms", True, 0.9, escalated=True) for _ in range(50)]
    )
    result = audit(records, min_count=30)
    assert result.overall.decisions == 160 and result.skipped_with_person == 50
    assert [(d.dimension, d.band, d.segment, d.best_segment) for d in result.disparities] == [
        ("channel", "high frustration", "sms", "web")]
    assert result.disparities[0].ratio == pytest.approx(0.3)
    assert "(ratio 0.30, below 0.8)" in result.disparities[0].explain()
    assert "'sms' was routed to a person 15% of the time, against 50%" in \
        result.disparities[0].explain()


def test_small_segments_are_not_compared() -> None:
    records = [record("web", True, 0.8) for _ in range(40)] + \
              [record("fax", False, 0.8) for _ in range(5)]
    assert audit(records, min_count=30).disparities == []


def test_an_audit_that_compared_nothing_says_the_data_was_too_small(tmp_path: Path) -> None:
    # The case: 24 decisions, no segment near the 30-decision minimum.
    records = [record("web" if i % 2 else "sms", i % 3 == 0, 0.1 + 0.3 * (i % 3))
               for i in range(24)]
    result = audit(records, min_count=30)
    assert result.disparities == [] and result.verdict == "too_little_data"
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))

    text = CliRunner().invoke(main, ["audit", str(path)]).output
    assert "No disparity" not in text
    assert "Too little data to compare: no band of frustration held two segments of the same " \
           "channel or language or tier with at least 30 decisions each, so a disparity can " \
           "be neither found nor ruled out." in text
    assert "- in the low frustration band, by channel: 'sms' (4 decisions), 'web' (4 " \
           "decisions): too few decisions to compare (fewer than 30 each)" in text
    assert "- in the low frustration band, by language: only 'en' appears, so there is " \
           "nothing to compare it with" in text

    body = json.loads(CliRunner().invoke(main, ["audit", str(path), "--json"]).output)
    assert body["verdict"] == "too_little_data" and body["disparities"] == []
    low_channel = next(c for c in body["comparisons"]
                       if (c["dimension"], c["band"]) == ("channel", "low frustration"))
    assert low_channel == {"dimension": "channel", "band": "low frustration", "made": False,
                           "compared": [], "too_small": {"sms": 4, "web": 4}}


def test_segments_left_out_of_a_comparison_are_named() -> None:
    records = ([record("web", True, 0.8) for _ in range(40)]
               + [record("sms", True, 0.8) for _ in range(40)]
               + [record("fax", False, 0.8) for _ in range(5)])
    result = audit(records, min_count=30)
    assert result.verdict == "no_disparity"
    text = report(result)
    assert text.count("No disparity among the segments compared") == 1
    assert "- in the high frustration band, by channel: 'fax' (5 decisions): too few " \
           "decisions (fewer than 30)" in text


def test_audit_command_reads_the_log_and_explains(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(record("web" if i % 2 else "app", i % 2 == 1, 0.7))
                              for i in range(100)) + "\n")
    result = CliRunner().invoke(main, ["audit", str(path)])
    assert result.exit_code == 0, result.output
    assert "100 decisions audited" in result.output
    assert "channel 'app' was routed to a person 0%" in result.output
    result = CliRunner().invoke(main, ["audit", str(path), "--json"])
    assert json.loads(result.output)["by_segment"]["channel"]["web"]["rate"] == 1.0
    path.write_text("garbage\n")
    result = CliRunner().invoke(main, ["audit", str(path)])
    assert result.exit_code != 0 and "log.jsonl:1: not JSON" in result.output
