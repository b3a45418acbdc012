"""Replay a corpus of transcripts through one rule set, or two side by side.

A corpus is JSON lines, one transcript per line:
`{"conversation_id": "...", "turns": [<turn request>, ...]}`. Every conversation is
decided by the service's own pipeline (escalator.tools.transcripts), so what a replay shows is
what the service would have answered.

replay_corpus() streams a corpus file: it holds a bounded window of lines in flight
whatever the corpus's length (what it keeps grows only with the rule counts and the
conversations whose decision changed), and with jobs > 1 decides its chunks in worker
processes, merged in corpus order, so that the result is the one jobs=1 gives.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from escalator.decisionlog import DecisionLog, log_record
from escalator.model import ROUTE, Decision
from escalator.policy import Policy, load_policy
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
    # How many escalated conversations were first routed at each turn index: the mean and
    # median without keeping one number per conversation.
    first_escalation_turns: Counter[int] = field(default_factory=Counter)
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
            self.first_escalation_turns[first.turn_index] += 1
            self.deciding_rules[_decisive(first) or "default"] += 1

    def merge(self, later: RulesetSummary) -> None:
        """Add what `later` counted over the conversations that follow this one's (the
        counters keep the order in which rules were first seen, as one pass would)."""
        self.conversations += later.conversations
        self.turns += later.turns
        self.escalated += later.escalated
        self.first_escalation_turns.update(later.first_escalation_turns)
        self.rule_matches.update(later.rule_matches)
        self.deciding_rules.update(later.deciding_rules)

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.conversations if self.conversations else 0.0

    def as_dict(self) -> dict[str, Any]:
        turns = self.first_escalation_turns
        count = sum(turns.values())
        return {
            "ruleset": {"name": self.name, "version": self.version, "digest": self.digest},
            "conversations": self.conversations,
            "turns": self.turns,
            "escalated": self.escalated,
            "escalation_rate": round(self.escalation_rate, 4),
            "first_escalation_turn": {
                "mean": round(sum(t * n for t, n in turns.items()) / count, 2) if count
                else None,
                "median": _median(turns) if count else None,
            },
            "rule_matches": dict(self.rule_matches.most_common()),
            "deciding_rules": dict(self.deciding_rules.most_common()),
        }


def _median(counts: Counter[int]) -> float | int:
    """statistics.median of the values `counts` counts (each value, that many times)."""
    total = sum(counts.values())
    ordered = sorted(counts.items())

    def at(position: int) -> int:  # the value at this 0-based position, in order
        for value, n in ordered:
            if position < n:
                return value
            position -= n
        raise IndexError(position)

    if total % 2:
        return at(total // 2)
    return (at(total // 2 - 1) + at(total // 2)) / 2


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
            change = first_change(transcript.conversation_id, other, decisions)
            if change is not None:
                result.changes.append(change)
        if on_conversation is not None:
            on_conversation()
    return result


def merge(result: ReplayResult, later: ReplayResult) -> None:
    """Add a replay of the conversations that follow `result`'s to it."""
    result.rules.merge(later.rules)
    if result.against is not None and later.against is not None:
        result.against.merge(later.against)
    result.changes.extend(later.changes)


# Lines a worker decides at a time: large enough that sending them and their result costs
# little next to deciding them, small enough that the window in flight stays small.
CHUNK_LINES = 64
# Chunks in flight per job: workers never wait for the reader, and memory stays bounded.
WINDOW_PER_JOB = 4

# A worker process's policies (loaded once per process by _start_worker).
_worker: tuple[Policy, Policy | None] | None = None


def _start_worker(rules: Path, against: Path | None) -> None:
    global _worker
    _worker = (load_policy(rules), load_policy(against) if against is not None else None)


class _Kept:
    """A decision log that keeps a chunk's records, for the parent to write in order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def close(self) -> None:
        pass


def _replay_chunk(source: str, first: int, lines: list[bytes], logged: bool
                  ) -> tuple[ReplayResult, list[dict[str, Any]]]:
    """Decide one chunk of corpus lines (numbered from `first`) in a worker; with `logged`,
    the decision records too."""
    assert _worker is not None
    policy, against = _worker
    numbered = ((first + n, line) for n, line in enumerate(lines))
    kept = _Kept() if logged else None
    return replay(_parse_lines(numbered, source), policy, against, decision_log=kept), (
        kept.records if kept is not None else [])


def _parse_lines(lines: Iterable[tuple[int, bytes]], source: str) -> Iterator[Transcript]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            yield parse_transcript(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise CorpusError(f"{source}:{number}: not JSON ({message})") from exc
        except TranscriptError as exc:
            details = f" {json.dumps(exc.details)}" if exc.details else ""
            raise CorpusError(f"{source}:{number}: {exc}{details}") from exc


def _chunks(stream: BinaryIO, on_bytes: Callable[[int], None] | None
            ) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines) of CHUNK_LINES lines at a time."""
    chunk: list[bytes] = []
    first = 1
    for number, line in enumerate(stream, 1):
        chunk.append(line)
        if on_bytes is not None:
            on_bytes(len(line))
        if len(chunk) == CHUNK_LINES:
            yield first, chunk
            chunk, first = [], number + 1
    if chunk:
        yield first, chunk


def default_jobs() -> int:
    """The machine's cores (what `--jobs` defaults to)."""
    return os.cpu_count() or 1


def replay_corpus(stream: BinaryIO, rules: Path, against: Path | None = None, *,
                  jobs: int = 1, source: str = "corpus",
                  on_bytes: Callable[[int], None] | None = None,
                  decision_log: DecisionLog | None = None) -> ReplayResult:
    """Replay a JSON-lines corpus read from `stream` (binary) with the rules folder `rules`
    (and `against`), in `jobs` processes; the same result, and the same records in
    `decision_log` in corpus order, whatever `jobs` is. CorpusError names the first bad
    line. `on_bytes` is told of every line read."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    chunks = _chunks(stream, on_bytes)
    if jobs == 1:
        _start_worker(rules, against)
        assert _worker is not None
        try:
            numbered = ((first + n, line) for first, lines in chunks
                        for n, line in enumerate(lines))
            return replay(_parse_lines(numbered, source), *_worker,
                          decision_log=decision_log)
        finally:
            _close_worker()

    def done(future: Future[tuple[ReplayResult, list[dict[str, Any]]]]) -> ReplayResult:
        part, records = future.result()
        if decision_log is not None:
            for record in records:
                decision_log.write(record)
        return part

    # fork where there is one: workers start at once, without importing everything again.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    result: ReplayResult | None = None
    pending: deque[Future[tuple[ReplayResult, list[dict[str, Any]]]]] = deque()
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(rules, against)) as pool:
        try:
            for first, lines in chunks:
                pending.append(pool.submit(_replay_chunk, source, first, lines,
                                           decision_log is not None))
                while len(pending) >= jobs * WINDOW_PER_JOB:
                    result = _merged(result, done(pending.popleft()))
            while pending:
                result = _merged(result, done(pending.popleft()))
        finally:
            for future in pending:
                future.cancel()
    if result is None:  # an empty corpus: the rule sets' names, and nothing counted
        _start_worker(rules, against)
        assert _worker is not None
        try:
            return replay((), *_worker)
        finally:
            _close_worker()
    return result


def _merged(result: ReplayResult | None, part: ReplayResult) -> ReplayResult:
    if result is None:
        return part
    merge(result, part)
    return result


def _close_worker() -> None:
    global _worker
    if _worker is not None:
        for policy in _worker:
            if policy is not None:
                policy.close()
        _worker = None


def first_change(conversation_id: str, before: list[Decision],
                 after: list[Decision]) -> Change | None:
    """The first turn decided differently, as `escalator replay --against` reports it."""
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
