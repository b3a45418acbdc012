"""Rules as sentences a policy owner reads: what a rule does and when, in plain words.

"Route to a person, queue *support*, urgency *high*, when the customer's average
frustration is at least 0.65 and this is turn 3 or later." Every fact of the catalogue has
a noun phrase here (a test checks none is missing), every operator a verb phrase, and a
few comparisons read better said whole (turn numbers, yes/no facts). Values are
emphasised; the result is markup-safe HTML, and `plain()` gives it as text.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from escalator.studio.engine import (
    CONTEXT_PREFIX,
    ROUTE,
    AllOf,
    AnyOf,
    Condition,
    Leaf,
    Not,
    Rule,
    RuleSet,
    lookup,
)

# What each fact is, as the subject of a sentence.
SUBJECTS: dict[str, str] = {
    "turn_index": "the turn number",
    "message.chars": "the length of this message (characters)",
    "message.language": "the language of this message",
    "message.intent": "the intent the bot recognised in this message",
    "sentiment.score": "the sentiment of this message",
    "sentiment.mean": "the customer's average sentiment",
    "sentiment.trend": "the trend of the customer's sentiment",
    "sentiment.negative_streak": "the number of clearly negative messages in a row",
    "frustration.score": "the frustration in this message",
    "frustration.mean": "the customer's average frustration",
    "frustration.cues": "the frustration signs in this message",
    "frustration.fitted": "the fitted frustration of this message",
    "frustration.contributions": "what weighs most in the fitted frustration",
    "complexity.score": "the complexity of this request",
    "complexity.questions": "the number of questions in this message",
    "complexity.issues": "the number of separate issues in this message",
    "complexity.topics": "the sensitive topics of this message",
    "intent.confidence": "the bot's confidence in the intent",
    "intent.low_confidence_streak": "the number of turns in a row the bot was unsure of the "
                                    "intent",
    "loop.score": "how much the conversation goes round in circles",
    "loop.repeats": "the number of times the customer repeated themselves",
    "loop.fallback_streak": "the number of times in a row the bot did not understand",
    "loop.fallbacks": "the number of times the bot did not understand",
    "loop.bot_repeats": "the number of times the bot repeated a question",
    "loop.intent_repeats": "the number of times the customer asked for the same thing again",
    "loop.oscillations": "the number of times the bot went back and forth between two "
                         "questions",
    "loop.not_understood": "the number of customer messages the bot did not understand",
    "loop.rejections": "the number of times the customer said no to the bot",
    "loop.answers": "the number of times the customer answered the bot's question",
    "loop.reasks": "the number of times the bot asked again right after an answer",
    "breakdown.score": "how likely the conversation is breaking down",
    "breakdown.contributions": "what weighs most in the breakdown score",
    "requested_human": "the customer asking for a person",
    "conversation.escalated": "the conversation already being with a person",
    "conversation.escalations": "the number of earlier handoffs to a person",
    "conversation.minutes": "the minutes since the conversation started",
    "customer.tier": "the customer's tier",
    "customer.segment": "the customer's segment",
    "channel": "the channel",
}

# Yes/no facts said whole: (when true, when false).
YES_NO: dict[str, tuple[str, str]] = {
    "requested_human": ("the customer asks for a person",
                        "the customer does not ask for a person"),
    "conversation.escalated": ("the conversation is already with a person",
                               "the conversation is not yet with a person"),
}

# Label lists (contains): what it means for the list to hold a label.
CONTAINS: dict[str, str] = {
    "complexity.topics": "the message mentions the topic",
    "frustration.cues": "the message shows the frustration sign",
}

NUMBER_VERBS: dict[str, str] = {
    "eq": "is", "ne": "is not", "lt": "is below", "lte": "is at most", "gt": "is above",
    "gte": "is at least", "in": "is one of", "not_in": "is none of",
}

# How the turn number reads best.
TURN_PHRASES: dict[str, str] = {
    "eq": "this is turn {}", "ne": "this is not turn {}", "lt": "this is before turn {}",
    "lte": "this is turn {} or earlier", "gt": "this is after turn {}",
    "gte": "this is turn {} or later",
}


def _value(value: object) -> Markup:
    if isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, float):
        shown = f"{value:g}"
    else:
        shown = str(value)
    return Markup("<em>{}</em>").format(shown)


def _values(values: tuple[object, ...], joiner: str) -> Markup:
    shown = [_value(v) for v in values]
    if len(shown) == 1:
        return shown[0]
    return Markup(", ").join(shown[:-1]) + Markup(f" {joiner} ") + shown[-1]


def subject(fact: str) -> str:
    """A fact as the subject of a sentence ("the customer's average frustration")."""
    if fact.startswith(CONTEXT_PREFIX):
        return f"the platform's value '{fact[len(CONTEXT_PREFIX):]}'"
    return SUBJECTS.get(fact, fact)


def leaf_sentence(leaf: Leaf) -> Markup:
    """One comparison as a clause: "the customer's average frustration is at least 0.65"."""
    fact, op, value = leaf.fact, leaf.op, leaf.value
    if fact == "turn_index" and op in TURN_PHRASES and not isinstance(value, tuple):
        before, _, after = TURN_PHRASES[op].partition("{}")
        return escape(before) + _value(value) + escape(after)
    if fact in YES_NO and isinstance(value, bool) and op in ("is", "eq", "ne"):
        truth = value if op != "ne" else not value
        return Markup(escape(YES_NO[fact][0 if truth else 1]))
    if op == "contains":
        lead = CONTAINS.get(fact, f"{subject(fact)} include")
        return escape(lead) + Markup(" ") + _value(value)
    spec = lookup(fact)
    if op in ("is", "eq") and isinstance(value, bool):
        return escape(subject(fact)) + Markup(" is ") + _value(value)
    verb = NUMBER_VERBS.get(op, op)
    if isinstance(value, tuple):
        if spec is not None and spec.type in ("string", "scalar") and op in ("in", "not_in"):
            verb = "is" if op == "in" else "is neither"
            return (escape(subject(fact)) + Markup(f" {verb} ")
                    + _values(value, "or" if op == "in" else "nor"))
        return escape(subject(fact)) + Markup(f" {verb} ") + _values(value, "or")
    return escape(subject(fact)) + Markup(f" {verb} ") + _value(value)


def condition_sentence(condition: Condition, nested: bool = False) -> Markup:
    """A whole condition: clauses joined by "and"/"or", groups inside groups bracketed."""
    if isinstance(condition, Leaf):
        return leaf_sentence(condition)
    if isinstance(condition, Not):
        inner = condition.item
        if isinstance(inner, Leaf) and inner.fact in YES_NO and isinstance(inner.value, bool):
            return leaf_sentence(Leaf(inner.fact, "is", not inner.value))
        return Markup("it is not true that ") + condition_sentence(inner, nested=True)
    joiner = " and " if isinstance(condition, AllOf) else " or "
    parts = [condition_sentence(item, nested=True) for item in condition.items]
    if len(parts) == 1:
        return parts[0]
    same = _same_labels(condition)
    if same is not None:
        # "mentions the topic legal, fraud or data_privacy" rather than three clauses.
        lead = CONTAINS.get(same, f"{subject(same)} include")
        values = tuple(item.value for item in condition.items if isinstance(item, Leaf))
        joined = escape(lead) + Markup(" ") + _values(values, joiner.strip())
    else:
        joined = Markup(joiner).join(parts)
    return Markup("(") + joined + Markup(")") if nested else joined


def _same_labels(condition: AnyOf | AllOf) -> str | None:
    """The fact, when every item asks whether one label list holds a label."""
    items = condition.items
    if not all(isinstance(item, Leaf) and item.op == "contains" for item in items):
        return None
    facts = {item.fact for item in items if isinstance(item, Leaf)}
    return facts.pop() if len(facts) == 1 else None


def outcome_phrase(rule: Rule, ruleset: RuleSet | None = None) -> Markup:
    """What a rule does: "Route to a person, queue support, urgency high"."""
    then = rule.then
    if then.decision != ROUTE:
        return Markup("Keep the customer with the bot")
    default = ruleset.default if ruleset is not None else None
    queue = then.queue or (default.queue if default else None)
    urgency = then.urgency or (default.urgency if default else None)
    parts = [Markup("Route to a person")]
    if queue:
        parts.append(Markup("queue ") + _value(queue))
    if urgency:
        parts.append(Markup("urgency ") + _value(urgency))
    return Markup(", ").join(parts)


def rule_sentence(rule: Rule, ruleset: RuleSet | None = None) -> Markup:
    """The whole rule: what it does, then when."""
    comma = Markup(",") if rule.then.decision == ROUTE else Markup("")
    return (outcome_phrase(rule, ruleset) + comma + Markup(" when ")
            + condition_sentence(rule.when) + Markup("."))


def plain(markup: Markup) -> str:
    """A sentence as plain text (emphasis dropped)."""
    return markup.striptags()
