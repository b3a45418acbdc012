"""A loaded rule set: its rules, each with its condition and what it decides, and the set's
default, messages and identity (plain dataclasses; the loader builds them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escalator.errors import Problem
from escalator.model import DecisionName, RulesetRef
from escalator.ruleset.conditions import Condition
from escalator.ruleset.messages import (
    BUILTIN_HANDOFF_MESSAGE,
    BUILTIN_IN_PROGRESS_MESSAGE,
    FALLBACK_LANGUAGE,
    Messages,
    choose,
)

# A rule's priority (its rank among the rules that match: which one decides) is a whole
# number from 0 to MAX_PRIORITY.
MAX_PRIORITY = 1000


@dataclass(frozen=True)
class Outcome:
    """What a rule (or the default) decides, and how to hand over when it routes to a person."""

    decision: DecisionName
    queue: str | None = None
    urgency: str | None = None  # one of escalator.model.HANDOFF_URGENCIES
    customer_message: Messages | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as written (`urgency` also when written as the old `priority`, the
        message as {language: text}), without the parts left out."""
        written = {"decision": self.decision, "queue": self.queue, "urgency": self.urgency,
                   "customer_message": None if self.customer_message is None
                   else self.customer_message.as_written()}
        return {k: v for k, v in written.items() if v is not None}


@dataclass(frozen=True)
class Rule:
    """One rule: when its condition holds, it proposes its outcome with its priority."""

    id: str
    description: str
    priority: int
    when: Condition
    then: Outcome
    file: str
    line: int


@dataclass(frozen=True)
class RuleSet:
    """A loaded, validated rule set; rules are in file order (files sorted by name)."""

    name: str
    version: str
    digest: str
    default: Outcome
    rules: tuple[Rule, ...]
    source: Path = field(compare=False)
    # What does not stop the set from loading but a policy owner should look at.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    # The language of plain-text messages, and of any message without the customer's.
    language: str = FALLBACK_LANGUAGE
    # What a conversation already with a person is told (None: the built-in sentence).
    in_progress: Messages | None = None

    def ref(self) -> RulesetRef:
        """Which rule set this is, for decisions and logs."""
        return RulesetRef(self.name, self.version, self.digest)

    def customer_message(self, messages: Messages | None, language: str) -> str:
        """What a handoff with these messages (a rule's, or None) tells a customer writing
        `language` (see escalator.ruleset.messages for the order tried)."""
        return choose(language, self.language, messages, self.default.customer_message,
                      BUILTIN_HANDOFF_MESSAGE)

    def in_progress_message(self, language: str) -> str:
        """What each turn of a conversation already with a person tells the customer."""
        return choose(language, self.language, self.in_progress, BUILTIN_IN_PROGRESS_MESSAGE)

    def describe(self) -> dict[str, Any]:
        """The rule set as JSON for GET /v1/ruleset."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "default_language": self.language,
            "handoff_in_progress": {"customer_message": (
                self.in_progress or BUILTIN_IN_PROGRESS_MESSAGE).as_written()},
            "default": self.default.as_dict(),
            "rules": [
                {"id": r.id, "description": r.description, "priority": r.priority,
                 "when": r.when.as_written(), "then": r.then.as_dict()}
                for r in self.rules
            ],
        }
