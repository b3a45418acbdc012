"""The floor: a customer can always reach a person. Every rule set must route an explicit
request for a person, and cap the bot's consecutive failures, whatever else it says; a set
that does not is refused at load (at start, on reload, and sent inline)."""

from __future__ import annotations

from collections.abc import Callable

from escalator.errors import Problem
from escalator.model import KEEP, ROUTE
from escalator.ruleset.conditions import truth_from, truth_when
from escalator.ruleset.model import Rule

# After at most this many bot failures in a row, some rule must hand over.
FLOOR_MAX_FALLBACK_STREAK = 5
FLOOR_DOC = "see 'The floor' in docs/policy/guide.md"


def floor_problems(rules: list[Rule], file: str, unreadable: int = 0) -> list[Problem]:
    """Problems with the floor (a customer can always reach a person); empty when a way
    out always exists.

    (a) Some route_to_human rule is certainly true whenever requested_human is true, and
    (b) some route_to_human rule is certainly true whenever loop.fallback_streak >= 5 (so a
    cap of at most 5 failures); "certainly" means whatever the other facts are.
    (c) No keep_with_bot rule that could also match then has a strictly higher priority
    than the best such rule (equal priorities go to route_to_human).
    """
    problems: list[Problem] = []
    later = (f" ({unreadable} rule(s) could not be read; the missing rule may be among them)"
             if unreadable else "")
    streak = "loop.fallback_streak"
    checks: tuple[tuple[Callable[[Rule], bool], Callable[[Rule], bool], str, str], ...] = (
        (lambda rule: truth_when(rule.when, "requested_human", True) is True,
         lambda rule: truth_when(rule.when, "requested_human", True) is not False,
         "routes an explicit request for a person (requested_human is true) to a person",
         "honours an explicit request for a person"),
        # Every streak from the cap up, however large: reasoned over segments of values.
        (lambda rule: all(truth is True for _, truth in
                          truth_from(rule.when, streak, FLOOR_MAX_FALLBACK_STREAK)),
         lambda rule: any(truth is not False for _, truth in
                          truth_from(rule.when, streak, FLOOR_MAX_FALLBACK_STREAK)),
         "hands the conversation to a person after at most "
         f"{FLOOR_MAX_FALLBACK_STREAK} bot failures in a row "
         f"(e.g. loop.fallback_streak gte {FLOOR_MAX_FALLBACK_STREAK} or less)",
         "caps consecutive bot failures"),
    )
    for always, possible, what, role in checks:
        floor = [r for r in rules if r.then.decision == ROUTE and always(r)]
        if not floor:
            problems.append(Problem(file, None, f"the rule set has no rule that {what}; add one "
                                                f"({FLOOR_DOC}){later}", code="floor"))
            continue
        best = max(floor, key=lambda r: r.priority)
        for rule in rules:
            if rule.then.decision == KEEP and rule.priority > best.priority and possible(rule):
                problems.append(Problem(
                    rule.file, rule.line,
                    f"this keep_with_bot rule (priority {rule.priority}) could override "
                    f"'{best.id}' (priority {best.priority}), the rule that {role}; give it a "
                    f"priority of {best.priority} or less, or make it not apply then "
                    f"({FLOOR_DOC})", rule=rule.id, code="floor"))
    return problems
