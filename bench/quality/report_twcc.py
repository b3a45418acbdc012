"""Feedback simulated from a stated rule on a replayed decision log, for `escalator report`.

    python bench/convert.py ../shared/data twcc > /tmp/twcc.jsonl
    escalator replay /tmp/twcc.jsonl --decision-log /tmp/twcc-decisions.jsonl
    python -m bench.quality.report_twcc /tmp/twcc-decisions.jsonl > /tmp/twcc-feedback.jsonl
    escalator report /tmp/twcc-decisions.jsonl /tmp/twcc-feedback.jsonl

The rule (twcc has no escalation labels, so one is stated, never learnt): a person was
needed in a conversation when the customer asked for one in any turn
(`requested_human`), or one of its last two customer turns scored a frustration of at
least --frustration (0.6 by default: about what people rate "clearly frustrated", 3 of 4,
on the frustration scale the rules use). Every conversation gets one feedback record: on
its first handoff (`handoff_needed` or `handoff_not_needed`, as an agent would give it),
or, when it was never handed over, on its last decision (`should_have_escalated` or
`resolved_by_bot`, as a survey would). The rule reads the project's own frustration
scores, so the report it feeds says how the rules' thresholds sit against that scorer at
another threshold, not against people's judgement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def simulate(records: list[dict[str, Any]], frustration: float) -> list[dict[str, Any]]:
    turns: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("kind", "decision") == "decision":
            turns[record["conversation_id"]].append(record)
    out = []
    for conversation_id, decisions in turns.items():
        decisions.sort(key=lambda r: r["turn_index"])
        last_two = decisions[-2:]
        needed = (any(d["facts"].get("requested_human") for d in decisions)
                  or any(d["facts"].get("frustration.fitted", 0) >= frustration
                         for d in last_two))
        handoff = next((d for d in decisions if d["decision"] == "route_to_human"), None)
        if handoff is not None:
            target, source = handoff, "agent"
            label = "handoff_needed" if needed else "handoff_not_needed"
        else:
            target, source = decisions[-1], "survey"
            label = "should_have_escalated" if needed else "resolved_by_bot"
        out.append({"kind": "feedback", "time": round(target["time"] + 1, 3),
                    "feedback_id": f"sim-{target['decision_id']}",
                    "decision_id": target["decision_id"], "conversation_id": conversation_id,
                    "label": label, "source": source, "reasons": [],
                    "decision": target["decision"], "rules": target["rules"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path, help="a decision log from escalator replay")
    parser.add_argument("--frustration", type=float, default=0.6)
    args = parser.parse_args()
    with args.log.open(encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream if line.strip()]
    for record in simulate(records, args.frustration):
        sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
