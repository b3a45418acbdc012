"""Feedback on decisions: who said whether a handoff was needed, kept with the conversation
and recorded next to the decision log.

Retention: a conversation's state keeps its last KEPT_DECISIONS decisions (id, outcome,
rules) and, beyond those, the last decision that handed it to a person (the one an agent
most often labels, after a long conversation with them). Feedback can name only those;
any other decision id (never made, made longer ago, or of a conversation whose state has
expired, was erased, or was never kept because the customer did not consent) is
`decision_not_found`: one bounded list per conversation cannot tell those apart, and
remembering every id ever decided would grow without bound. The state lives for
ESCALATOR_STATE_TTL_SECONDS after its last turn (or feedback), so that is the time a
platform has to send feedback after the conversation ends.

Feedback is kept in the same entry (one per source), so a second one from that source is
answered from the state: the same label and reasons get the same answer (`replayed`),
different ones are refused (FeedbackConflict) and change nothing. It is written with the
conversation's compare-and-set commit (one Lua script; see escalator.state.store):
either the whole feedback is stored or nothing is.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from escalator import metrics
from escalator.decisionlog import DecisionLog
from escalator.errors import StateUnavailable
from escalator.model import KEEP, ROUTE, ConversationState, Decision

log = logging.getLogger(__name__)
T = TypeVar("T")

# Decisions a conversation keeps for feedback, newest first, besides its last handoff.
# Together ~115 bytes of the stored value, deflated (1,356 -> 1,470 bytes for the 20-turn
# conversation of bench/perf/decide.py; its Redis MEMORY USAGE stays 1,624 bytes).
KEPT_DECISIONS: Final = 4
# The reason of a sticky handoff (escalator.pipeline.STICKY_RULE): not a handoff decision
# of its own, so never the one kept as "the last handoff".
STICKY_RULE: Final = "handoff-in-progress"

HANDOFF_NEEDED: Final = "handoff_needed"
HANDOFF_NOT_NEEDED: Final = "handoff_not_needed"
SHOULD_HAVE_ESCALATED: Final = "should_have_escalated"
RESOLVED_BY_BOT: Final = "resolved_by_bot"
# Which labels fit which decision: a route_to_human decision was needed or not; a
# keep_with_bot one should have gone to a person, or the bot resolved it.
LABELS_FOR: Final = {
    ROUTE: (HANDOFF_NEEDED, HANDOFF_NOT_NEEDED),
    KEEP: (SHOULD_HAVE_ESCALATED, RESOLVED_BY_BOT),
}
LABELS: Final = (HANDOFF_NEEDED, HANDOFF_NOT_NEEDED, SHOULD_HAVE_ESCALATED, RESOLVED_BY_BOT)
SOURCES: Final = ("agent", "survey", "platform")
# Why, in codes from this fixed list only (never free text: nothing a person types reaches
# the log). A code keeps its meaning once released; new ones may be added.
REASONS: Final = {
    "customer_asked": "The customer asked for a person.",
    "customer_frustrated": "The customer was frustrated or upset.",
    "complex_issue": "The issue needed more than the bot can do (several issues, judgement).",
    "sensitive_topic": "Legal, fraud, bereavement, vulnerability or safety.",
    "needs_authority": "Only a person may do it (a refund, an exception to policy).",
    "bot_loop": "The bot was going round in circles or misunderstood.",
    "bot_could_answer": "The bot had the answer; a person was not needed.",
    "too_early": "Handed over before the bot had a fair chance.",
    "too_late": "Handed over, but only after the customer had struggled.",
    "wrong_queue": "A person was needed, but in another queue.",
    "customer_left": "The customer left before it was resolved.",
    "resolved_elsewhere": "Resolved by another channel or by the customer.",
    "other": "None of the above.",
}


@dataclass(frozen=True)
class Feedback:
    """One piece of feedback as a caller sends it."""

    decision_id: str
    label: str
    source: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """Feedback as kept: what was given, on which decision, and whether it was already."""

    feedback_id: str
    conversation_id: str
    feedback: Feedback
    decision: str
    rules: tuple[str, ...]
    replayed: bool

    def to_dict(self) -> dict[str, Any]:
        """The body of the HTTP answer."""
        given = self.feedback
        return {"feedback_id": self.feedback_id, "decision_id": given.decision_id,
                "conversation_id": self.conversation_id, "label": given.label,
                "source": given.source, "reasons": list(given.reasons),
                "decision": self.decision, "rules": list(self.rules),
                "replayed": self.replayed}


class FeedbackError(Exception):
    """Feedback that was refused; nothing was written. `code` is the API's stable code."""

    code = "invalid_feedback"
    status = 400


class DecisionNotFound(FeedbackError):
    """The decision is not among those the conversation keeps (or it keeps none)."""

    code = "decision_not_found"
    status = 404


class LabelMismatch(FeedbackError):
    """The label does not fit the decision's outcome."""

    code = "feedback_label_mismatch"
    status = 422


class FeedbackConflict(FeedbackError):
    """This source already gave other feedback on the decision."""

    code = "feedback_conflict"
    status = 409


def remember(decided: Sequence[Any], decision: Decision) -> tuple[Any, ...]:
    """The decisions kept after `decision`: it first, then the last KEPT_DECISIONS - 1 of
    `decided`, and the last handoff among the rest if it is not already kept."""
    rules = [reason.rule for reason in decision.reasons]
    entry = [decision.decision_id, decision.decision, rules, {}]
    kept = [entry, *decided[:KEPT_DECISIONS - 1]]
    if not _is_handoff(entry):
        handoff = next((e for e in decided[KEPT_DECISIONS - 1:] if _is_handoff(e)), None)
        if handoff is not None and not any(_is_handoff(e) for e in kept):
            kept.append(handoff)
    return tuple(kept)


def _is_handoff(entry: Sequence[Any]) -> bool:
    """True for a decision that handed the conversation to a person (not a sticky turn)."""
    rules = entry[2]
    return bool(entry[1] == ROUTE and rules and rules[0] != STICKY_RULE)


def apply(state: ConversationState, conversation_id: str, given: Feedback,
          new_id: Callable[[], str]) -> tuple[ConversationState | None, Recorded]:
    """The state with the feedback kept (None: already kept, nothing to write) and what
    was recorded; a FeedbackError (and no state) if it is refused."""
    decided = list(state.decided)
    position = next((i for i, e in enumerate(decided) if _valid(e)
                     and e[0] == given.decision_id), None)
    if position is None:
        raise DecisionNotFound(
            f"Decision {given.decision_id} is not among the decisions conversation "
            f"{conversation_id} keeps for feedback (its last {KEPT_DECISIONS} and its last "
            "handoff, while its state lives): unknown, older, or its state expired.")
    decision_id, outcome, rules, sources = decided[position]
    if given.label not in LABELS_FOR.get(outcome, ()):
        fitting = " or ".join(LABELS_FOR.get(outcome, ()))
        raise LabelMismatch(f"Decision {decision_id} was {outcome}: its feedback is "
                            f"{fitting}, not {given.label}.")
    reasons = sorted(set(given.reasons))
    kept = sources.get(given.source)
    if kept is not None:
        label, kept_reasons, feedback_id = kept
        if label != given.label or kept_reasons != reasons:
            raise FeedbackConflict(
                f"The {given.source} already gave feedback on decision {decision_id} "
                f"({label}, reasons {kept_reasons}); it is not changed.")
        return None, _recorded(feedback_id, conversation_id, given, outcome, rules, True)
    feedback_id = new_id()
    decided[position] = [decision_id, outcome, rules,
                         {**sources, given.source: [given.label, reasons, feedback_id]}]
    return (state.evolve(decided=tuple(decided)),
            _recorded(feedback_id, conversation_id, given, outcome, rules, False))


def _recorded(feedback_id: str, conversation_id: str, given: Feedback, outcome: str,
              rules: Sequence[str], replayed: bool) -> Recorded:
    normalised = Feedback(given.decision_id, given.label, given.source,
                          tuple(sorted(set(given.reasons))))
    return Recorded(feedback_id, conversation_id, normalised, outcome, tuple(rules), replayed)


def _valid(entry: Any) -> bool:
    """True for an entry of the shape remember() writes (a foreign one is skipped)."""
    return (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
            and entry[1] in LABELS_FOR and isinstance(entry[2], list)
            and all(isinstance(r, str) for r in entry[2]) and isinstance(entry[3], dict))


def feedback_record(recorded: Recorded, at: float) -> dict[str, Any]:
    """The feedback's record in the decision log (its shape: docs/policy/feedback-and-shadow.md)."""
    given = recorded.feedback
    return {"kind": "feedback", "time": round(at, 3), "feedback_id": recorded.feedback_id,
            "decision_id": given.decision_id, "conversation_id": recorded.conversation_id,
            "label": given.label, "source": given.source, "reasons": list(given.reasons),
            "decision": recorded.decision, "rules": list(recorded.rules)}


def rule_label(rules: Sequence[str], known: Collection[str]) -> str:
    """The bounded metric label of a decision's rule: its decisive rule if the active rule
    set (or the sticky handoff) has it, else `none`."""
    if rules and (rules[0] in known or rules[0] == STICKY_RULE):
        return rules[0]
    return "none"


class FeedbackStore(Protocol):
    """What recording feedback needs of the state store (escalator.state.store.StateStore)."""

    def update(self, conversation_id: str,
               change: Callable[[ConversationState], tuple[ConversationState | None, T]]
               ) -> T | None: ...


def record(store: FeedbackStore, decision_log: DecisionLog | None, known_rules: Collection[str],
           conversation_id: str, given: Feedback, *,
           clock: Callable[[], float] = time.time,
           new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> Recorded:
    """Keep feedback with its conversation (atomically), then log and count it the first
    time; DecisionNotFound, LabelMismatch or FeedbackConflict (nothing written) if refused,
    StateUnavailable or StateUnreadable if the state cannot be reached or read."""
    with _counted():
        recorded: Recorded | None = store.update(
            conversation_id, lambda state: apply(state, conversation_id, given, new_id))
    if recorded is None:
        raise DecisionNotFound(f"Conversation {conversation_id} keeps no state, so no "
                               f"decision to give feedback on (decision {given.decision_id}).")
    if recorded.replayed:
        return recorded
    metrics.FEEDBACK.labels(rule_label(recorded.rules, known_rules), given.label).inc()
    if decision_log is not None:
        # Kept in Redis already: a log that cannot be written is counted, as for decisions.
        try:
            decision_log.write(feedback_record(recorded, clock()))
        except Exception:
            metrics.DECISION_LOG_ERRORS.inc()
            log.warning("feedback %s could not be logged", recorded.feedback_id,
                        exc_info=True)
    return recorded


@contextmanager
def _counted() -> Iterator[None]:
    """Count a state store failure passing through, as the pipeline does for turns."""
    try:
        yield
    except StateUnavailable:
        metrics.STATE_ERRORS.inc()
        raise
