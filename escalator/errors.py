"""Domain errors shared by the loader, the scorers and the state store (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]
ERROR: Severity = "error"
WARNING: Severity = "warning"

# Every problem a rule set, its lexicons or its rule tests can have, by stable code: what
# editors, CI and the API's callers match on (the message is for people and may change).
# A code keeps its meaning and its severity once released; new codes may be added.
# docs/policy/problems.md lists them (a test checks it against this table).
PROBLEM_CODES: dict[str, tuple[Severity, str]] = {
    # reading the folder and its files
    "file_unreadable": (ERROR, "a file or folder cannot be read: it does not exist, is not a "
                               "plain file, links out of the rules folder, is not UTF-8 text, "
                               "or the system refused it"),
    "file_missing": (ERROR, "a file the rule set needs is not there: no rule file (*.yaml) in "
                            "the folder, or a lexicon file missing"),
    "file_name": (ERROR, "a file is named so that it would not be read: rule files end in "
                         ".yaml, and files sent inline are NAME.yaml or lexicons/NAME.yaml"),
    "folder_changing": (ERROR, "the folder kept changing while it was read; it is read again "
                               "at the next reload"),
    "yaml_syntax": (ERROR, "the file is not valid YAML, or holds a value YAML cannot read "
                           "(a date that does not exist, a number of thousands of digits)"),
    # the shape of what is written
    "schema": (ERROR, "something is not written the way the format says: a key missing, "
                      "unknown or with the wrong kind of value, a condition or test not "
                      "shaped as one"),
    "duplicate": (ERROR, "something that must be said once is said twice: a rule id used "
                         "twice, or ruleset, version or default declared differently in two "
                         "files"),
    "no_effect": (ERROR, "a key that can have no effect where it is written: a queue, urgency "
                         "or customer message on a keep_with_bot rule, or expected by a test "
                         "of a conversation kept with the bot"),
    # conditions
    "unknown_fact": (ERROR, "a condition names a fact that does not exist"),
    "unknown_operator": (ERROR, "a condition uses a comparison that does not exist"),
    "type_mismatch": (ERROR, "a comparison does not suit its fact: an operator the fact's "
                             "type has no use for, or a value of the wrong kind (text for a "
                             "number, a fraction for a whole number, a single value for a "
                             "list)"),
    "never_true": (ERROR, "a comparison can never be true, so its rule never acts: a "
                          "threshold outside the fact's range, or a context key no caller "
                          "can send"),
    "always_true": (ERROR, "a comparison is always true, so it says nothing: a threshold "
                           "outside the fact's range"),
    "unknown_label": (ERROR, "a rule compares with a topic, frustration cue or language that "
                             "no turn can carry, so it can never match"),
    # the rule set as a whole
    "floor": (ERROR, "a customer could be kept from a person: no rule routes an explicit "
                     "request, or none caps consecutive bot failures, or a keep_with_bot "
                     "rule can override the one that does"),
    "budget": (ERROR, "over a limit every rule set has (sizes, nesting, what the rules "
                      "compile into, an inline evaluation's time or memory); 'limit' names "
                      "which"),
    "engine_refused": (ERROR, "the rules engine refused a rule or the rule set"),
    # lexicons
    "phrase": (ERROR, "a lexicon phrase cannot be matched: it has no words, or a '*' that "
                      "does not end a word"),
    "lexicon_mismatch": (ERROR, "lexicon files disagree: a label with no weight in "
                                "scoring.yaml, a weight with no phrases, or a language not "
                                "declared in languages.yaml"),
    # rule tests
    "unknown_rule": (ERROR, "a rule test names a rule the rule set does not have"),
    "unknown_queue": (ERROR, "a rule test expects a queue no rule or default sends customers "
                             "to"),
    "unknown_turn": (ERROR, "a rule test expects something at a turn its conversation does "
                            "not have"),
    # warnings: the rule set loads, but a policy owner should know
    "old_name": (WARNING, "a key is written with its old name, still read: write the new one "
                          "(urgency for a handoff's priority)"),
    "missing_language": (WARNING, "a customer message lacks a language that other messages "
                                  "of the rule set have"),
    "unknown_channel": (WARNING, "a rule compares with a channel escalator does not know: it "
                                 "matches only if the platform sends that channel"),
    "undetected_language": (WARNING, "a rule compares with a language the lexicons never "
                                     "detect: it matches only if the caller sends it"),
    "version_unchanged": (WARNING, "the rules changed but their version did not, so decisions "
                                   "cannot tell the two rule sets apart"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file, located for a policy owner, with a stable code."""

    file: str
    line: int | None
    message: str
    rule: str | None = None
    # Set exactly when the code is "budget": which limit (e.g. list_values, yaml_depth).
    limit: str | None = None
    # Which kind of problem (a key of PROBLEM_CODES); always named where it is found.
    code: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.code not in PROBLEM_CODES:
            raise ValueError(f"unknown problem code {self.code!r}")
        if (self.code == "budget") != (self.limit is not None):
            raise ValueError("a problem names a limit exactly when its code is 'budget'")

    @property
    def severity(self) -> Severity:
        """error (the rule set is refused) or warning (it loads); fixed by the code."""
        return PROBLEM_CODES[self.code][0]

    def to_dict(self) -> dict[str, Any]:
        """The problem for editors, CI and API callers (every key always present)."""
        return {"code": self.code, "severity": self.severity, "file": self.file,
                "line": self.line, "rule": self.rule, "limit": self.limit,
                "message": self.message}

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
