"""Domain errors shared by the loader, the scorers and the state store (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file, located for a policy owner."""

    file: str
    line: int | None
    message: str
    rule: str | None = None
    # Set when the problem is a size limit (the budget of every rule set): which one.
    limit: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        rule = f" rule '{self.rule}'" if self.rule else ""
        return f"{where}:{rule} {self.message}"


class PolicyError(Exception):
    """A rule set or vocabulary was refused; every problem is listed."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        # Found at the same time: shown with the problems so nothing waits for a second run.
        self.warnings = list(warnings or [])
        super().__init__("\n".join(str(p) for p in problems))


class StateUnavailable(Exception):
    """The state store could not be reached within its budget."""


class StateUnreadable(Exception):
    """A conversation's stored value cannot be read (corrupt, not written by escalator, or
    a key of the wrong Redis type). Its next turn replaces it with a fresh conversation."""

    def __init__(self, conversation_id: str, reason: str, version: int = 0) -> None:
        super().__init__(f"the stored state of conversation {conversation_id!r} cannot be "
                         f"read ({reason})")
        self.reason = reason
        # The version its header claims (0 if none): a replacement is written as the next.
        self.version = version


class TurnSuperseded(Exception):
    """A retry of a turn decided before the last few: its decision is no longer kept, and
    deciding it again would count it twice. Nothing was changed."""


class TurnIdReused(Exception):
    """A turn id already decided, sent again with other content: an idempotency key
    reused for another turn, which is the caller's bug. Nothing was changed."""

    def __init__(self, conversation_id: str, turn_id: str) -> None:
        super().__init__(f"conversation {conversation_id}: turn {turn_id} was already "
                         "decided with other content")
        self.turn_id = turn_id
