"""A policy: one rule set compiled into the engine, with the vocabularies its scorers use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from escalator.errors import PolicyError, Problem
from escalator.rules.compiler import CompiledRuleSet
from escalator.rules.loader import RuleSet, load_ruleset
from escalator.scoring import Lexicons, load_lexicons

LEXICON_FOLDER = "lexicons"


@dataclass(frozen=True)
class Policy:
    """Everything a decision needs that comes from the rules folder."""

    ruleset: RuleSet
    engine: CompiledRuleSet
    lexicons: Lexicons

    def close(self) -> None:
        """Free the engine's handle once no decision uses this policy any more."""
        self.engine.close()


def load_policy(directory: Path) -> Policy:
    """Load, check and compile a rules folder; PolicyError lists every problem found."""
    problems: list[Problem] = []
    lexicons: Lexicons | None = None
    ruleset: RuleSet | None = None
    if not directory.is_dir():
        raise PolicyError([Problem(str(directory), None, "the rules folder does not exist")])
    try:
        lexicons = load_lexicons(directory / LEXICON_FOLDER)
    except PolicyError as exc:
        problems.extend(exc.problems)
    try:
        ruleset = load_ruleset(directory)
    except PolicyError as exc:
        problems.extend(exc.problems)
    if problems or lexicons is None or ruleset is None:
        raise PolicyError(problems)
    return Policy(ruleset=ruleset, engine=CompiledRuleSet(ruleset), lexicons=lexicons)


class PolicyHolder:
    """The active policy, swapped atomically; readers always see one complete policy."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._lock = threading.Lock()

    @property
    def current(self) -> Policy:
        """The policy new decisions use."""
        return self._policy

    def swap(self, policy: Policy) -> Policy:
        """Make `policy` active and return the previous one (the caller frees it)."""
        with self._lock:
            previous, self._policy = self._policy, policy
        return previous
