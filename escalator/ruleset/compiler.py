"""Compile a RuleSet into durable-rules and evaluate facts against it.

This is the only module that imports the rules engine. It calls the C module
`durable_rules_engine` directly: the Python `durable.engine.Host` starts timer threads
(every 0.2 s) that run actions on their own thread, which gave wrong results and
segfaults alongside request threads.

How facts reach the engine (every rule is also compiled against this encoding):
- Only facts that some rule tests are sent. Each gets a flat key: dots become `__`, any
  other character outside [A-Za-z0-9_] becomes `_`, with a numeric suffix on a clash;
  never `sid`, `id`, `kind` or a leading `$` (the engine's own fields and operators).
- A labels fact becomes one `true` key per label that rules ask about
  (`complexity.topics` holding legal -> `complexity__topics__has__legal: true`), so
  `contains` is an equality: no `$iany`/`$mt` (the pattern matcher has bugs).
- A `context.<key>` fact goes under a key for its type (`context__vip__bool`,
  `__num`, `__str`): the engine's loose typing makes "3" == 3 and "true" == true, so
  values of different types must never share a key.
- An absent fact (or None) is simply not sent; comparisons on it are false (the engine's
  own rule, `$neq` included), so `ne`/`not_in` on an absent fact are false too.
- `not` is pushed down to the comparisons (De Morgan), and a negated comparison becomes
  "absent, or the opposite comparison" (`$nex`), so `not` of a comparison on an absent
  fact is true: exactly the meaning defined in escalator.ruleset.conditions.
- Every fact carries `kind: "turn"` and every rule requires it: a rule made only of
  `$nex` would otherwise match the engine's own state object and loop forever.
- Numbers are written without a bare exponent (the engine rejects `1e-05`, error 204);
  NaN and infinities are refused; integers beyond int64 (which would match nothing) are
  sent as floats.

How rules reach the engine: each condition is expanded into alternatives (conjunctions
of comparisons), one engine rule `r<rule index>_<n>` per alternative, packed into as many
engine rulesets as keep each within the engine's 64-entry evaluation stack (error 303
otherwise; see _shards). `pri` follows the decisive order; matches are de-duplicated and
sorted here anyway (priority descending, route_to_human first on a tie, then file order).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

import durable_rules_engine as engine

from escalator.errors import PolicyError, Problem
from escalator.model import ROUTE, DecisionName, FactValue, most_urgent
from escalator.ruleset.catalogue import lookup
from escalator.ruleset.conditions import AllOf, Condition, Constant, Leaf, Not, kind_of
from escalator.ruleset.model import MAX_PRIORITY, Outcome, Rule, RuleSet

MARKER_KEY = "kind"
MARKER_VALUE = "turn"
# One fixed session id: a new sid per evaluation hits the engine's 1024 live-session limit
# (MAX_STATE_INDEX_LENGTH), after which the ruleset is broken for good.
SESSION_ID = "0"
# A rule in every engine ruleset that only the priming fact matches (see _prime).
PRIME_RULE = "prime"
PRIME_VALUE = "prime"
# Each alternative of a condition (any/in/not expanded) is one engine rule; cap the
# expansion so one rule cannot make compiling and evaluation slow.
MAX_ALTERNATIVES = 256
# The engine's share of a rule set's budget (the loader checks the rest). Measured on
# durable-rules 2.0.28: an engine ruleset costs about 76 KB, each test in it about 4 KB,
# whatever the rules test; a 4 KB rule set of long in/not_in lists used through aliases
# compiled into 600,000 tests and took a worker to 2.8 GB. Within these caps a rule set
# compiles into at most about 30 MB. What the default rules use: docs/policy/guide.md, Limits
# (a test keeps those figures true).
MAX_ENGINE_RULES = 2_000
MAX_ENGINE_TESTS = 5_000
MAX_ENGINE_RULESETS = 100
# Tests per engine ruleset (see _shards): the engine's MAX_STACK_SIZE is 64.
STACK_BUDGET = 64
# The engine refuses a fact with more than 254 properties (error 302, measured on 2.0.28).
MAX_FACT_PROPERTIES = 254
_RESERVED_KEYS = frozenset({"sid", "id", MARKER_KEY})
_INT64 = 2**63
_SCALAR_KINDS = ("boolean", "number", "string")
_SCALAR_SUFFIX = {"boolean": "bool", "number": "num", "string": "str"}
_names = itertools.count(1)


@dataclass(frozen=True)
class Evaluation:
    """The decision for a set of facts, every rule that matched (decisive first), and
    the handoff (only when routing to a person; gaps filled from the set's default)."""

    decision: DecisionName
    matches: tuple[Rule, ...]
    handoff: Outcome | None
    # The most urgent urgency among the route_to_human rules that matched (None if none
    # did), whatever decided: the handoff's, and what raises a handoff in progress.
    urgency: str | None = None
    # What a matching rule that does not say its urgency has (the set's default).
    default_urgency: str | None = None


class RuleSetClosed(RuntimeError):
    """The compiled rule set was closed; compile the RuleSet again to evaluate."""


# ---------------------------------------------------------------------------- numbers, JSON

def engine_number(value: int | float) -> str:
    """A number as the engine parses it: no bare exponent; ValueError for NaN/infinity."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return str(value)
        # Beyond int64 the engine silently matches nothing: compare it as a float instead.
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    text = repr(value)
    if "e" in text or "E" in text:
        # repr gives the shortest exact digits; Decimal writes them out positionally.
        text = format(Decimal(text), "f")
    if "." not in text:
        # A float written without a point would be read as an integer (or overflow int64).
        text += ".0"
    return text


def engine_json(value: Any) -> str:
    """JSON the engine accepts: like json.dumps, but numbers via engine_number."""
    if value is None or isinstance(value, bool | str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return engine_number(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{engine_json(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(engine_json(v) for v in value) + "]"
    raise TypeError(f"cannot send {type(value).__name__} to the rules engine")


# ---------------------------------------------------------------------------- expressions
# A tiny expression form over engine keys, closed under negation, then written as JSON.

@dataclass(frozen=True)
class _Atom:
    op: str  # eq neq lt lte gt gte ex nex
    key: str
    value: Constant | None = None


@dataclass(frozen=True)
class _And:
    items: tuple[_Expr, ...]


@dataclass(frozen=True)
class _Or:
    items: tuple[_Expr, ...]


_Expr: TypeAlias = _Atom | _And | _Or

_OPPOSITE = {"eq": "neq", "neq": "eq", "lt": "gte", "gte": "lt", "gt": "lte", "lte": "gt",
             "ex": "nex", "nex": "ex"}


def _negate(expr: _Expr) -> _Expr:
    """The exact negation, given that any comparison on an absent key is false."""
    if isinstance(expr, _And):
        return _Or(tuple(_negate(e) for e in expr.items))
    if isinstance(expr, _Or):
        return _And(tuple(_negate(e) for e in expr.items))
    opposite = _Atom(_OPPOSITE[expr.op], expr.key, expr.value)
    if expr.op in ("ex", "nex"):
        return opposite
    # not (x < 3) is "x absent, or x >= 3".
    return _Or((_Atom("nex", expr.key), opposite))


def _alternatives(expr: _Expr) -> int:
    """How many alternatives the engine expands an expression into."""
    if isinstance(expr, _Atom):
        return 1
    if isinstance(expr, _Or):
        return sum(_alternatives(e) for e in expr.items)
    return math.prod(_alternatives(e) for e in expr.items)


def _width(expr: _Expr) -> int:
    """The most comparisons any one alternative of an expression makes (before the
    duplicates within an alternative are removed), without expanding it."""
    if isinstance(expr, _Atom):
        return 1
    if isinstance(expr, _Or):
        return max(_width(e) for e in expr.items)
    return sum(_width(e) for e in expr.items)


def _expand(expr: _Expr) -> list[tuple[_Atom, ...]]:
    """The alternatives of an expression: a list of conjunctions of comparisons.

    The engine would expand `$or` the same way; doing it here lets the compiler count
    the comparisons and spread the alternatives over several engine rulesets.
    """
    if isinstance(expr, _Atom):
        return [(expr,)]
    if isinstance(expr, _Or):
        return [alt for item in expr.items for alt in _expand(item)]
    alternatives: list[tuple[_Atom, ...]] = [()]
    for item in expr.items:
        alternatives = [left + right for left in alternatives for right in _expand(item)]
    # A comparison repeated within one alternative is tested once.
    return [tuple(dict.fromkeys(alt)) for alt in alternatives]


def _atom_to_engine(atom: _Atom) -> dict[str, Any]:
    if atom.op == "eq":
        return {atom.key: atom.value}
    if atom.op in ("ex", "nex"):
        return {f"${atom.op}": {atom.key: 1}}
    return {f"${atom.op}": {atom.key: atom.value}}


# ---------------------------------------------------------------------------- fact encoding

_Encoder: TypeAlias = Callable[[str, Any, list[str]], None]


class _Keys:
    """Assigns each tested fact (and label, and context type) a flat, engine-safe key."""

    def __init__(self) -> None:
        self._taken: set[str] = set(_RESERVED_KEYS)
        self.plain: dict[str, str] = {}  # typed catalogue facts
        self.labels: dict[str, dict[str, str]] = {}  # labels fact -> label -> key
        self.scalars: dict[str, dict[str, str]] = {}  # context fact -> kind -> key

    def _new(self, wanted: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", wanted) or "f"
        key, n = base, 1
        while key in self._taken or key.startswith("$"):
            n += 1
            key = f"{base}_{n}"
        self._taken.add(key)
        return key

    def count(self) -> int:
        """How many keys a fact can carry at most."""
        return (len(self.plain) + sum(len(k) for k in self.labels.values())
                + sum(len(k) for k in self.scalars.values()))

    def plain_key(self, fact: str) -> str:
        if fact not in self.plain:
            self.plain[fact] = self._new(fact.replace(".", "__"))
        return self.plain[fact]

    def label_key(self, fact: str, label: str) -> str:
        keys = self.labels.setdefault(fact, {})
        if label not in keys:
            keys[label] = self._new(f"{fact.replace('.', '__')}__has__{label}")
        return keys[label]

    def scalar_key(self, fact: str, kind: str) -> str:
        keys = self.scalars.get(fact)
        if keys is None:
            base = fact.replace(".", "__")
            keys = {k: self._new(f"{base}__{_SCALAR_SUFFIX[k]}") for k in _SCALAR_KINDS}
            self.scalars[fact] = keys
        return keys[kind]


def _compile_leaf(leaf: Leaf, keys: _Keys) -> _Expr:
    """A comparison as an expression over engine keys (see the module docstring)."""
    spec = lookup(leaf.fact)
    assert spec is not None, "the loader only lets catalogue facts through"
    if spec.type == "labels":
        assert isinstance(leaf.value, str)
        return _Atom("eq", keys.label_key(leaf.fact, leaf.value), True)
    op = {"is": "eq", "ne": "neq"}.get(leaf.op, leaf.op)
    constants = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
    if spec.type != "scalar":
        key = keys.plain_key(leaf.fact)
        if leaf.op == "in":
            return _Or(tuple(_Atom("eq", key, c) for c in constants))
        if leaf.op == "not_in":
            return _And(tuple(_Atom("neq", key, c) for c in constants))
        return _Atom(op, key, constants[0])
    # context.<key>: values of each type live under their own key (loose typing).
    typed = {kind: keys.scalar_key(leaf.fact, kind) for kind in _SCALAR_KINDS}
    if leaf.op in ("eq", "is", "in"):
        return _Or(tuple(_Atom("eq", typed[kind_of(c)], c) for c in constants))
    if leaf.op in ("ne", "not_in"):
        # Present and different from every constant: under the key of each type, either
        # differs from that type's constants or (no constant of that type) merely exists.
        branches: list[_Expr] = []
        for kind in _SCALAR_KINDS:
            same = [c for c in constants if kind_of(c) == kind]
            if same:
                branches.append(_And(tuple(_Atom("neq", typed[kind], c) for c in same)))
            else:
                branches.append(_Atom("ex", typed[kind]))
        return _Or(tuple(branches))
    return _Atom(op, typed["number"], constants[0])


def _compile(condition: Condition, keys: _Keys) -> _Expr:
    if isinstance(condition, Leaf):
        return _compile_leaf(condition, keys)
    if isinstance(condition, Not):
        return _negate(_compile(condition.item, keys))
    items = tuple(_compile(item, keys) for item in condition.items)
    return _And(items) if isinstance(condition, AllOf) else _Or(items)


def _plain_encoder(name: str, type_: str, key: str) -> _Encoder:
    prefix = json.dumps(key) + ":"
    if type_ == "boolean":
        def encode_bool(fact: str, value: Any, out: list[str]) -> None:
            if not isinstance(value, bool):
                raise _bad_fact(fact, value, "true or false")
            out.append(prefix + ("true" if value else "false"))
        return encode_bool
    if type_ == "string":
        def encode_text(fact: str, value: Any, out: list[str]) -> None:
            if not isinstance(value, str):
                raise _bad_fact(fact, value, "text")
            out.append(prefix + json.dumps(value))
        return encode_text

    def encode_number(fact: str, value: Any, out: list[str]) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad_fact(fact, value, "a number")
        out.append(prefix + _fact_number(fact, value))
    return encode_number


def _labels_encoder(label_keys: Mapping[str, str]) -> _Encoder:
    pairs = tuple((label, json.dumps(key) + ":true") for label, key in label_keys.items())

    def encode_labels(fact: str, value: Any, out: list[str]) -> None:
        if isinstance(value, str) or not isinstance(value, tuple | list | frozenset | set):
            raise _bad_fact(fact, value, "a tuple of labels")
        for label, text in pairs:
            if label in value:
                out.append(text)
    return encode_labels


def _scalar_encoder(typed: Mapping[str, str]) -> _Encoder:
    prefixes = {kind: json.dumps(key) + ":" for kind, key in typed.items()}

    def encode_scalar(fact: str, value: Any, out: list[str]) -> None:
        kind = kind_of(value)
        if kind == "boolean":
            out.append(prefixes[kind] + ("true" if value else "false"))
        elif kind == "number":
            out.append(prefixes[kind] + _fact_number(fact, value))
        elif kind == "string":
            out.append(prefixes[kind] + json.dumps(value))
        else:
            raise _bad_fact(fact, value, "text, a number or true/false")
    return encode_scalar


def _fact_number(fact: str, value: int | float) -> str:
    try:
        return engine_number(value)
    except ValueError as exc:
        raise ValueError(f"fact {fact!r}: {exc}") from None


def _bad_fact(fact: str, value: Any, expected: str) -> TypeError:
    return TypeError(f"fact {fact!r} should be {expected}, got {type(value).__name__} "
                     f"{value!r}")


# ---------------------------------------------------------------------------- compiled set

def _decisive_order(rules: tuple[Rule, ...]) -> list[int]:
    """Rule indexes, decisive first: priority descending, route_to_human before
    keep_with_bot on equal priority, then file order."""
    return sorted(range(len(rules)),
                  key=lambda i: (-rules[i].priority, rules[i].then.decision != ROUTE, i))


def _engine_priority(rule: Rule) -> int:
    """The engine's `pri`: unsigned 16-bit, lowest fires first (so higher priority -> lower)."""
    return (MAX_PRIORITY - rule.priority) * 2 + (0 if rule.then.decision == ROUTE else 1)


def _free(handles: list[Any], asserted: list[bool]) -> None:
    """Free the engine rulesets: each one's session (if it ever had one), then the ruleset."""
    for handle in handles:
        if asserted[0]:
            engine.delete_state(handle, SESSION_ID)
        engine.delete_ruleset(handle)


_Alternative: TypeAlias = tuple[str, int, tuple[_Atom, ...]]


def _groups(alternatives: list[_Alternative]) -> list[list[_Alternative]]:
    """The alternatives in groups small enough for the engine's evaluation stack.

    The engine walks its network of tests depth first with a stack of MAX_STACK_SIZE (64)
    tests that passed and wait to be followed; more, and assert_fact fails with error 303
    (measured: 65 rules, each testing a different key that the fact has). A network never
    holds more tests than its rules contain, so a ruleset whose alternatives hold at most
    STACK_BUDGET tests in all (the marker included) can never overflow it.
    """
    groups: list[list[_Alternative]] = []
    current: list[_Alternative] = []
    used = 1  # the marker test, shared by every rule of a ruleset
    for alternative in alternatives:
        if used + len(alternative[2]) > STACK_BUDGET and current:
            groups.append(current)
            current, used = [], 1
        current.append(alternative)
        used += len(alternative[2])
    if current:
        groups.append(current)
    return groups


def _shards(alternatives: list[_Alternative]) -> list[dict[str, Any]]:
    """Engine ruleset definitions, one per group of alternatives (see _groups)."""
    shards: list[dict[str, Any]] = []
    for group in _groups(alternatives):
        shard: dict[str, Any] = {}
        for name, pri, atoms in group:
            tests = [{MARKER_KEY: MARKER_VALUE}, *(_atom_to_engine(a) for a in atoms)]
            shard[name] = {"all": [{"m": {"$and": tests}}], "pri": pri}
        shard[PRIME_RULE] = {"all": [{"m": {MARKER_KEY: PRIME_VALUE}}], "pri": 0}
        shards.append(shard)
    return shards


def _prime(handle: Any) -> None:
    """Initialise the session's state node with a fact the engine certainly handles.

    Measured (valgrind): when every fact a session ever saw was "not handled" (assert_fact
    code 1: no rule's first test passed), the engine leaves the session's state node
    half-initialised and delete_state frees garbage pointers ("free(): invalid pointer").
    One handled fact at construction makes the state node whole.
    """
    fact = f'{{"{MARKER_KEY}":"{PRIME_VALUE}","sid":"{SESSION_ID}","id":"prime"}}'
    result = engine.assert_fact(handle, fact)
    try:
        action = engine.start_action_for_state(handle, result[1])
        while action:
            action = engine.complete_and_start_action(handle, result[1])
    finally:
        engine.retract_fact(handle, fact)


class CompiledRuleSet:
    """A RuleSet compiled into a durable-rules ruleset, safe to share between threads.

    The C extension is not thread-safe and never releases the GIL: one lock per compiled
    set serialises assert/drain/retract (8 threads without it segfaulted every time; see
    docs/design/rule-compiler.md). Scale with worker processes, not threads.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        """Compile; PolicyError if a rule is too large or the engine refuses the set."""
        self.ruleset = ruleset
        self._lock = threading.Lock()
        self._fact_ids = itertools.count(1)
        self._rules = ruleset.rules
        order = _decisive_order(self._rules)
        self._rank = {index: rank for rank, index in enumerate(order)}
        keys = _Keys()
        alternatives: list[tuple[str, int, tuple[_Atom, ...]]] = []
        problems: list[Problem] = []
        tests = 0
        for index, rule in enumerate(self._rules):
            expr = _compile(rule.when, keys)
            count = _alternatives(expr)
            if count > MAX_ALTERNATIVES:
                problems.append(Problem(
                    rule.file, rule.line,
                    f"this condition has {count:,} combinations of any/in/not alternatives "
                    f"(at most {MAX_ALTERNATIVES}); split it into several rules",
                    rule=rule.id, code="budget", limit="alternatives"))
                continue
            if _width(expr) >= STACK_BUDGET:
                # Checked before expanding: a wide alternative times many is large.
                problems.append(Problem(
                    rule.file, rule.line,
                    f"this condition makes up to {_width(expr):,} comparisons at once (at "
                    f"most {STACK_BUDGET - 1}); split it into several rules", rule=rule.id,
                    code="budget", limit="comparisons"))
                continue
            if len(alternatives) + count > MAX_ENGINE_RULES:
                problems.append(self._over(rule, "engine_rules", len(alternatives) + count,
                                           MAX_ENGINE_RULES, "alternatives (each way a "
                                           "condition can be true: every any branch, every "
                                           "in value)"))
                break
            for number, atoms in enumerate(_expand(expr)):
                # Engine rule names are "r<rule index>_<alternative>": see matches().
                alternatives.append((f"r{index}_{number}", _engine_priority(rule), atoms))
                tests += len(atoms)
            if tests > MAX_ENGINE_TESTS:
                problems.append(self._over(rule, "engine_tests", tests, MAX_ENGINE_TESTS,
                                           "comparisons once every alternative is written "
                                           "out"))
                break
        if not problems and len(shards := _shards(alternatives)) > MAX_ENGINE_RULESETS:
            first = self._rules[0]
            problems.append(Problem(
                first.file, None,
                f"the rules need {len(shards)} engine rulesets (each holds at most "
                f"{STACK_BUDGET} comparisons, one rule's alternatives never split); at most "
                f"{MAX_ENGINE_RULESETS}: use fewer comparisons per alternative",
                code="budget", limit="engine_rulesets"))
        size = keys.count() + len(_RESERVED_KEYS)
        if size > MAX_FACT_PROPERTIES:
            first = self._rules[0]
            problems.append(Problem(
                first.file, None,
                f"the rules test {size - len(_RESERVED_KEYS)} different facts, labels and "
                f"context values (counting each context value three times); the engine takes "
                f"at most {MAX_FACT_PROPERTIES - len(_RESERVED_KEYS)}: test fewer labels",
                code="budget", limit="fact_properties"))
        if problems:
            raise PolicyError(problems)
        self._encoders = self._make_encoders(keys)
        # Each engine ruleset is sent only the facts its own rules test: with many rules
        # split over many rulesets, parsing the whole fact in every one of them (and again
        # to retract it) was most of an evaluation's cost (bench/perf/large_rulesets.py).
        self._shard_facts = self._facts_by_shard(keys, alternatives)
        # A ruleset name cannot be registered twice in a process: hot reload and tests
        # compile the same set many times, so every compilation gets its own name.
        self.engine_name = f"escalator-{ruleset.name}-{next(_names)}-{uuid.uuid4().hex[:8]}"
        self._handles: list[Any] = []
        self._asserted = [False]
        try:
            for number, definitions in enumerate(_shards(alternatives)):
                self._handles.append(engine.create_ruleset(f"{self.engine_name}-{number}",
                                                           engine_json(definitions)))
                _prime(self._handles[-1])
                self._asserted[0] = True
        except engine.error as exc:
            _free(self._handles, self._asserted)
            raise PolicyError(self._locate_refusal(alternatives, str(exc))) from exc
        self._open = True
        # Free the engine's memory even if close() is forgotten (finalize never holds self).
        self._finalizer = weakref.finalize(self, _free, self._handles, self._asserted)

    def _over(self, rule: Rule, limit: str, found: int, maximum: int, what: str) -> Problem:
        """The rule set passed one of the engine's budgets at this rule."""
        return Problem(rule.file, rule.line,
                       f"the rules so far, this one included, compile into {found:,} {what}; at "
                       f"most {maximum:,} are allowed for the whole rule set: simplify this "
                       "rule or the ones before it (long in/not_in lists and any inside all "
                       "multiply)", rule=rule.id, code="budget", limit=limit)

    @staticmethod
    def _facts_by_shard(keys: _Keys, alternatives: list[_Alternative]
                        ) -> tuple[tuple[str, ...], ...]:
        """For each engine ruleset, the facts whose keys its rules test (in encoder order)."""
        fact_keys: dict[str, set[str]] = {fact: {key} for fact, key in keys.plain.items()}
        fact_keys.update((fact, set(labels.values())) for fact, labels in keys.labels.items())
        fact_keys.update((fact, set(typed.values())) for fact, typed in keys.scalars.items())
        order = [*keys.plain, *keys.labels, *keys.scalars]  # as _make_encoders lists them
        found = []
        for group in _groups(alternatives):
            tested = {atom.key for _, _, atoms in group for atom in atoms}
            found.append(tuple(fact for fact in order if fact_keys[fact] & tested))
        return tuple(found)

    def _make_encoders(self, keys: _Keys) -> tuple[tuple[str, _Encoder], ...]:
        encoders: list[tuple[str, _Encoder]] = []
        for fact, key in keys.plain.items():
            spec = lookup(fact)
            assert spec is not None
            encoders.append((fact, _plain_encoder(fact, spec.type, key)))
        for fact, label_keys in keys.labels.items():
            encoders.append((fact, _labels_encoder(label_keys)))
        for fact, typed in keys.scalars.items():
            encoders.append((fact, _scalar_encoder(typed)))
        return tuple(encoders)

    def _locate_refusal(self, alternatives: list[tuple[str, int, tuple[_Atom, ...]]],
                        reason: str) -> list[Problem]:
        """Which rules the engine refuses, tried one at a time, as problems."""
        problems = []
        refused: set[int] = set()
        for name, pri, atoms in alternatives:
            index = int(name[1:name.index("_")])
            if index in refused:
                continue
            (definitions,) = _shards([(name, pri, atoms)])
            try:
                handle = engine.create_ruleset(f"{self.engine_name}-probe-{name}",
                                               engine_json(definitions))
            except engine.error as exc:
                refused.add(index)
                rule = self._rules[index]
                problems.append(Problem(rule.file, rule.line,
                                        f"the rules engine refused this rule ({exc})",
                                        rule=rule.id, code="engine_refused"))
            else:
                engine.delete_ruleset(handle)
        if not problems:
            first = self._rules[0].file if self._rules else str(self.ruleset.source)
            problems.append(Problem(first, None, f"the rules engine refused the rule set "
                                                 f"({reason})", code="engine_refused"))
        return problems

    def _fact_json(self, facts: Mapping[str, FactValue | None]) -> list[str]:
        """The fact as each engine ruleset is sent it (only the keys its rules test)."""
        head = (f'{{"{MARKER_KEY}":"{MARKER_VALUE}","sid":"{SESSION_ID}",'
                f'"id":"{next(self._fact_ids)}"')
        if len(self._shard_facts) == 1:  # every rule set of a usual size: one list, one join
            parts = [head]
            for fact, encode in self._encoders:
                value = facts.get(fact)
                if value is not None:
                    encode(fact, value, parts)
            return [",".join(parts) + "}"]
        encoded: dict[str, str] = {}
        for fact, encode in self._encoders:
            value = facts.get(fact)
            if value is not None:
                own: list[str] = []
                encode(fact, value, own)
                if own:
                    encoded[fact] = "," + ",".join(own)
        return [head + "".join(encoded.get(fact, "") for fact in shard) + "}"
                for shard in self._shard_facts]

    def matches(self, facts: Mapping[str, FactValue | None]) -> tuple[Rule, ...]:
        """Every rule whose condition holds, once each, decisive first.

        Facts the rules do not test are ignored; a missing or None fact is absent.
        TypeError/ValueError if a fact has the wrong type or is NaN/infinite.
        """
        fired: set[int] = set()
        with self._lock:
            if not self._open:
                raise RuleSetClosed(f"rule set {self.ruleset.name} {self.ruleset.version} "
                                    "was closed; compile it again to evaluate")
            # The fact id must be unique per evaluation, so build it under the lock.
            for handle, fact in zip(self._handles, self._fact_json(facts), strict=True):
                result = engine.assert_fact(handle, fact)
                try:
                    state = result[1]
                    action = engine.start_action_for_state(handle, state)
                    while action:
                        # The result is '{"r<index>_<alternative>":{...the fact...}}': read
                        # the index from the text (json.loads of the whole fact cost ~6 us
                        # per match). Several alternatives of one rule can fire: a set.
                        text = action[1]
                        if not text.startswith('{"r'):
                            text = '{"' + next(iter(json.loads(text)))
                        fired.add(int(text[3:text.index("_", 3)]))
                        action = engine.complete_and_start_action(handle, state)
                        action = (None, action) if action else None
                finally:
                    engine.retract_fact(handle, fact)
        return tuple(self._rules[i] for i in sorted(fired, key=self._rank.__getitem__))

    def evaluate(self, facts: Mapping[str, FactValue | None]) -> Evaluation:
        """The decision: the decisive rule's, or the set's default when none matches."""
        found = self.matches(facts)
        default = self.ruleset.default
        chosen = found[0].then if found else default
        # The decisive rule names the queue, but the handoff is as urgent as the most
        # urgent reason for it: a loop rule outranking a frustration rule must not hand a
        # furious customer over at normal.
        urgency = most_urgent(*(rule.then.urgency or default.urgency for rule in found
                                if rule.then.decision == ROUTE))
        if chosen.decision != ROUTE:
            return Evaluation(chosen.decision, found, None, urgency, default.urgency)
        handoff = Outcome(
            chosen.decision,
            queue=chosen.queue or default.queue,
            urgency=urgency or chosen.urgency or default.urgency,
            customer_message=chosen.customer_message or default.customer_message,
        )
        return Evaluation(chosen.decision, found, handoff, urgency, default.urgency)

    def close(self) -> None:
        """Free the engine's ruleset; idempotent; later evaluations raise RuleSetClosed."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._finalizer()

    def __enter__(self) -> CompiledRuleSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
