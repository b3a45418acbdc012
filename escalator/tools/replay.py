"""Replay a corpus of transcripts through one rule set, or two side by side.

A corpus is JSON lines, one transcript per line:
`{"conversation_id": "...", "turns": [<turn request>, ...]}`. Every conversation is
decided by the service's own pipeline (escalator.tools.transcripts), so what a replay shows is
what the service would have answered.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from escalator.decisionlog import DecisionLog, log_record
from escalator.model import ROUTE, Decision
from escalator.policy import Policy
from escalator.tools.transcripts import (
    Transcript,
    TranscriptError,
    decide_transcript,
    parse_transcript,
)


class CorpusError(ValueError):
    """A corpus line could not be read; the message names the line."""


def read_corpus(stream: TextIO, source: str = "corpus") -> Iterator[Transcript]:
    """The transcripts of a JSON-lines corpus, in order; blank lines are skipped."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield parse_transcript(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{source}:{number}: not JSON ({exc.msg})") from exc
        except TranscriptError as exc:
            details = f" {json.dumps(exc.details)}" if exc.details else ""
            raise CorpusError(f"{source}:{number}: {exc}{details}") from exc


def count_lines(path: Path) -> int:
    """Non-blank lines of a file (for a progress bar)."""
    with path.open(encoding="utf-8") as stream:
        return sum(1 for line in stream if line.strip())


def _decisive(decision: Decision) -> str | None:
    return decision.reasons[0].rule if decision.reasons else None


@dataclass
class RulesetSummary:
    """What one rule set did to the corpus."""

    name: str
    version: str
    digest: str
    conversations: int = 0
    turns: int = 0
    escalated: int = 0
    first_escalation_turns: list[int] = field(default_factory=list)
    rule_matches: Counter[str] = field(default_factory=Counter)
    deciding_rules: Counter[str] = field(default_factory=Counter)

    def add(self, decisions: list[Decision]) -> None:
        self.conversations += 1
        self.turns += len(decisions)
        for decision in decisions:
            self.rule_matches.update(r.rule for r in decision.reasons)
        first = next((d for d in decisions if d.decision == ROUTE), None)
        if first is not None:
            self.escalated += 1
            self.first_escalation_turns.append(first.turn_index)
            self.deciding_rules[_decisive(first) or "default"] += 1

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.conversations if self.conversations else 0.0

    def as_dict(self) -> dict[str, Any]:
        turns = self.first_escalation_turns
        return {
            "ruleset": {"name": self.name, "version": self.version, "digest": self.digest},
            "conversations": self.conversations,
            "turns": self.turns,
            "escalated": self.escalated,
            "escalation_rate": round(self.escalation_rate, 4),
            "first_escalation_turn": {
                "mean": round(statistics.fmean(turns), 2) if turns else None,
                "median": statistics.median(turns) if turns else None,
            },
            "rule_matches": dict(self.rule_matches.most_common()),
            "deciding_rules": dict(self.deciding_rules.most_common()),
        }


@dataclass(frozen=True)
class Change:
    """A conversation decided differently by the two rule sets, at its first differing turn."""

    conversation_id: str
    turn_index: int
    before: str
    before_rule: str | None
    after: str
    after_rule: str | None

    def explain(self) -> str:
        return (f"{self.conversation_id} turn {self.turn_index}: {self.before} "
                f"({self.before_rule or 'default'}) -> {self.after} "
                f"({self.after_rule or 'default'})")


@dataclass
class ReplayResult:
    """Summaries per rule set and, with two rule sets, the conversations that changed."""

    rules: RulesetSummary
    against: RulesetSummary | None = None
    changes: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "conversations": self.rules.conversations,
            "turns": self.rules.turns,
            "escalation_rate": {"rules": round(self.rules.escalation_rate, 4)},
            "rules": self.rules.as_dict(),
        }
        if self.against is not None:
            body["escalation_rate"]["against"] = round(self.against.escalation_rate, 4)
            body["against"] = self.against.as_dict()
            body["decisions_changed"] = len(self.changes)
            body["changes"] = [vars(c) for c in self.changes]
        return body


def _summary(policy: Policy) -> RulesetSummary:
    ref = policy.ruleset.ref()
    return RulesetSummary(ref.name, ref.version, ref.digest)


def replay(corpus: Iterable[Transcript], policy: Policy, against: Policy | None = None,
           on_conversation: Callable[[], None] | None = None,
           decision_log: DecisionLog | None = None) -> ReplayResult:
    """Decide every conversation with `policy` (and `against`), and compare them; with a
    decision log, write `policy`'s decisions to it as the service writes its own."""
    result = ReplayResult(_summary(policy), _summary(against) if against else None)
    for transcript in corpus:
        decisions = decide_transcript(policy, transcript)
        result.rules.add(decisions)
        if decision_log is not None:
            for turn, decision in zip(transcript.turns, decisions, strict=True):
                decision_log.write(log_record(decision, turn))
        if against is not None and result.against is not None:
            other = decide_transcript(against, transcript)
            result.against.add(other)
            change = _first_change(transcript.conversation_id, other, decisions)
            if change is not None:
                result.changes.append(change)
        if on_conversation is not None:
            on_conversation()
    return result


def _first_change(conversation_id: str, before: list[Decision],
                  after: list[Decision]) -> Change | None:
    for old, new in zip(before, after, strict=True):
        if old.decision != new.decision:
            return Change(conversation_id, new.turn_index, old.decision, _decisive(old),
                          new.decision, _decisive(new))
    return None


def report(result: ReplayResult) -> str:
    """The plain-text report a policy owner reads."""
    lines: list[str] = []
    sets = [("rules", result.rules)] + ([("against", result.against)] if result.against
                                        else [])
    for label, summary in sets:
        first = summary.as_dict()["first_escalation_turn"]
        lines.append(f"{label}: {summary.name} {summary.version}: {summary.conversations} "
                     f"conversations, {summary.turns} turns")
        lines.append(f"  routed to a person: {summary.escalated} ({summary.escalation_rate:.1%})"
                     + (f", first at turn {first['median']:g} (median), {first['mean']} (mean)"
                        if summary.escalated else ""))
        deciding = ", ".join(f"{rule} {n}" for rule, n in summary.deciding_rules.most_common())
        lines.append(f"  deciding rule of the first handoff: {deciding or 'none'}")
        matches = ", ".join(f"{rule} {n}" for rule, n in summary.rule_matches.most_common())
        lines.append(f"  rule matches (turns): {matches or 'none'}")
    if result.against is not None:
        lines.append(f"decisions changed in {len(result.changes)} of "
                     f"{result.rules.conversations} conversations"
                     + (" (first differing turn; against -> rules):" if result.changes else ""))
        lines.extend(f"  {change.explain()}" for change in result.changes)
    return "\n".join(lines)
