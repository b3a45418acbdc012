"""Rule tests beside the rules (rules/tests/*.yaml), run with the service's own pipeline.

A test is a transcript, written as the turns API takes it, with what should happen at
chosen turns:

    tests:
      - name: An explicit request routes at once
        turns:
          - message: {text: "I want to talk to a person"}
        expect:
          - turn: 1
            decision: route_to_human
            decisive: explicit-human-request   # the rule that decided
            rules: [explicit-human-request]    # these matched (others may too)
            not_rules: [no-agents-available]   # these did not match
            queue: support                     # where the customer goes
            urgency: high                      # how urgently (low, normal, high, urgent)
            customer_message: "Of course. ..." # what the bot tells them (spaces collapsed)

`escalator rules test` also lists the rules no test expects to match (uncovered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from escalator.errors import PolicyError, Problem
from escalator.model import HANDOFF_URGENCIES, KEEP, ROUTE, Decision, FactValue
from escalator.policy import Policy
from escalator.ruleset.problems import did_you_mean, validation_problems
from escalator.ruleset.yamlfile import line_of, load_yaml
from escalator.tools.transcripts import Transcript, TranscriptError, decide_transcript, parse_turns
from escalator.turnschema import TurnSchema

TESTS_FOLDER = "tests"


class ExpectSchema(Schema):
    class Meta:
        unknown = RAISE

    # Still read, not offered (handoff_priority is urgency's old name).
    OLD_NAMES = ("handoff_priority",)

    turn = fields.Integer(required=True, strict=True, validate=validate.Range(min=1),
                          error_messages={"required": "is missing (the turn number, from 1)",
                                          "invalid": "must be a turn number (1, 2, ...)"})
    decision = fields.String(load_default=None, validate=validate.OneOf(
        [ROUTE, KEEP], error=f"must be {ROUTE} or {KEEP}"))
    decisive = fields.String(load_default=None)
    rules = fields.List(fields.String(), load_default=list)
    not_rules = fields.List(fields.String(), load_default=list)
    queue = fields.String(load_default=None)
    urgency = fields.String(load_default=None, validate=validate.OneOf(
        HANDOFF_URGENCIES, error="must be one of: " + ", ".join(HANDOFF_URGENCIES)))
    # The old name of urgency, still read.
    handoff_priority = fields.String(load_default=None, validate=validate.OneOf(
        HANDOFF_URGENCIES, error="must be one of: " + ", ".join(HANDOFF_URGENCIES)))
    customer_message = fields.String(load_default=None, validate=validate.Length(min=1))

    @validates_schema
    def _one_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("urgency") is not None and data.get("handoff_priority") is not None:
            raise ValidationError("is the old name of 'urgency'; write only urgency",
                                  "handoff_priority")


class CaseSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    conversation_id = fields.String(load_default="rule-test")
    turns = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    expect = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))


class FileSchema(Schema):
    class Meta:
        unknown = RAISE

    tests = fields.List(
        fields.Dict(), required=True, validate=validate.Length(min=1), error_messages={
            "required": "is missing: a test file holds its tests in a list under 'tests:'",
            "invalid": "must be a list of tests, each starting with '- name: ...'"})


class _TurnsSchema(Schema):
    """How a test's turns are read (as the turns API takes them): to name their problems."""

    turns = fields.List(fields.Nested(TurnSchema))


@dataclass(frozen=True)
class Expectation:
    """What should hold at one turn of a test."""

    turn: int
    line: int | None
    decision: str | None = None
    decisive: str | None = None
    rules: tuple[str, ...] = ()
    not_rules: tuple[str, ...] = ()
    queue: str | None = None
    urgency: str | None = None
    customer_message: str | None = None

    def handoff_expected(self) -> bool:
        """Whether this expectation says anything about the handoff."""
        return any(v is not None for v in (self.queue, self.urgency, self.customer_message))


@dataclass(frozen=True)
class RuleTest:
    """One named transcript with its expectations, located in its file."""

    name: str
    file: str
    line: int | None
    transcript: Transcript
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class Failure:
    """An expectation that did not hold: what was expected, what happened, and why."""

    test: RuleTest
    expectation: Expectation
    problems: tuple[str, ...]
    decision: Decision

    def explain(self) -> str:
        """A plain-language account of the failure, with the facts of that turn."""
        got = self.decision
        matched = ", ".join(r.rule for r in got.reasons) or "none"
        where = f"{self.test.file}:{self.expectation.line or self.test.line}"
        lines = [f"FAIL {where} {self.test.name!r}, turn {self.expectation.turn}"]
        lines += [f"  expected {p}" for p in self.problems]
        lines.append(f"  got      {got.decision}; rules matched (decisive first): {matched}")
        if got.handoff is not None and self.expectation.handoff_expected():
            lines.append(f"  handoff  queue {got.handoff.queue}, urgency "
                         f"{got.handoff.urgency}, message {got.handoff.customer_message!r}")
        lines.append("  facts    " + ", ".join(f"{k}={_show(v)}" for k, v in got.facts.items()))
        return "\n".join(lines)


@dataclass
class Report:
    """The outcome of running a set of rule tests."""

    passed: int = 0
    failures: list[Failure] = field(default_factory=list)
    # Rules of the set that no test expects to match (decisive or under `rules`).
    uncovered: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return len({(f.test.file, f.test.name) for f in self.failures})

    def summary(self) -> str:
        """The closing count line."""
        return f"{self.passed} passed, {self.failed} failed"

    def coverage(self) -> str:
        """Which rules no test covers, in a sentence."""
        if not self.uncovered:
            return "every rule is covered: each is expected to match by at least one test"
        return (f"{len(self.uncovered)} rule(s) not covered by any test (no test expects "
                f"them to match): {', '.join(self.uncovered)}; add a test with "
                "'rules: [<id>]' or 'decisive: <id>' for each")


def _show(value: FactValue) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def load_rule_tests(directory: Path, known_rules: Sequence[str],
                    known_queues: Sequence[str] | None = None) -> list[RuleTest]:
    """Every test in DIRECTORY/tests/*.yaml; PolicyError lists every problem, located.

    Rule ids (and, when given, queue names) a test expects are checked against the rule
    set's, with a "did you mean": a typo there would make a test fail for the wrong reason.
    """
    folder = directory / TESTS_FOLDER
    tests: list[RuleTest] = []
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        name = f"{TESTS_FOLDER}/{path.name}"
        try:
            document = load_yaml(path, name)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(document, dict):
            problems.append(Problem(name, line_of(document, 1), "a test file is a mapping "
                                    "with its tests in a list under 'tests:'", code="schema"))
            continue
        try:
            FileSchema().load(document)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, document, name, schema=FileSchema))
            continue
        for raw in document["tests"]:
            test = _load_case(raw, name, known_rules, known_queues, problems)
            if test is not None:
                tests.append(test)
    if problems:
        raise PolicyError(problems)
    return tests


def _load_case(raw: Any, file: str, known_rules: Sequence[str],
               known_queues: Sequence[str] | None, problems: list[Problem]) -> RuleTest | None:
    line = line_of(raw)
    title = raw.get("name") if isinstance(raw.get("name"), str) else None
    lead = f"test '{title}': " if title else "test (unnamed): "
    try:
        case = CaseSchema().load(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, raw, file, schema=CaseSchema, lead=lead))
        return None
    try:
        turns = parse_turns(case["turns"])
    except TranscriptError as exc:
        problems.extend(_turn_problems(exc, raw, file, lead))
        return None
    expectations: list[Expectation] = []
    ok = True
    for raw_expect in raw["expect"]:
        where = line_of(raw_expect, line)
        try:
            data = ExpectSchema().load(raw_expect)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, raw_expect, file, schema=ExpectSchema,
                                                lead=f"{lead}expect: "))
            ok = False
            continue
        queue = data["queue"]
        if queue is not None and known_queues is not None and queue not in known_queues:
            hint = did_you_mean(queue, known_queues)
            problems.append(Problem(file, where, f"{lead}no rule or default of the "
                                                 f"rule set sends customers to queue "
                                                 f"'{queue}'{hint}; the queues are: "
                                                 f"{', '.join(sorted(set(known_queues)))}",
                                    code="unknown_queue"))
            ok = False
        handoff = [key for key in ("queue", "urgency", "handoff_priority", "customer_message")
                   if data[key] is not None]
        if handoff and data["decision"] == KEEP:
            problems.append(Problem(file, where, f"{lead}a conversation kept with "
                                                 f"the bot has no handoff, so "
                                                 f"{', '.join(handoff)} cannot be checked; "
                                                 f"expect decision {ROUTE} or remove them",
                                    code="no_effect"))
            ok = False
        if data["turn"] > len(turns):
            problems.append(Problem(file, where, f"{lead}turn {data['turn']} is "
                                                 f"past the last turn ({len(turns)})",
                                    code="unknown_turn"))
            ok = False
        named = [data["decisive"]] if data["decisive"] else []
        for rule in [*named, *data["rules"], *data["not_rules"]]:
            if rule not in known_rules:
                hint = did_you_mean(rule, known_rules)
                problems.append(Problem(file, where, f"{lead}no rule '{rule}' in the "
                                                     f"rule set{hint}", code="unknown_rule"))
                ok = False
        expectations.append(Expectation(
            turn=data["turn"], line=where, decision=data["decision"],
            decisive=data["decisive"], rules=tuple(data["rules"]),
            not_rules=tuple(data["not_rules"]), queue=queue,
            urgency=data["urgency"] or data["handoff_priority"],
            customer_message=data["customer_message"]))
    if not ok:
        return None
    return RuleTest(name=case["name"], file=file, line=line,
                    transcript=Transcript(case["conversation_id"], turns),
                    expectations=tuple(expectations))


def check(expectation: Expectation, decision: Decision) -> list[str]:
    """What the expectation wanted and the decision did not give (empty: it holds)."""
    matched = [r.rule for r in decision.reasons]
    problems: list[str] = []
    if expectation.decision and decision.decision != expectation.decision:
        problems.append(f"decision {expectation.decision}")
    if expectation.decisive and (not matched or matched[0] != expectation.decisive):
        problems.append(f"decisive rule {expectation.decisive}")
    missing = [r for r in expectation.rules if r not in matched]
    if missing:
        problems.append("rules matched: " + ", ".join(missing))
    unwanted = [r for r in expectation.not_rules if r in matched]
    if unwanted:
        problems.append("rules not matched: " + ", ".join(unwanted))
    if expectation.handoff_expected():
        handoff = decision.handoff
        if handoff is None:
            problems.append("a handoff to a person (the conversation stayed with the bot)")
        else:
            if expectation.queue is not None and handoff.queue != expectation.queue:
                problems.append(f"queue {expectation.queue}")
            if expectation.urgency is not None and handoff.urgency != expectation.urgency:
                problems.append(f"urgency {expectation.urgency}")
            if (expectation.customer_message is not None
                    and _spaced(handoff.customer_message)
                    != _spaced(expectation.customer_message)):
                problems.append(f"customer message {expectation.customer_message!r}")
    return problems


def _spaced(text: str) -> str:
    """Text with runs of white space made one space (YAML folds long messages)."""
    return " ".join(text.split())


def _turn_problems(error: TranscriptError, raw: Any, file: str, lead: str) -> list[Problem]:
    """A test's turns that cannot be read, each problem at its turn's line."""
    by_number = error.details.get("turns")
    if not isinstance(by_number, dict):
        return [Problem(file, line_of(raw.get("turns"), line_of(raw)), f"{lead}{error}",
                        code="schema")]
    # Turns are numbered from 1 in the messages, and located in the list from 0.
    messages = {"turns": {int(number) - 1: texts for number, texts in by_number.items()}}
    return validation_problems(messages, raw, file, schema=_TurnsSchema, lead=lead)


def run_rule_tests(policy: Policy, tests: Sequence[RuleTest]) -> Report:
    """Run every test through the pipeline; a test passes when all its expectations hold."""
    named = {name for test in tests for expectation in test.expectations
             for name in (*expectation.rules,
                          *([expectation.decisive] if expectation.decisive else []))}
    report = Report(uncovered=tuple(rule.id for rule in policy.ruleset.rules
                                    if rule.id not in named))
    for test in tests:
        decisions = decide_transcript(policy, test.transcript)
        failures = [
            Failure(test, expectation, tuple(problems), decisions[expectation.turn - 1])
            for expectation in test.expectations
            if (problems := check(expectation, decisions[expectation.turn - 1]))
        ]
        if failures:
            report.failures.extend(failures)
        else:
            report.passed += 1
    return report
