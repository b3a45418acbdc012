"""The decision pipeline: load state -> score the turn -> evaluate rules -> persist -> decision.

Plain Python, no Flask: the HTTP layer and the CLI both call `Pipeline.decide`.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from escalator import brief, feedback, metrics
from escalator.config import Config
from escalator.decisionlog import DecisionLog, log_record
from escalator.errors import StateUnavailable, StateUnreadable, TurnIdReused, TurnSuperseded
from escalator.model import (
    KEEP,
    ROUTE,
    ConversationState,
    Decision,
    DecisionName,
    FactValue,
    Handoff,
    Reason,
    RulesetRef,
    Scores,
    Turn,
    most_urgent,
)
from escalator.policy import Policy, PolicyHolder
from escalator.ruleset.compiler import Evaluation
from escalator.ruleset.model import MAX_PRIORITY
from escalator.scoring import memory_after_release, score_turn
from escalator.shadow import Shadow
from escalator.state.handoff_cache import Handoff as RememberedHandoff
from escalator.state.handoff_cache import HandoffCache
from escalator.state.store import Committed, StateStore

log = logging.getLogger(__name__)

# Two turns of one conversation arriving together: the loser recomputes on the fresh state.
# Each conflict means another turn committed, so progress is guaranteed; the bound only
# caps the time one turn can spend losing races (backoff with jitter spreads the losers).
MAX_COMMIT_ATTEMPTS = 12
BACKOFF_SECONDS = 0.001

# What ESCALATOR_STATE_TTL_SECONDS defaults to; dry runs and replays cap minutes with it.
DEFAULT_STATE_TTL_SECONDS = Config.state_ttl_seconds

# The reason of a conversation already with a person: it outranks every rule.
STICKY_RULE = "handoff-in-progress"
STICKY_PRIORITY = MAX_PRIORITY


@dataclass(frozen=True)
class TurnResult:
    """A turn's decision together with the state it leaves behind."""

    decision: Decision
    state: ConversationState


class Pipeline:
    """Decides customer turns with the active policy and the conversation's stored state."""

    def __init__(
        self,
        policies: PolicyHolder,
        store: StateStore | None,
        *,
        fail_mode: str = "stateless",
        decision_log: DecisionLog | None = None,
        state_ttl_seconds: int = DEFAULT_STATE_TTL_SECONDS,
        handoffs: HandoffCache | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        shadow: Shadow | None = None,
    ) -> None:
        self.policies = policies
        self.shadow = shadow
        self.store = store
        self.fail_mode = fail_mode
        self.decision_log = decision_log
        self.handoffs = handoffs
        # conversation.minutes is capped here: see evaluate().
        self._max_minutes = state_ttl_seconds / 60.0
        self._clock = clock
        self._new_id = new_id

    def decide(self, conversation_id: str, turn: Turn) -> Decision:
        """Decide one customer turn; Redis trouble degrades the decision instead of failing it."""
        started = time.perf_counter()
        decision = self._decide(conversation_id, turn)
        if self.shadow is not None and not decision.retried:
            decision = self.shadow.judged(decision)
        metrics.observe_decision(decision, turn.channel, time.perf_counter() - started)
        if self.decision_log is not None and not decision.retried:
            self._log(decision, turn)
        return decision

    def _log(self, decision: Decision, turn: Turn) -> None:
        # The decision stands whatever happens to its record: a full disk or a dead Redis
        # must not fail the chatbot's turn. Lost records are counted.
        assert self.decision_log is not None
        try:
            self.decision_log.write(log_record(decision, turn, self._clock()))
        except Exception:
            metrics.DECISION_LOG_ERRORS.inc()
            log.warning("decision %s could not be logged", decision.decision_id, exc_info=True)

    def _decide(self, conversation_id: str, turn: Turn) -> Decision:
        with self.policies.use() as policy:
            return self._decide_with(policy, conversation_id, turn)

    def _decide_with(self, policy: Policy, conversation_id: str, turn: Turn) -> Decision:
        if self.store is None:
            return self.evaluate(conversation_id, turn, ConversationState(), policy).decision
        if not turn.store_state:
            return self._decide_without_consent(conversation_id, turn, policy)

        content = turn.content_signature()
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, BACKOFF_SECONDS * attempt))
            try:
                with _counted():
                    snapshot = self.store.load(conversation_id, turn.turn_id, content)
            except StateUnavailable:
                return self._degraded(conversation_id, turn, policy)
            if snapshot.reused:
                raise TurnIdReused(conversation_id, turn.turn_id)
            if snapshot.retry is not None:
                return retried(snapshot.retry)
            if snapshot.superseded:
                raise superseded(conversation_id, turn.turn_id)
            result = self.evaluate(
                conversation_id, turn, snapshot.state or ConversationState(), policy
            )
            try:
                with _counted():
                    written = self.store.commit(
                        conversation_id, snapshot, result.state, turn.turn_id,
                        result.decision.to_json(), content,
                    )
            except StateUnavailable:
                return self._degraded(conversation_id, turn, policy, result)
            if isinstance(written, Committed):
                self._remember(conversation_id, result.state)
                return result.decision
            # A conflict: another turn was decided since the load; load again (this very
            # turn, if a retry of it raced this one: then the load finds its decision).
            metrics.STATE_CONFLICTS.inc()
        log.warning("conversation %s: gave up after %d conflicting updates",
                    conversation_id, MAX_COMMIT_ATTEMPTS)
        return self._degraded(conversation_id, turn, policy)

    def _decide_without_consent(self, conversation_id: str, turn: Turn, policy: Policy) -> Decision:
        # No consent: nothing is kept, and whatever was kept before is erased.
        try:
            self.erase(conversation_id)
        except StateUnavailable:  # counted by erase()
            return self._degraded(conversation_id, turn, policy, remember=False)
        return self.evaluate(conversation_id, turn, ConversationState(), policy).decision

    def erase(self, conversation_id: str) -> None:
        """Erase everything kept of the conversation: its state in Redis and this pod's
        memory of its handoff (the latter first, so it goes even when Redis is down)."""
        assert self.store is not None
        if self.handoffs is not None:
            self.handoffs.forget(conversation_id)
        with _counted():
            self.store.erase(conversation_id)

    def release(self, conversation_id: str) -> ConversationState | None:
        """Hand the conversation back to the bot (None if no state is kept for it); this
        pod forgets its handoff once Redis has the release."""
        assert self.store is not None
        try:
            with _counted():
                state = self.store.release(conversation_id, released_state)
        except StateUnreadable:
            self._forget(conversation_id)  # its next turn starts afresh: with the bot
            raise
        self._forget(conversation_id)
        return state

    def summary(self, conversation_id: str) -> tuple[ConversationState, int] | None:
        """The conversation's stored state and its version, or None if none is kept
        (StateUnreadable if it cannot be read)."""
        assert self.store is not None
        with _counted():
            return self.store.summary(conversation_id)

    def _remember(self, conversation_id: str, state: ConversationState) -> None:
        # Every turn that leaves the conversation with a person offers it to the cache, so
        # any pod that decided one of its turns knows it; the cache writes it once per
        # handoff and worker, then again after an eighth of the TTL, so it expires with
        # the state give or take that.
        if self.handoffs is not None and state.escalated:
            self.handoffs.remember(conversation_id, RememberedHandoff(
                state.escalated_turn, state.handoff_queue, state.handoff_urgency))

    def _forget(self, conversation_id: str) -> None:
        if self.handoffs is not None:
            self.handoffs.forget(conversation_id)

    def _remembered_state(self, conversation_id: str) -> ConversationState:
        """A fresh state, or one with the handoff this pod remembers for the conversation."""
        known = self.handoffs.recall(conversation_id) if self.handoffs is not None else None
        if known is None:
            return ConversationState()
        metrics.HANDOFF_CACHE_HITS.inc()
        return ConversationState(escalated=True, escalated_turn=known.turn,
                                 handoff_queue=known.queue, handoff_urgency=known.urgency)

    def _degraded(
        self, conversation_id: str, turn: Turn, policy: Policy, result: TurnResult | None = None,
        *, remember: bool = True,
    ) -> Decision:
        if self.fail_mode == "error":
            raise StateUnavailable("the state store is unavailable")
        metrics.DEGRADED_DECISIONS.inc()
        if result is None:
            # Without the stored state, a conversation this pod knows to be with a person
            # stays with the person (the sticky handoff), rather than go back to the bot
            # just when the service is least able to help.
            state = self._remembered_state(conversation_id) if remember else ConversationState()
            result = self.evaluate(conversation_id, turn, state, policy)
        if remember:
            # A handoff decided during the outage sticks for the rest of it, too.
            self._remember(conversation_id, result.state)
        return replace(result.decision, degraded=True)

    def evaluate(
        self, conversation_id: str, turn: Turn, state: ConversationState, policy: Policy
    ) -> TurnResult:
        """Score the turn on top of `state` and apply the rules; touches no storage."""
        now = turn.timestamp.timestamp() if turn.timestamp is not None else self._clock()
        turn_index = state.turn_index + 1
        started_at = state.started_at if state.started_at is not None else now
        scored = score_turn(turn, state.scoring, policy.lexicons)

        facts: dict[str, FactValue] = dict(scored.facts)
        facts["turn_index"] = turn_index
        facts["conversation.escalated"] = state.escalated
        # A conversation stored before escalations were counted may be with a person at 0.
        escalations = max(state.escalations, int(state.escalated))
        facts["conversation.escalations"] = escalations
        # Capped at the state's TTL: no timestamp (a caller's clock, a state stored before
        # timestamps were checked, a transcript's) can make it absurd, and a conversation
        # older than the TTL is past any threshold a rule could sensibly set.
        facts["conversation.minutes"] = round(
            min(max(0.0, now - started_at) / 60.0, self._max_minutes), 4)
        if turn.tier is not None:
            facts["customer.tier"] = turn.tier
        if turn.segment is not None:
            facts["customer.segment"] = turn.segment
        if turn.channel is not None:
            facts["channel"] = turn.channel
        for key, value in turn.context.items():
            facts[f"context.{key}"] = value
        seen = brief.remember(state.seen, turn, facts, turn_index, policy.lexicons.params)

        evaluation = policy.engine.evaluate(facts)
        reasons = [
            Reason(rule.id, rule.priority, rule.then.decision, rule.description)
            for rule in evaluation.matches
        ]
        decision_name: DecisionName = evaluation.decision
        handoff: Handoff | None = None
        # What the customer is told is in the language of this turn where the rule set has
        # it (see escalator.ruleset.messages).
        language = str(facts["message.language"])
        if evaluation.handoff is not None:
            handoff = Handoff(
                queue=evaluation.handoff.queue or "support",
                urgency=evaluation.handoff.urgency or "normal",
                customer_message=policy.ruleset.customer_message(
                    evaluation.handoff.customer_message, language),
            )
        escalated_turn = state.escalated_turn
        if state.escalated:
            # Sticky handoff: once with a person, the conversation stays there until an
            # agent releases it, and no second handoff is started; a more urgent reason
            # arising meanwhile raises its urgency (nothing lowers it).
            decision_name = ROUTE
            stored = state.handoff_urgency or "normal"
            urgency = most_urgent(stored, evaluation.urgency) or stored
            reasons.insert(0, Reason(
                STICKY_RULE, STICKY_PRIORITY, ROUTE,
                f"The conversation was handed to a person at turn {state.escalated_turn} "
                "and stays with them until an agent releases it."
                + _raised(stored, urgency, evaluation),
            ))
            handoff = Handoff(
                queue=state.handoff_queue or "support",
                urgency=urgency,
                customer_message=policy.ruleset.in_progress_message(language),
            )
        elif decision_name == ROUTE:
            escalated_turn = turn_index
            escalations += 1
        if decision_name == ROUTE and handoff is not None:
            # Every route_to_human answer briefs the person taking over, the turns of a
            # conversation already with one too (updated).
            handoff = replace(handoff, brief=brief.build(reasons, facts, seen, turn))

        decision = Decision(
            decision=decision_name,
            decision_id=self._new_id(),
            conversation_id=conversation_id,
            turn_id=turn.turn_id,
            turn_index=turn_index,
            handoff=handoff if decision_name == ROUTE else None,
            reasons=tuple(reasons),
            scores=scored.scores,
            facts=facts,
            ruleset=policy.ruleset.ref(),
        )
        new_state = state.evolve(
            turn_index=turn_index,
            started_at=started_at,
            updated_at=now,
            escalated=decision_name == ROUTE,
            escalated_turn=escalated_turn if decision_name == ROUTE else None,
            handoff_queue=handoff.queue if handoff is not None else None,
            handoff_urgency=handoff.urgency if handoff is not None else None,
            escalations=escalations,
            scoring=scored.memory,
            seen=seen,
            decided=feedback.remember(state.decided, decision),
        )
        return TurnResult(decision, new_state)


@contextmanager
def _counted() -> Iterator[None]:
    """Count a state store failure passing through: each turn or request that meets one
    counts once, whether it then degrades or fails (ESCALATOR_FAIL_MODE=error)."""
    try:
        yield
    except StateUnavailable:
        metrics.STATE_ERRORS.inc()
        raise


def _raised(stored: str, urgency: str, evaluation: Evaluation) -> str:
    """The sentence that says which rule raised a handoff's urgency ("" if none did)."""
    if urgency == stored:
        return ""
    default = evaluation.default_urgency
    rule = next((r.id for r in evaluation.matches
                 if r.then.decision == ROUTE and (r.then.urgency or default) == urgency),
                "a rule that matched")
    return f" Its urgency was raised from {stored} to {urgency} by {rule}."


def released_state(state: ConversationState) -> ConversationState:
    """The state of a conversation an agent hands back to the bot: a fair new start.

    Reset: the handoff (with the bot again) and the scorers' memory but for its turn count
    (loop counters and level, streaks, repeat signatures, prompt and intent history, the
    decayed sentiment and frustration means and the trend; see Memory.after_release):
    kept, they are the history the person was brought in for, and rules reading them would
    route the next ordinary turn straight back. Kept: the turn index, when the conversation
    started (conversation.minutes) and how many times it was handed to a person
    (conversation.escalations), which rules may legitimately read.
    """
    return state.evolve(
        escalated=False, escalated_turn=None, handoff_queue=None, handoff_urgency=None,
        escalations=max(state.escalations, int(state.escalated)),
        scoring=memory_after_release(state.scoring))


def superseded(conversation_id: str, turn_id: str) -> TurnSuperseded:
    """The refusal of a retry whose decision is no longer kept (newer turns followed)."""
    return TurnSuperseded(f"conversation {conversation_id}: turn {turn_id} was already decided "
                          "and newer turns have followed")


def retried(body: Mapping[str, Any]) -> Decision:
    """A stored decision rebuilt as the answer to an idempotent retry (flagged `retried`)."""
    handoff = body.get("handoff")
    return Decision(
        decision=ROUTE if body["decision"] == ROUTE else KEEP,
        decision_id=body["decision_id"],
        conversation_id=body["conversation_id"],
        turn_id=body["turn_id"],
        turn_index=body["turn_index"],
        # Stored before urgency had its name, a record has only "priority".
        handoff=Handoff(queue=handoff["queue"],
                        urgency=handoff.get("urgency") or handoff["priority"],
                        customer_message=handoff["customer_message"],
                        brief=handoff.get("brief")) if handoff else None,
        reasons=tuple(Reason(**r) for r in body["reasons"]),
        scores=Scores(**body["scores"]),
        facts={k: tuple(v) if isinstance(v, list) else v for k, v in body["facts"].items()},
        ruleset=RulesetRef(**body["ruleset"]),
        degraded=bool(body.get("degraded", False)),
        retried=True,
    )

