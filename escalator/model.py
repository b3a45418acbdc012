"""The typed values that flow through the decision pipeline (no I/O, no Flask)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar, overload

Scalar = str | int | float | bool
# A fact is a scalar or a tuple of labels (for `contains`); an absent fact is simply missing.
FactValue = str | int | float | bool | tuple[str, ...]

T = TypeVar("T")

DecisionName = Literal["route_to_human", "keep_with_bot"]
ROUTE: Final = "route_to_human"
KEEP: Final = "keep_with_bot"
# How urgently a person should take a handoff, least urgent first. Not a rule's priority
# (its rank among rules: which rule decides).
HANDOFF_URGENCIES = ("low", "normal", "high", "urgent")
# Channels escalator knows by name (metrics fold any other onto "other"); a platform may
# send others, so a rule naming one is warned about, not refused.
KNOWN_CHANNELS = frozenset(
    {"web", "app", "voice", "sms", "email", "chat", "social", "whatsapp", "messenger"}
)
_URGENCY_RANK = {urgency: rank for rank, urgency in enumerate(HANDOFF_URGENCIES)}
# The one JSON encoder of what escalator writes (answers, stored values, decision logs): what
# json.dumps(value, separators=(",", ":")) writes, without building an encoder per call.
# ASCII (ensure_ascii=True): every str encodes, a lone surrogate too (valid in JSON text, not
# in UTF-8: it is escaped rather than failing a write), and the answer to a turn, its stored
# decision and its log line are bytes a byte-oriented tool cannot misread.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class computed_once(Generic[T]):  # a decorator, named like functools.cached_property
    """A value computed on first access and kept on the instance (frozen dataclasses too).

    Not functools.cached_property: on Python 3.11 that holds one lock per attribute for
    every instance of the class while it computes, so a process forked while any thread
    computes one (a gunicorn worker's reload thread taking a folder's digest, when a
    request forks an inline evaluation) has that lock held for ever, and its first use of
    the attribute hangs. Without a lock, two threads may both compute a value; each gets
    an equal one.
    """

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> computed_once[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None
                ) -> T | computed_once[T]:
        if instance is None:
            return self
        value = self._compute(instance)
        # Not a data descriptor: from now on the instance's own attribute is found first.
        instance.__dict__[self._name] = value
        return value


def compact_json(value: Any) -> bytes:
    """`value` as compact ASCII JSON, the form of everything escalator writes as JSON."""
    return _COMPACT_JSON.encode(value).encode("ascii")


def most_urgent(*urgencies: str | None) -> str | None:
    """The most urgent of these urgencies (None if none is given)."""
    given = [u for u in urgencies if u is not None]
    return max(given, key=lambda u: _URGENCY_RANK.get(u, -1)) if given else None


@dataclass(frozen=True)
class Message:
    """What the customer said this turn, or what the bot's NLU made of it."""

    text: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class BotReply:
    """The bot reply the customer's message answers."""

    prompt_id: str | None = None
    fallback: bool = False


@dataclass(frozen=True)
class Turn:
    """One customer turn as the chatbot platform sends it."""

    turn_id: str
    message: Message
    bot: BotReply = BotReply()
    tier: str | None = None
    segment: str | None = None
    channel: str | None = None
    context: Mapping[str, Scalar] = field(default_factory=dict)
    store_state: bool = True
    timestamp: datetime | None = None

    def content_signature(self) -> str:
        """A one-way signature of everything the turn says but its id: two requests with
        one turn id are a retry when their signatures agree, and a turn id reused for
        another turn when they differ.

        Of the turn as read (canonical JSON of the parsed request), so key order, spacing
        and what the API reads alike (`WEB` and `web`) make no difference. 32 bits: a
        changed turn passes for a retry once in four billion, and the text cannot be read
        back from it.
        """
        message, bot = self.message, self.bot
        # ASCII JSON: a lone surrogate (valid JSON, not UTF-8) is escaped, not unencodable.
        canonical = compact_json([
            message.text, message.intent, message.intent_confidence, message.language,
            bot.prompt_id, bot.fallback, self.tier, self.segment, self.channel,
            sorted(self.context.items()), self.store_state,
            None if self.timestamp is None else self.timestamp.timestamp(),
        ])
        return hashlib.blake2b(canonical, digest_size=4,
                               person=b"turn-content").hexdigest()


@dataclass(frozen=True)
class Scores:
    """The four headline scores of a turn (sentiment -1..1, the others 0..1)."""

    sentiment: float = 0.0
    frustration: float = 0.0
    complexity: float = 0.0
    loop: float = 0.0


@dataclass(frozen=True)
class ConversationState:
    """What is remembered of a conversation between turns: numbers, labels, ids, signatures."""

    turn_index: int = 0
    started_at: float | None = None
    updated_at: float | None = None
    escalated: bool = False
    escalated_turn: int | None = None
    handoff_queue: str | None = None
    handoff_urgency: str | None = None
    # Handoffs to a person so far, released ones included: release starts the bot afresh
    # but keeps this (see pipeline.released_state).
    escalations: int = 0
    # Opaque to everything but escalator.scoring: decayed means, recent signatures,
    # prompt ids and intents (see scoring.memory). JSON-serialisable, never text.
    scoring: Mapping[str, Any] = field(default_factory=dict)
    # What the handoff brief needs to remember: recent intent and topic labels, recent
    # frustration scores, the last request for a person (see escalator.brief). Labels
    # and numbers, never text; a release keeps it.
    seen: Mapping[str, Any] = field(default_factory=dict)
    # The last few decisions, newest first, so that feedback can name them: each
    # [decision_id, decision, [rule ids], {source: [label, [reason codes], feedback_id]}]
    # (see escalator.feedback, which alone reads and writes it; ids and labels, no text).
    decided: tuple[Any, ...] = ()

    def evolve(self, **changes: Any) -> ConversationState:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Reason:
    """A rule that matched, in the words of its author."""

    rule: str
    priority: int
    decision: DecisionName
    description: str


@dataclass(frozen=True)
class Handoff:
    """Where and how urgently to hand over, what the bot can say while it does, and the
    brief for the person taking over (labels and numbers: see escalator.brief)."""

    queue: str
    urgency: str
    customer_message: str
    brief: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RulesetRef:
    """Which rule set decided."""

    name: str
    version: str
    digest: str


@dataclass(frozen=True)
class Decision:
    """The answer for one turn, with everything needed to explain and audit it."""

    decision: DecisionName
    decision_id: str
    conversation_id: str
    turn_id: str
    turn_index: int
    handoff: Handoff | None
    reasons: tuple[Reason, ...]
    scores: Scores
    facts: Mapping[str, FactValue]
    ruleset: RulesetRef
    degraded: bool = False
    # This answer is a retry's stored decision (the API calls it `replayed`).
    retried: bool = False
    # What the shadow rule set decided on the same facts (escalator.shadow.Verdict), or
    # None: not part of the answer's body, only of its record and of a caller who asks.
    shadow: Any = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The body of the HTTP response, as a dict (to_json() is its encoding).

        Built once per decision and shared by its readers (to_json(), the decision log):
        treat it as read-only.
        """
        return self._body

    @computed_once
    def _body(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies every value and was the single
        # largest cost of a decision (measured with bench/perf/decide.py under cProfile).
        handoff = self.handoff
        return {
            "decision": self.decision,
            "decision_id": self.decision_id,
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "turn_index": self.turn_index,
            # "priority" is the deprecated name of "urgency", kept for existing callers.
            "handoff": None if handoff is None else _handoff_body(handoff),
            "reasons": [{"rule": r.rule, "priority": r.priority, "decision": r.decision,
                         "description": r.description} for r in self.reasons],
            "scores": {"sentiment": self.scores.sentiment, "frustration": self.scores.frustration,
                       "complexity": self.scores.complexity, "loop": self.scores.loop},
            "facts": {k: list(v) if isinstance(v, tuple) else v for k, v in self.facts.items()},
            "ruleset": {"name": self.ruleset.name, "version": self.ruleset.version,
                        "digest": self.ruleset.digest},
            "degraded": self.degraded,
            "replayed": self.retried,
        }

    def judged(self, shadow: Any) -> Decision:
        """This decision with a shadow rule set's verdict, sharing its body and JSON
        already built (the verdict is in neither)."""
        judged = replace(self, shadow=shadow)
        for name in ("_body", "_json"):
            if name in self.__dict__:  # built by computed_once
                judged.__dict__[name] = self.__dict__[name]
        return judged

    def to_json(self) -> bytes:
        """to_dict() as compact UTF-8 JSON, built once: the HTTP response's body and the
        record the state store keeps for retries are the same bytes."""
        return self._json

    @computed_once
    def _json(self) -> bytes:
        return compact_json(self._body)


def _handoff_body(handoff: Handoff) -> dict[str, Any]:
    """The handoff as the API answers it ("brief" only when there is one: a decision stored
    before briefs existed, answered again to a retry, has none)."""
    body: dict[str, Any] = {"queue": handoff.queue, "urgency": handoff.urgency,
                            "customer_message": handoff.customer_message,
                            "priority": handoff.urgency}
    if handoff.brief is not None:
        body["brief"] = handoff.brief
    return body
