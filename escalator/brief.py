"""The handoff brief: what the person taking over a conversation is told about it.

Every route_to_human decision carries one under `handoff.brief`, built here from the
turn's facts, the matching rules' descriptions and a little conversation memory
(ConversationState.seen). Only labels and numbers, never what the customer wrote:

    why                 the decisive reason in the rule's own words (`decisive`, its
                        `rule`), and the other route_to_human reasons (`others`)
    language            the turn's language (message.language)
    intents, topics     intent labels the bot's NLU gave and topic labels escalator
                        found (its own vocabulary), most recent first, at most 5 each
    conversation        turns, minutes, bot fallbacks, repeats, and frustration: this
                        turn's score (`now`), the conversation's mean, the `trend`
                        (change per turn over the recent scores) and the `recent`
                        scores themselves, most recent first
    asked_for_person    whether the customer explicitly asked for a person, this turn
                        or earlier in the conversation
    tier, channel       as the caller sent them (lower case), or null

The memory it needs is kept with the conversation's state, bounded and compact:

    i  the last 5 distinct intent labels, oldest first (requests only: intents that
       mean the NLU did not understand, and answers such as confirm or deny, say
       nothing of what the customer wanted)
    t  the last 5 distinct topic labels, oldest first
    f  the frustration scores of the last 5 turns with text, oldest first (2 decimals)
    h  the turn index of the last explicit request for a person (absent: none)

A release by an agent keeps it: it is no rule's input, and the next person to take the
conversation should know what the customer wanted before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from escalator.model import ROUTE, FactValue, Reason, Turn
from escalator.scoring.labels import intent_key
from escalator.scoring.lexicons import Params
from escalator.scoring.sentiment import slope

# How many intent labels, topic labels and frustration scores the memory keeps.
KEEP = 5


def _labels(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))[-KEEP:]
    return ()


def _scores(value: Any) -> tuple[float, ...]:
    if isinstance(value, list):
        return tuple(float(item) for item in value
                     if isinstance(item, int | float) and not isinstance(item, bool)
                     and 0.0 <= item <= 1.0)[-KEEP:]
    return ()


def _with(recent: tuple[str, ...], labels: Sequence[str]) -> tuple[str, ...]:
    """`recent` with each label moved or added to the end, keeping the last KEEP."""
    for label in labels:
        recent = (*(x for x in recent if x != label), label)
    return recent[-KEEP:]


def remember(seen: Mapping[str, Any], turn: Turn, facts: Mapping[str, FactValue],
             turn_index: int, params: Params) -> dict[str, Any]:
    """The brief's memory after this turn (`seen` is the stored one, {} at first)."""
    intents = _labels(seen.get("i"))
    intent = turn.message.intent
    if intent is not None:
        key = intent_key(intent)
        if not (key in params.not_understood_intents or key in params.answer_intents
                or key in params.rejection_intents):
            intents = _with(intents, (intent,))
    topics = _labels(seen.get("t"))
    found = facts.get("complexity.topics")
    if isinstance(found, tuple) and found:
        topics = _with(topics, found)
    frustration = _scores(seen.get("f"))
    if turn.message.text is not None and turn.message.text.strip():
        score = facts.get("frustration.score")
        if isinstance(score, float | int):
            frustration = (*frustration, round(float(score), 2))[-KEEP:]
    asked = seen.get("h")
    if facts.get("requested_human") is True:
        asked = turn_index
    memory: dict[str, Any] = {}
    if intents:
        memory["i"] = list(intents)
    if topics:
        memory["t"] = list(topics)
    if frustration:
        memory["f"] = list(frustration)
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        memory["h"] = asked
    return memory


def build(reasons: Sequence[Reason], facts: Mapping[str, FactValue],
          seen: Mapping[str, Any], turn: Turn) -> dict[str, Any]:
    """The brief of a route_to_human decision, from its reasons, its facts and the
    brief's memory after the turn (remember's)."""
    routing = [reason for reason in reasons if reason.decision == ROUTE]
    decisive = routing[0] if routing else None
    recent = _scores(seen.get("f"))
    now = facts.get("frustration.score", 0.0)
    mean = facts.get("frustration.mean", 0.0)
    return {
        "why": {
            "decisive": decisive.description if decisive is not None else None,
            "rule": decisive.rule if decisive is not None else None,
            "others": [reason.description for reason in routing[1:]],
        },
        "language": facts.get("message.language"),
        "intents": list(reversed(_labels(seen.get("i")))),
        "topics": list(reversed(_labels(seen.get("t")))),
        "conversation": {
            "turns": facts.get("turn_index"),
            "minutes": facts.get("conversation.minutes"),
            "fallbacks": facts.get("loop.fallbacks"),
            "repeats": facts.get("loop.repeats"),
            "frustration": {
                "now": round(float(now), 2) if isinstance(now, float | int) else 0.0,
                "mean": round(float(mean), 2) if isinstance(mean, float | int) else 0.0,
                "trend": round(slope(recent), 3),
                "recent": list(reversed(recent)),
            },
        },
        "asked_for_person": "h" in seen,
        "tier": turn.tier,
        "channel": turn.channel,
    }
