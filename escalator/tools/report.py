"""`escalator report`: why conversations were escalated, and whether they should have been,
from a decision log with its feedback, in one streaming pass.

The log is JSON lines as escalator.decisionlog writes them: decision records (`"kind":
"decision"`, or no kind) and feedback records (`"kind": "feedback"`), in any order and
from any number of files. What is computed, for a time range:
- escalations: the share of decisions that handed the conversation to a person (turns of
  a conversation already with one are counted apart), over time and by deciding rule,
  channel, language and tier;
- per rule: how often it decided and, of the feedback on its decisions, the share
  labelled `handoff_needed` (its precision in production) with a Wilson 95% interval;
- missed escalations (`should_have_escalated` feedback) against conversations the bot
  rightly kept (`resolved_by_bot`), by the facts at the time;
- per numeric threshold of the rule set: the fact's values among needed and not-needed
  handoffs (and missed ones), so an owner sees where the threshold sits;
- shadow rule sets: agreement, disagreements by rule pair with examples (ids and facts,
  never text), and who was right where feedback says.

Every record is selected by its own `time`: decisions made in the range, feedback given
in it. Feedback carries its decision's outcome and rules, so the counts by label and rule
need no join; the facts and segment come from the decision record, joined on
`decision_id`.

Memory is flat in the log's length: counters are bounded by the number of rules, segments,
hours and histogram bins, never by records. The join holds, per decision, a packed tuple
of the few facts the rules compare with (about 400 bytes) for the last `join_window`
decisions read, and feedback read before its decision (the same bound); feedback whose
decision is not within the window is still counted by label and rule and reported as
not joined.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import operator
import struct
import sys
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from escalator.model import KEEP, ROUTE
from escalator.ruleset.catalogue import lookup
from escalator.ruleset.conditions import ORDERING, Condition, Leaf, Not, compare, leaves
from escalator.ruleset.model import RuleSet

try:  # orjson parses a decision record several times faster than json (the report's
    # whole cost on a large log: docs/policy/report.md); json is the fallback.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    PARSER = "orjson"
except ImportError:  # pragma: no cover - depends on the extras installed
    _loads = json.loads
    PARSER = "json"

FORMAT = "escalator-report/1"
STICKY_RULE = "handoff-in-progress"  # escalator.pipeline's rule for turns already with a person
DEFAULT_RULE = "(default)"  # what a decision no rule matched is counted under
NONE = "(none)"  # a segment the turn did not carry
OTHER = "(other)"  # past MAX_VALUES distinct values of a dimension
LABELS = ("handoff_needed", "handoff_not_needed", "should_have_escalated", "resolved_by_bot")
NEEDED, NOT_NEEDED, MISSED, RESOLVED = LABELS
DIMENSIONS = ("channel", "language", "tier")
DEFAULT_JOIN_WINDOW = 250_000
DEFAULT_EXAMPLES = 3  # per pair of disagreeing rules
MAX_VALUES = 200  # distinct rules or segment values kept per dimension
MAX_PAIRS = 200
MAX_NAMES = 10_000  # texts (rules, segments) shared between the decisions held
MAX_BAD_SHOWN = 20
HOURLY_UP_TO = 72 * 3600  # longer ranges are shown by day
_EMPTY: dict[str, Any] = {}
MAX_TIME = 253_402_300_800.0  # 10000-01-01: no later date in ISO 8601
Z95 = 1.959963984540054

# Stable codes of what can be wrong with a log (the message says where, for people).
CODES = {
    "log_unreadable": "a log file cannot be opened or decompressed",
    "log_not_json": "a line is not JSON",
    "log_not_record": "a line is JSON but not a decision or feedback record: not an "
                      "object, or a field missing or of the wrong kind",
}


class ReportError(ValueError):
    """A log cannot be read: a stable code, and where."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None without trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def parse_time(text: str) -> float:
    """An ISO 8601 time (a date alone is its midnight; no zone is UTC) as unix seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-01 or "
                         f"2026-11-01T12:00:00Z)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ the rule set's thresholds

@dataclass(frozen=True)
class Threshold:
    """A numeric comparison in a rule: `fact op value` (negated: inside a `not`)."""

    rule: str
    fact: str
    op: str
    value: float
    negated: bool = False

    @property
    def written(self) -> str:
        shown = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[self.op]
        return f"{'not ' if self.negated else ''}{self.fact} {shown} {self.value:g}"

    def leaf(self) -> Leaf:
        """The comparison as the rule set's own condition (its meaning defined there)."""
        return Leaf(self.fact, self.op, self.value)  # type: ignore[arg-type]


def _negated_leaves(condition: Condition, negated: bool = False) -> Iterator[tuple[Leaf, bool]]:
    if isinstance(condition, Leaf):
        yield condition, negated
    elif isinstance(condition, Not):
        yield from _negated_leaves(condition.item, not negated)
    else:
        for item in condition.items:
            yield from _negated_leaves(item, negated)


def thresholds(ruleset: RuleSet) -> list[Threshold]:
    """Every ordering comparison of a fact with a number in the rules, in file order."""
    found = []
    for rule in ruleset.rules:
        for leaf, negated in _negated_leaves(rule.when):
            value = leaf.value
            if (leaf.op in ORDERING and isinstance(value, int | float)
                    and not isinstance(value, bool)):
                found.append(Threshold(rule.id, leaf.fact, leaf.op, float(value), negated))
    return found


def boolean_facts(ruleset: RuleSet) -> list[str]:
    """The boolean facts the rules test (e.g. requested_human), in order of first use."""
    seen: dict[str, None] = {}
    for rule in ruleset.rules:
        for leaf in leaves(rule.when):
            spec = lookup(leaf.fact)
            if spec is not None and spec.type == "boolean":
                seen.setdefault(leaf.fact, None)
    return list(seen)


# ------------------------------------------------------------------ histograms

MAX_BINS = 2000


class Histogram:
    """Counts of a number in bins of `step` (floor(value / step)); when it holds more than
    MAX_BINS bins the step doubles, so its size stays bounded whatever the values."""

    __slots__ = ("counts", "step", "total")

    def __init__(self, step: float) -> None:
        self.step = step
        self.counts: dict[int, int] = defaultdict(int)
        self.total = 0

    def add(self, value: float) -> None:
        self.counts[math.floor(value / self.step)] += 1
        self.total += 1
        if len(self.counts) > MAX_BINS:
            merged: dict[int, int] = defaultdict(int)
            for key, count in self.counts.items():
                merged[key // 2] += count
            self.counts = merged
            self.step *= 2

    def bins(self) -> list[tuple[float, int]]:
        """(lower edge, count) in order."""
        return [(key * self.step, self.counts[key]) for key in sorted(self.counts)]

    def quantile(self, q: float) -> float | None:
        """The lower edge of the bin holding the q-quantile (None when empty)."""
        if not self.total:
            return None
        target = q * self.total
        seen = 0
        for lower, count in self.bins():
            seen += count
            if seen >= target:
                return lower
        return None  # pragma: no cover - seen reaches total

    def range(self) -> tuple[float, float] | None:
        if not self.counts:
            return None
        return min(self.counts) * self.step, (max(self.counts) + 1) * self.step


def _step(fact: str) -> float:
    spec = lookup(fact)
    if spec is not None and spec.type == "integer":
        return 1.0
    if spec is not None and spec.minimum is not None and spec.maximum is not None:
        return (spec.maximum - spec.minimum) / 200
    return 0.01


# ------------------------------------------------------------------ the accumulator

@dataclass(slots=True)
class Rate:
    """Decisions (not already with a person) and how many handed over."""

    decisions: int = 0
    handoffs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "handoffs": self.handoffs,
                "rate": round(self.handoffs / self.decisions, 4) if self.decisions else None}


@dataclass
class Pair:
    """Decisions where the active and the shadow rule sets disagreed, for one pair of
    deciding rules."""

    active: str
    shadow: str
    active_decision: str
    shadow_decision: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Bad:
    """Lines skipped (with skip_bad): how many per code, and the first few."""

    counts: Counter[str] = field(default_factory=Counter)
    shown: list[dict[str, Any]] = field(default_factory=list)


def _bounded(table: dict[str, Any], key: str, make: Callable[[], Any]) -> Any:
    """table[key], made if new while the table is under MAX_VALUES entries, else OTHER's."""
    found = table.get(key)
    if found is None:
        if len(table) >= MAX_VALUES and key != OTHER:
            return _bounded(table, OTHER, make)
        found = table[key] = make()
    return found


class Report:
    """Reads records one at a time and keeps only counts (and the bounded join)."""

    def __init__(self, ruleset: RuleSet | None = None, *, since: float | None = None,
                 until: float | None = None, join_window: int = DEFAULT_JOIN_WINDOW,
                 examples: int = DEFAULT_EXAMPLES, skip_bad: bool = False,
                 loads: Callable[[bytes], Any] | None = None) -> None:
        self.ruleset = ruleset
        self._loads = loads or _loads
        self.parser = PARSER if loads is None else getattr(loads, "__module__", "custom")
        self.since = since
        self.until = until
        self.join_window = max(1, join_window)
        self.examples = max(0, examples)
        self.skip_bad = skip_bad
        self.thresholds = thresholds(ruleset) if ruleset is not None else []
        numeric = list(dict.fromkeys(t.fact for t in self.thresholds))
        self.numeric_facts = numeric
        self.boolean_facts = boolean_facts(ruleset) if ruleset is not None else []
        self.tracked = numeric + self.boolean_facts  # packed per decision for the join
        self._pack = struct.Struct(f"<{len(self.tracked)}d")
        self._getter: Callable[[dict[str, Any]], Sequence[Any]] = (
            operator.itemgetter(*self.tracked) if len(self.tracked) > 1
            else (lambda facts: [facts[name] for name in self.tracked]))
        self._since = -math.inf if since is None else since
        self._until = math.inf if until is None else until
        self._threshold_index = [(t.leaf(), numeric.index(t.fact)) for t in self.thresholds]
        self.files: list[str] = []
        self.lines = 0
        self.bad = Bad()
        self.other_records = 0
        # decisions
        self.decisions_read = 0
        self.decisions_out_of_range = 0
        self.overall = Rate()
        self.with_person = 0
        self.degraded = 0
        self._first = math.inf
        self._last = -math.inf
        self.hours: dict[int, Rate] = defaultdict(Rate)
        self.by_dimension: dict[str, dict[str, Rate]] = {d: {} for d in DIMENSIONS}
        self._dimension_tables = [self.by_dimension[d] for d in DIMENSIONS]
        self.decided: dict[str, Rate] = {}
        self.matched: Counter[str] = Counter()
        self._ruleset_counts: dict[Any, int] = {}  # by digest
        self._ruleset_names: dict[Any, tuple[Any, Any]] = {}
        # feedback
        self.feedback_read = 0
        self.feedback_out_of_range = 0
        self.labels: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.feedback_by_rule: dict[str, Counter[str]] = {}
        self.joined = 0
        self.pending_dropped = 0
        self._window: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._names: dict[Any, Any] = {}
        self._pending: OrderedDict[str, list[str]] = OrderedDict()
        # missed escalations against conversations rightly kept (joined feedback)
        self.kept_by_rule: dict[str, Counter[str]] = {MISSED: Counter(), RESOLVED: Counter()}
        self.kept_by_dimension: dict[str, dict[str, Counter[str]]] = {
            MISSED: defaultdict(Counter), RESOLVED: defaultdict(Counter)}
        self.histograms = {fact: {label: Histogram(_step(fact)) for label in LABELS}
                           for fact in numeric}
        self.booleans = {fact: {label: [0, 0] for label in LABELS}
                         for fact in self.boolean_facts}  # [true, known]
        # per threshold and label: [holds, does not hold, fact absent]
        self.sides = [{label: [0, 0, 0] for label in LABELS} for _ in self.thresholds]
        # shadow rule sets
        self.shadow_decisions = 0
        self.shadow_disagreements = 0
        self.shadow_rulesets: Counter[tuple[Any, Any, Any]] = Counter()
        self.pairs: dict[tuple[str, str, str, str], Pair] = {}
        self.shadow_verdicts: Counter[str] = Counter()  # active_right / shadow_right

    # -------------------------------------------------------------- reading
    def read(self, stream: IO[bytes], source: str) -> None:
        """Every record of one JSON-lines stream (bytes)."""
        self.files.append(source)
        loads = self._loads
        decision = self._decision
        feedback = self._feedback
        number = 0
        for number, line in enumerate(stream, 1):
            try:
                record = loads(line)
            except ValueError as exc:
                if not line.strip():
                    continue
                self._bad(source, number, "log_not_json", f"not JSON ({exc})")
                continue
            try:
                kind = record.get("kind", "decision")
                if kind == "decision":
                    decision(record)
                elif kind == "feedback":
                    feedback(record)
                else:
                    self.other_records += 1
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self._bad(source, number, "log_not_record", _why(exc))
        self.lines += number

    def _bad(self, source: str, number: int, code: str, why: str) -> None:
        if not self.skip_bad:
            raise ReportError(code, f"{source}:{number}: {why}")
        self.bad.counts[code] += 1
        if len(self.bad.shown) < MAX_BAD_SHOWN:
            self.bad.shown.append({"file": source, "line": number, "code": code, "why": why})

    def _name(self, value: Any) -> Any:
        """`value`, the same object for every equal text (at most MAX_NAMES of them)."""
        if value.__class__ is not str or len(self._names) >= MAX_NAMES:
            return value
        return self._names.setdefault(value, value)

    def _packed(self, facts: dict[str, Any]) -> bytes:
        """The tracked facts of a decision as packed doubles (NaN: absent or not a number)."""
        try:  # the common case: every tracked fact there, each a number or a boolean
            return self._pack.pack(*self._getter(facts))
        except (KeyError, TypeError, OverflowError, struct.error):
            get = facts.get
            return self._pack.pack(*[_number(get(name)) for name in self.tracked])

    def _decision(self, record: dict[str, Any]) -> None:
        # The hot loop of a large log: kept to plain dict and list operations.
        at = float(record["time"])
        decision_id = record["decision_id"]
        outcome = record["decision"]
        if not 0.0 <= at < MAX_TIME:
            raise ValueError(f"'time' is {at!r}, not unix seconds of a date")
        rules = record["rules"]
        facts = record["facts"]
        if outcome != ROUTE and outcome != KEEP:
            raise ValueError(f"'decision' is {outcome!r}, not {ROUTE} or {KEEP}")
        if type(rules) is not list or type(facts) is not dict or type(decision_id) is not str:
            raise TypeError("'rules' must be a list, 'facts' an object, 'decision_id' text")
        segment = record.get("segment") or _EMPTY
        deciding = rules[0] if rules else DEFAULT_RULE
        shadow = record.get("shadow")
        routed = outcome == ROUTE
        names = self._names
        channel, language, tier = (segment.get("channel"), segment.get("language"),
                                   segment.get("tier"))
        segments = (channel, language, tier)
        # The join: what feedback on this decision needs, its text values shared with
        # every other decision's (a parsed record's strings are its own: ~50 bytes each).
        info = (names.get(deciding) or self._name(deciding), routed,
                names.get(channel) or self._name(channel),
                names.get(language) or self._name(language), names.get(tier) or self._name(tier),
                shadow.get("decision") == ROUTE if shadow else None, self._packed(facts))
        window = self._window
        window[decision_id] = info
        if len(window) > self.join_window:
            window.popitem(last=False)
        if self._pending:
            waiting = self._pending.pop(decision_id, None)
            if waiting:
                for label in waiting:
                    self._joined(info, label)
        self.decisions_read += 1
        if not self._since <= at < self._until:
            self.decisions_out_of_range += 1
            return
        if at < self._first:
            self._first = at
        if at > self._last:
            self._last = at
        ruleset = record.get("ruleset")
        if ruleset:
            digest = ruleset.get("digest")
            if digest in self._ruleset_counts:
                self._ruleset_counts[digest] += 1
            else:
                self._ruleset_counts[digest] = 1
                self._ruleset_names[digest] = (ruleset.get("name"), ruleset.get("version"))
        if record.get("degraded"):
            self.degraded += 1
        if shadow:
            self._shadow(record, shadow, deciding, outcome)
        if deciding == STICKY_RULE:
            self.with_person += 1
            return
        overall = self.overall
        overall.decisions += 1
        overall.handoffs += routed
        hour = self.hours[int(at // 3600)]
        hour.decisions += 1
        hour.handoffs += routed
        rate = self.decided.get(deciding) or _bounded(self.decided, deciding, Rate)
        rate.decisions += 1
        rate.handoffs += routed
        if rules:
            matched = self.matched
            for rule in rules:
                matched[rule] += 1
        for table, value in zip(self._dimension_tables, segments, strict=True):
            if value.__class__ is not str or not value:
                value = NONE
            rate = table.get(value) or _bounded(table, value, Rate)
            rate.decisions += 1
            rate.handoffs += routed

    def _shadow(self, record: dict[str, Any], shadow: dict[str, Any], deciding: str,
                outcome: str) -> None:
        self.shadow_decisions += 1
        ruleset = shadow.get("ruleset") or {}
        self.shadow_rulesets[(ruleset.get("name"), ruleset.get("version"),
                              ruleset.get("digest"))] += 1
        shadow_decision = shadow.get("decision")
        agrees = shadow.get("agrees")
        if agrees is None:
            agrees = shadow_decision == outcome
        if agrees:
            return
        self.shadow_disagreements += 1
        shadow_rules = shadow.get("rules") or []
        shadow_deciding = shadow_rules[0] if shadow_rules else DEFAULT_RULE
        key = (deciding, shadow_deciding, outcome, str(shadow_decision))
        pair = self.pairs.get(key)
        if pair is None:
            if len(self.pairs) >= MAX_PAIRS:
                key = (OTHER, OTHER, outcome, str(shadow_decision))
                pair = self.pairs.get(key)
            if pair is None:
                pair = self.pairs[key] = Pair(*key)
        pair.count += 1
        if len(pair.examples) < self.examples:
            # Ids, outcomes, rules and facts: numbers and labels, never the customer's text.
            pair.examples.append({
                "decision_id": record["decision_id"],
                "conversation_id": record.get("conversation_id"),
                "turn_index": record.get("turn_index"),
                "time": iso(float(record["time"])),
                "active": {"decision": outcome, "rules": list(record["rules"])},
                "shadow": {"decision": shadow_decision, "rules": list(shadow_rules)},
                "facts": dict(record["facts"]),
            })

    def _feedback(self, record: dict[str, Any]) -> None:
        at = float(record["time"])
        label = record["label"]
        if not 0.0 <= at < MAX_TIME:
            raise ValueError(f"'time' is {at!r}, not unix seconds of a date")
        decision_id = record["decision_id"]
        rules = record.get("rules") or []
        if label not in LABELS:
            raise ValueError(f"'label' is {label!r}, not one of {', '.join(LABELS)}")
        if type(decision_id) is not str or type(rules) is not list:
            raise TypeError("'decision_id' must be text and 'rules' a list")
        self.feedback_read += 1
        if not self._since <= at < self._until:
            self.feedback_out_of_range += 1
            return
        self.labels[label] += 1
        source = str(record.get("source"))
        if source in self.sources or len(self.sources) < MAX_VALUES:
            self.sources[source] += 1
        else:
            self.sources[OTHER] += 1
        deciding = rules[0] if rules else DEFAULT_RULE
        _bounded(self.feedback_by_rule, deciding, Counter)[label] += 1
        info = self._window.get(decision_id)
        if info is not None:
            self._joined(info, label)
            return
        pending = self._pending
        waiting = pending.get(decision_id)
        if waiting is None:
            waiting = pending[decision_id] = []
            if len(pending) > self.join_window:
                _, dropped = pending.popitem(last=False)
                self.pending_dropped += len(dropped)
        waiting.append(label)

    def _joined(self, info: tuple[Any, ...], label: str) -> None:
        """Feedback with its decision's facts and segment."""
        deciding, routed, channel, language, tier, shadow_routes, packed = info
        segments = (channel, language, tier)
        self.joined += 1
        values = self._pack.unpack(packed)
        for fact, value in zip(self.numeric_facts, values, strict=False):
            if value == value:  # not NaN: the fact was there
                self.histograms[fact][label].add(value)
        for fact, value in zip(self.boolean_facts, values[len(self.numeric_facts):],
                               strict=True):
            if value == value:
                counts = self.booleans[fact][label]
                counts[0] += value == 1.0
                counts[1] += 1
        for sides, (leaf, index) in zip(self.sides, self._threshold_index, strict=True):
            value = values[index]
            sides[label][2 if value != value else 0 if compare(leaf, value) else 1] += 1
        if label in (MISSED, RESOLVED):
            self.kept_by_rule[label][deciding] += 1
            for dimension, value in zip(DIMENSIONS, segments, strict=True):
                self.kept_by_dimension[label][dimension][
                    value if isinstance(value, str) and value else NONE] += 1
        if shadow_routes is not None and shadow_routes != routed:
            needed = label in (NEEDED, MISSED)
            self.shadow_verdicts["shadow_right" if needed == shadow_routes
                                 else "active_right"] += 1

    # -------------------------------------------------------------- the result
    def result(self) -> dict[str, Any]:
        """The report as JSON-ready data (keys documented in docs/policy/report.md)."""
        unjoined = sum(len(w) for w in self._pending.values()) + self.pending_dropped
        return {
            "format": FORMAT,
            "range": self._range(),
            "input": {
                "files": self.files, "lines": self.lines, "parser": self.parser,
                "decisions": self.decisions_read,
                "decisions_out_of_range": self.decisions_out_of_range,
                "feedback": self.feedback_read,
                "feedback_out_of_range": self.feedback_out_of_range,
                "other_records": self.other_records,
                "skipped": dict(self.bad.counts), "skipped_lines": self.bad.shown,
                "join_window": self.join_window,
            },
            "rules": self._rules_identity(),
            "escalation": self._escalation(),
            "feedback": {
                "records": sum(self.labels.values()),
                "by_label": {label: self.labels[label] for label in LABELS},
                "by_source": dict(self.sources.most_common()),
                "joined": self.joined, "unjoined": unjoined,
            },
            "precision": self._precision(),
            "missed": self._missed(),
            "thresholds": self._thresholds(),
            "shadow": self._shadow_result(),
        }

    def _range(self) -> dict[str, Any]:
        first = self._first if self._first != math.inf else None
        last = self._last if self._last != -math.inf else None
        start = self.since if self.since is not None else first
        end = self.until if self.until is not None else (last + 1 if last is not None else None)
        hourly = start is None or end is None or end - start <= HOURLY_UP_TO
        return {"since": iso(self.since) if self.since is not None else None,
                "until": iso(self.until) if self.until is not None else None,
                "first_decision": iso(first) if first is not None else None,
                "last_decision": iso(last) if last is not None else None,
                "bucket": "hour" if hourly else "day"}

    def _rules_identity(self) -> dict[str, Any]:
        in_log = [{"name": self._ruleset_names[d][0], "version": self._ruleset_names[d][1],
                   "digest": d, "decisions": c}
                  for d, c in sorted(self._ruleset_counts.items(), key=lambda x: -x[1])]
        body: dict[str, Any] = {"in_log": in_log, "thresholds_from": None}
        if self.ruleset is not None:
            ref = self.ruleset.ref()
            body["thresholds_from"] = {
                "name": ref.name, "version": ref.version, "digest": ref.digest,
                "made_the_decisions": any(r["digest"] == ref.digest for r in in_log)}
        return body

    def _escalation(self) -> dict[str, Any]:
        bucket = 3600 if self._range()["bucket"] == "hour" else 86400
        over_time: dict[int, Rate] = defaultdict(Rate)
        for hour, rate in self.hours.items():
            over = over_time[hour * 3600 // bucket]
            over.decisions += rate.decisions
            over.handoffs += rate.handoffs
        outcomes = self._outcomes()
        return {
            **self.overall.as_dict(),
            "with_person": self.with_person,
            "degraded": self.degraded,
            "over_time": [{"start": iso(key * bucket), **over_time[key].as_dict()}
                          for key in sorted(over_time)],
            "by_rule": [{"rule": rule, "outcome": outcomes.get(rule), "decided": r.decisions,
                         "share": round(r.decisions / self.overall.decisions, 4)
                         if self.overall.decisions else None,
                         "handoffs": r.handoffs, "matched": self.matched.get(rule, 0)}
                        for rule, r in sorted(self.decided.items(),
                                              key=lambda item: (-item[1].decisions, item[0]))],
            **{f"by_{d}": [{"value": value, **r.as_dict()} for value, r in
                           sorted(self.by_dimension[d].items(),
                                  key=lambda item: (-item[1].decisions, item[0]))]
               for d in DIMENSIONS},
        }

    def _outcomes(self) -> dict[str, str]:
        """Each rule's outcome: from the rule set when given, else from what it decided."""
        found = {rule: (ROUTE if r.handoffs else KEEP) for rule, r in self.decided.items()}
        if self.ruleset is not None:
            found.update({rule.id: rule.then.decision for rule in self.ruleset.rules})
            found[DEFAULT_RULE] = self.ruleset.default.decision
        return found

    def _precision(self) -> list[dict[str, Any]]:
        outcomes = self._outcomes()
        names = sorted(set(self.feedback_by_rule) | set(self.decided),
                       key=lambda r: (-sum(self.feedback_by_rule.get(r, Counter()).values()),
                                      -(self.decided[r].decisions if r in self.decided else 0),
                                      r))
        rows = []
        for rule in names:
            counts = self.feedback_by_rule.get(rule, Counter())
            needed, not_needed = counts[NEEDED], counts[NOT_NEEDED]
            missed, resolved = counts[MISSED], counts[RESOLVED]
            precision = wilson(needed, needed + not_needed)
            miss = wilson(missed, missed + resolved)
            rows.append({
                "rule": rule, "outcome": outcomes.get(rule),
                "decided": self.decided[rule].decisions if rule in self.decided else 0,
                "feedback": sum(counts.values()),
                **{label: counts[label] for label in LABELS},
                "precision": _ratio(needed, needed + not_needed),
                "precision_low": _round(precision[0]) if precision else None,
                "precision_high": _round(precision[1]) if precision else None,
                "miss_rate": _ratio(missed, missed + resolved),
                "miss_low": _round(miss[0]) if miss else None,
                "miss_high": _round(miss[1]) if miss else None,
            })
        return rows

    def _missed(self) -> dict[str, Any]:
        missed, resolved = self.kept_by_rule[MISSED], self.kept_by_rule[RESOLVED]
        facts = []
        for fact in self.numeric_facts:
            hist = self.histograms[fact]
            first = next(t for t in self.thresholds if t.fact == fact)
            edges, (missed_bins, resolved_bins) = _display_bins(
                first, [hist[MISSED], hist[RESOLVED]], integer=_step(fact) == 1.0)
            facts.append({"fact": fact, **{label: _summary(hist[label])
                                           for label in (MISSED, RESOLVED)},
                          "histogram": {"edges": edges, MISSED: missed_bins,
                                        RESOLVED: resolved_bins}})
        booleans = []
        for fact in self.boolean_facts:
            counts = self.booleans[fact]
            booleans.append({"fact": fact, **{
                label: {"true": counts[label][0], "known": counts[label][1],
                        "share": _ratio(counts[label][0], counts[label][1])}
                for label in (MISSED, RESOLVED)}})
        return {
            "missed": sum(missed.values()), "kept_correctly": sum(resolved.values()),
            "by_rule": [{"rule": rule, MISSED: missed[rule], RESOLVED: resolved[rule],
                         "miss_rate": _ratio(missed[rule], missed[rule] + resolved[rule])}
                        for rule in sorted(set(missed) | set(resolved),
                                           key=lambda r: (-missed[r], r))],
            **{f"by_{d}": [{"value": value, MISSED: self.kept_by_dimension[MISSED][d][value],
                            RESOLVED: self.kept_by_dimension[RESOLVED][d][value]}
                           for value in sorted(set(self.kept_by_dimension[MISSED][d])
                                               | set(self.kept_by_dimension[RESOLVED][d]))]
               for d in DIMENSIONS},
            "facts": facts,
            "boolean_facts": booleans,
        }

    def _thresholds(self) -> list[dict[str, Any]]:
        rows = []
        for threshold, sides in zip(self.thresholds, self.sides, strict=True):
            hist = self.histograms[threshold.fact]
            edges, counts = _display_bins(threshold, [hist[label] for label in LABELS],
                                          integer=_step(threshold.fact) == 1.0)
            rows.append({
                "rule": threshold.rule, "fact": threshold.fact, "op": threshold.op,
                "value": threshold.value, "negated": threshold.negated,
                "written": threshold.written,
                **{label: {"holds": s[0], "does_not_hold": s[1], "absent": s[2]}
                   for label, s in sides.items()},
                "histogram": {"edges": edges,
                              **{label: c for label, c in zip(LABELS, counts, strict=True)}},
            })
        return rows

    def _shadow_result(self) -> dict[str, Any]:
        return {
            "decisions": self.shadow_decisions,
            "disagreements": self.shadow_disagreements,
            "disagreement_rate": _ratio(self.shadow_disagreements, self.shadow_decisions),
            "rulesets": [{"name": n, "version": v, "digest": d, "decisions": c}
                         for (n, v, d), c in self.shadow_rulesets.most_common()],
            "pairs": [{"active_rule": p.active, "shadow_rule": p.shadow,
                       "active_decision": p.active_decision,
                       "shadow_decision": p.shadow_decision, "count": p.count,
                       "examples": p.examples}
                      for p in sorted(self.pairs.values(),
                                      key=lambda p: (-p.count, p.active, p.shadow))],
            "with_feedback": {"active_right": self.shadow_verdicts["active_right"],
                              "shadow_right": self.shadow_verdicts["shadow_right"]},
        }


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r} is missing"
    if isinstance(exc, AttributeError):
        return "not a JSON object"
    return str(exc) or type(exc).__name__


def _number(value: Any) -> float:
    """A fact's value for the packed join: a number, a boolean as 1/0, else NaN (absent)."""
    if value is None or isinstance(value, str | list | dict):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # a number JSON has but a float has not
        return math.nan


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float) -> float:
    return round(value, 4)


def _summary(hist: Histogram) -> dict[str, Any]:
    return {"count": hist.total, "median": _maybe(hist.quantile(0.5)),
            "p90": _maybe(hist.quantile(0.9))}


def _maybe(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _nice(width: float) -> float:
    """A readable bin width at least `width` (1, 2, 2.5 or 5 times a power of ten)."""
    if width <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(width))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= width * 0.999:
            return factor * power
    return 10.0 * power  # pragma: no cover


def _display_bins(threshold: Threshold, hists: Sequence[Histogram], *, integer: bool,
                  target: int = 16) -> tuple[list[float], list[list[int]]]:
    """Bins for a chart, one edge on the threshold: edges (lower edge of each bin, then
    the last bin's upper edge) and each histogram's counts in them."""
    ranges = [r for r in (h.range() for h in hists) if r is not None]
    t = threshold.value
    low = min([t, *(r[0] for r in ranges)])
    high = max([t, *(r[1] for r in ranges)])
    width = max((high - low) / target, 1.0 if integer else 1e-9)
    width = float(math.ceil(width)) if integer else _nice(width)
    high = max(high, t + width)  # a bin on the far side of the threshold, even if empty
    first = t - math.ceil((t - low) / width - 1e-9) * width
    count = max(1, math.ceil((high - first) / width - 1e-9))
    edges = [round(first + i * width, 6) + 0.0 for i in range(count + 1)]  # never -0.0
    counts = []
    for hist in hists:
        binned = [0] * count
        for lower, n in hist.bins():
            centre = lower + hist.step / 2 if not integer else lower
            index = min(max(int((centre - first) // width), 0), count - 1)
            binned[index] += n
        counts.append(binned)
    return edges, counts


# ------------------------------------------------------------------ reading files

@contextmanager
def open_log(name: str) -> Iterator[IO[bytes]]:
    """A log file as bytes: '-' is standard input, *.gz is decompressed."""
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ReportError("log_unreadable", f"{name}: {exc.strerror or exc}") from exc
    try:
        if name.endswith(".gz"):
            with gzip.open(raw, "rb") as unzipped:
                yield io.BufferedReader(unzipped, 1 << 20)
        else:
            yield raw
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ReportError("log_unreadable", f"{name}: {exc}") from exc
    finally:
        raw.close()


def build(names: Iterable[str], ruleset: RuleSet | None = None, **options: Any) -> Report:
    """A report over these log files (in order)."""
    report = Report(ruleset, **options)
    for name in names:
        with open_log(name) as stream:
            report.read(stream, name)
    return report


def load_rules(folder: Path) -> RuleSet:
    """The rule set whose thresholds are shown (loaded and checked, never compiled)."""
    from escalator.ruleset.loader import load_ruleset

    return load_ruleset(folder)


# ------------------------------------------------------------------ plain text

def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low * 100:.0f}-{high * 100:.0f}%]"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in cells]


def text(result: dict[str, Any]) -> str:
    """The report in plain words and tables."""
    out: list[str] = []
    r, i, e = result["range"], result["input"], result["escalation"]
    out.append(f"escalator report: {', '.join(i['files'])}")
    out.append(f"range: {r['since'] or 'start'} to {r['until'] or 'end'}; decisions from "
               f"{r['first_decision'] or '-'} to {r['last_decision'] or '-'}")
    out.append(f"read {i['lines']} lines: {i['decisions']} decisions "
               f"({i['decisions_out_of_range']} out of range), {i['feedback']} feedback "
               f"({i['feedback_out_of_range']} out of range), {i['other_records']} other")
    if i["skipped"]:
        out.append("skipped bad lines: " + ", ".join(
            f"{code} {n}" for code, n in i["skipped"].items()) + "; first: " + "; ".join(
            f"{s['file']}:{s['line']} {s['code']}" for s in i["skipped_lines"][:5]))
    rules = result["rules"]
    made = ", ".join(f"{x['name']} {x['version']} ({x['decisions']})" for x in rules["in_log"])
    out.append(f"rule sets that decided: {made or '-'}")
    source = rules["thresholds_from"]
    if source is not None:
        out.append(f"thresholds from: {source['name']} {source['version']}"
                   + ("" if source["made_the_decisions"] else
                      " (WARNING: not a rule set that made these decisions)"))

    out += ["", "== Escalations",
            f"{e['handoffs']} handoffs in {e['decisions']} decisions: {_pct(e['rate'])} "
            f"({e['with_person']} turns already with a person counted apart, "
            f"{e['degraded']} degraded)"]
    out.append(f"over time (by {r['bucket']}):")
    out += _table(("start", "decisions", "handoffs", "rate"),
                  ((x["start"], x["decisions"], x["handoffs"], _pct(x["rate"]))
                   for x in e["over_time"]))
    out.append("by deciding rule:")
    out += _table(("rule", "outcome", "decided", "share", "matched"),
                  ((x["rule"], x["outcome"] or "-", x["decided"], _pct(x["share"]),
                    x["matched"]) for x in e["by_rule"]))
    for dimension in DIMENSIONS:
        out.append(f"by {dimension}:")
        out += _table((dimension, "decisions", "handoffs", "rate"),
                      ((x["value"], x["decisions"], x["handoffs"], _pct(x["rate"]))
                       for x in e[f"by_{dimension}"]))

    f = result["feedback"]
    out += ["", "== Feedback and precision per rule",
            f"{f['records']} feedback records: " + ", ".join(
                f"{label} {n}" for label, n in f["by_label"].items())
            + f"; joined to their decision: {f['joined']}, not joined: {f['unjoined']}"]
    out.append("precision = handoff_needed / (handoff_needed + handoff_not_needed), "
               "Wilson 95% interval in brackets; miss rate = should_have_escalated / "
               "(should_have_escalated + resolved_by_bot)")
    out += _table(("rule", "decided", "feedback", "needed", "not needed", "precision",
                   "missed", "resolved", "miss rate"),
                  ((x["rule"], x["decided"], x["feedback"], x[NEEDED], x[NOT_NEEDED],
                    _pct(x["precision"]) + _interval(x["precision_low"], x["precision_high"]),
                    x[MISSED], x[RESOLVED],
                    _pct(x["miss_rate"]) + _interval(x["miss_low"], x["miss_high"]))
                   for x in result["precision"]))

    m = result["missed"]
    out += ["", "== Missed escalations (should_have_escalated) against conversations "
                "rightly kept (resolved_by_bot)",
            f"{m['missed']} missed, {m['kept_correctly']} kept correctly (joined feedback)"]
    if m["by_rule"]:
        out.append("by the rule that kept the conversation:")
        out += _table(("rule", "missed", "kept correctly", "miss rate"),
                      ((x["rule"], x[MISSED], x[RESOLVED], _pct(x["miss_rate"]))
                       for x in m["by_rule"]))
    for dimension in DIMENSIONS:
        if m[f"by_{dimension}"]:
            out.append(f"by {dimension}: " + ", ".join(
                f"{x['value']} {x[MISSED]} missed / {x[RESOLVED]} kept"
                for x in m[f"by_{dimension}"]))
    if m["facts"]:
        out.append("facts at the time (median and 90th percentile, to the histogram's step):")
        out += _table(("fact", "missed n", "median", "p90", "kept n", "median", "p90"),
                      ((x["fact"], x[MISSED]["count"], _num(x[MISSED]["median"]),
                        _num(x[MISSED]["p90"]), x[RESOLVED]["count"],
                        _num(x[RESOLVED]["median"]), _num(x[RESOLVED]["p90"]))
                       for x in m["facts"]))
    for x in m["boolean_facts"]:
        out.append(f"{x['fact']} true: missed {_pct(x[MISSED]['share'])} of "
                   f"{x[MISSED]['known']}, kept {_pct(x[RESOLVED]['share'])} of "
                   f"{x[RESOLVED]['known']}")

    out += ["", "== Thresholds: the fact's value among needed and not-needed handoffs"]
    if not result["thresholds"]:
        out.append("no numeric thresholds (give --rules to read them)")
    for t in result["thresholds"]:
        needed, not_needed, missed = t[NEEDED], t[NOT_NEEDED], t[MISSED]
        out.append(f"{t['rule']}: {t['written']}: holds for {needed['holds']} of "
                   f"{needed['holds'] + needed['does_not_hold']} needed handoffs, "
                   f"{not_needed['holds']} of "
                   f"{not_needed['holds'] + not_needed['does_not_hold']} not needed, "
                   f"{missed['holds']} of {missed['holds'] + missed['does_not_hold']} missed")
        hist = t["histogram"]
        edges = hist["edges"]
        shown = [(f"{_num(edges[k])}-{_num(edges[k + 1])}" + (" *" if _num(edges[k]) == _num(
            t["value"]) else ""), hist[NEEDED][k], hist[NOT_NEEDED][k], hist[MISSED][k])
            for k in range(len(edges) - 1)
            if hist[NEEDED][k] or hist[NOT_NEEDED][k] or hist[MISSED][k]]
        if shown:
            out += _table(("value (* from the threshold)", "needed", "not needed", "missed"),
                          shown)

    s = result["shadow"]
    out += ["", "== Shadow rule set"]
    if not s["decisions"]:
        out.append("no decision in range was evaluated by a shadow rule set")
    else:
        sets = ", ".join(f"{x['name']} {x['version']}" for x in s["rulesets"])
        w = s["with_feedback"]
        out.append(f"{sets}: disagreed on {s['disagreements']} of {s['decisions']} decisions "
                   f"({_pct(s['disagreement_rate'])}); where feedback says: active rules "
                   f"right {w['active_right']}, shadow right {w['shadow_right']}")
        for p in s["pairs"]:
            out.append(f"  {p['count']}: active {p['active_rule']} ({p['active_decision']}) "
                       f"-> shadow {p['shadow_rule']} ({p['shadow_decision']})")
            for x in p["examples"]:
                facts = ", ".join(f"{k}={v}" for k, v in x["facts"].items()
                                  if k in _EXAMPLE_FACTS)
                out.append(f"    {x['decision_id']} {x['conversation_id']} turn "
                           f"{x['turn_index']}: {facts}")
    return "\n".join(out) + "\n"


# The facts an example shows in text (the JSON and HTML show them all).
_EXAMPLE_FACTS = ("turn_index", "frustration.score", "frustration.mean", "loop.score",
                  "loop.repeats", "requested_human", "customer.tier", "channel",
                  "message.language")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
