"""The facts catalogue: every fact a rule can test, with its type and meaning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "scalar" is for context.<key>: the caller decides its type, so any scalar constant is allowed.
FactType = Literal["integer", "number", "boolean", "string", "labels", "scalar"]

CONTEXT_PREFIX = "context."

# Labels the caller chooses freely: the service reads them in lower case (at the API's
# boundary) and the loader lower-cases what rules compare them with, so "VIP" in a rule and
# "vip" from a platform are the same tier. Context values are such labels too.
CASELESS_FACTS = frozenset({"customer.tier", "customer.segment", "channel"})


@dataclass(frozen=True)
class FactSpec:
    """A fact's name, type and the sentence that explains it to a policy owner."""

    name: str
    type: FactType
    doc: str
    # Closed ranges help catch thresholds that can never match (e.g. frustration >= 4).
    minimum: float | None = None
    maximum: float | None = None


def _spec(name: str, type_: FactType, doc: str, lo: float | None = None,
          hi: float | None = None) -> FactSpec:
    return FactSpec(name, type_, doc, lo, hi)


FACTS: dict[str, FactSpec] = {s.name: s for s in (
    _spec("turn_index", "integer", "Number of this customer turn in the conversation, from 1.", 1),
    _spec("message.chars", "integer", "Length of this message in characters (0 for intent-only).",
          0),
    _spec("message.language", "string",
          "Language of this message: ISO 639-1 code sent by the caller or detected "
          "(en, es, de, fr, pt, ...); 'und' when unknown."),
    _spec("message.intent", "string", "The intent the bot's NLU gave this message, if any."),
    _spec("sentiment.score", "number", "Sentiment of this message, -1 (negative) to 1 (positive).",
          -1, 1),
    _spec("sentiment.mean", "number",
          "Sentiment over the conversation so far, recent turns weighing more (-1..1).", -1, 1),
    _spec("sentiment.trend", "number",
          "How sentiment is moving over the last few turns: negative when it is getting worse "
          "(change per turn, -2..2).", -2, 2),
    _spec("sentiment.negative_streak", "integer",
          "Consecutive customer turns, up to this one, with clearly negative sentiment.", 0),
    _spec("frustration.score", "number",
          "Frustration in this message, 0..1: sentiment plus customer-service cues "
          "(repeating a complaint, waiting, threats to leave, shouting, profanity, sarcasm).",
          0, 1),
    _spec("frustration.mean", "number",
          "Frustration over the conversation so far, recent turns weighing more (0..1).", 0, 1),
    _spec("frustration.cues", "labels",
          "Which frustration cues fired in this message (e.g. repetition, waiting, "
          "threat_to_leave, public_complaint, profanity, insult, shouting, exclamation, "
          "sarcasm, broken_promise)."),
    _spec("frustration.fitted", "number",
          "Frustration in this message, 0..1, as people would rate it (0-4 / 4): the lexicon "
          "evidence of frustration.score plus what the conversation so far adds (the "
          "previous message, the running mean, length and questions), weighed by the fitted "
          "layer in lexicons/fitted_frustration.yaml. 0 for a turn without text.", 0, 1),
    _spec("frustration.contributions", "labels",
          "Why frustration.fitted is what it is: its largest terms, largest first, as "
          "\"feature +0.42\" (log-odds against a typical message; for reading, not for "
          "rules)."),
    _spec("complexity.score", "number",
          "How complex this request looks, 0..1 (questions, several issues, length, "
          "sensitive topics).", 0, 1),
    _spec("complexity.questions", "integer", "Number of questions in this message.", 0),
    _spec("complexity.issues", "integer", "Number of distinct issues raised in this message.", 0),
    _spec("complexity.topics", "labels",
          "Sensitive topics mentioned in this message (legal, fraud, bereavement, "
          "vulnerability, safety, cancellation, complaint, ...)."),
    _spec("intent.confidence", "number",
          "The NLU's confidence in this message's intent, 0..1 (absent if not sent).", 0, 1),
    _spec("intent.low_confidence_streak", "integer",
          "Consecutive turns, up to this one, whose intent confidence was low.", 0),
    _spec("loop.score", "number",
          "How much the conversation is going round in circles, 0..1 (repeats, fallbacks, "
          "turns not understood, the bot asking the same thing again, the customer turning "
          "the bot down), recent turns weighing more; it falls again when the customer "
          "answers what the bot asked (loop.answers).", 0, 1),
    _spec("loop.repeats", "integer",
          "Customer turns that repeat an earlier one (by similarity), so far.", 0),
    _spec("loop.fallback_streak", "integer",
          "Consecutive bot replies, up to this turn, where the bot did not understand.", 0),
    _spec("loop.fallbacks", "integer", "Bot fallbacks in the whole conversation so far.", 0),
    _spec("loop.bot_repeats", "integer",
          "Times the bot sent a prompt it had already sent in this conversation (variants "
          "such as ask_email_retry count as the same prompt).", 0),
    _spec("loop.intent_repeats", "integer",
          "Times the customer's intent was one already seen in this conversation (answers "
          "such as confirm or inform are not requests and never count).", 0),
    _spec("loop.oscillations", "integer",
          "Times the bot went back to the prompt before its last one (A, B, A), so far.", 0),
    _spec("loop.not_understood", "integer",
          "Customer turns the bot's NLU did not understand (a fallback-like intent such as "
          "nlu_fallback, or a low confidence), so far.", 0),
    _spec("loop.rejections", "integer",
          "Customer turns that turned down what the bot said (an intent such as deny), so far.",
          0),
    _spec("loop.answers", "integer",
          "Customer turns that gave the bot what it asked for (an intent such as confirm or "
          "inform), so far; each one lowers loop.score.", 0),
    _spec("loop.reasks", "integer",
          "Times the bot sent the same prompt again right after the customer answered it "
          "(the answer was not taken), so far.", 0),
    _spec("breakdown.score", "number",
          "How likely the conversation is breaking down (the customer about to give up or "
          "ask for a person), 0..1: the loop level behind loop.score, the bot's failure "
          "streak, re-asks, rejections and answers, weighed by the fitted layer in "
          "lexicons/fitted_breakdown.yaml.", 0, 1),
    _spec("breakdown.contributions", "labels",
          "Why breakdown.score is what it is: its largest terms, largest first, as "
          "\"feature +0.42\" (log-odds against a typical conversation; for reading, not "
          "for rules)."),
    _spec("requested_human", "boolean",
          "The customer explicitly asked for a person in this message (negations like "
          "\"I don't need an agent\" do not count)."),
    _spec("conversation.escalated", "boolean",
          "The conversation was already handed to a person before this turn."),
    _spec("conversation.escalations", "integer",
          "How many times the conversation was handed to a person before this turn, "
          "handoffs an agent released included.", 0),
    _spec("conversation.minutes", "number",
          "Minutes since the conversation's first turn, at most the state TTL (1,440 by "
          "default).", 0),
    _spec("customer.tier", "string",
          "The customer's tier as the caller sent it, in lower case (e.g. gold); compared "
          "without regard to case."),
    _spec("customer.segment", "string",
          "The customer's segment as the caller sent it, in lower case (e.g. consumer, "
          "business); compared without regard to case."),
    _spec("channel", "string",
          "The channel of the conversation, in lower case (e.g. web, app, voice, sms); "
          "compared without regard to case."),
)}


# Facts that explain a score to people reading a decision, not for rules: a condition on
# one is refused, naming the score to test instead.
EXPLANATIONS = {"frustration.contributions": "frustration.fitted",
                "breakdown.contributions": "breakdown.score"}


def caseless(name: str) -> bool:
    """Whether text compared with this fact is compared without regard to case."""
    return name in CASELESS_FACTS or name.startswith(CONTEXT_PREFIX)


def lookup(name: str) -> FactSpec | None:
    """The spec of a fact; `context.<key>` facts are scalars of any type."""
    if name in FACTS:
        return FACTS[name]
    if name.startswith(CONTEXT_PREFIX) and len(name) > len(CONTEXT_PREFIX):
        return FactSpec(name, "scalar", "A value from the request's context map.")
    return None


_TYPE_WORDS = {"integer": "integer", "number": "number", "boolean": "boolean",
               "string": "string", "labels": "labels", "scalar": "as sent"}


def facts_markdown() -> str:
    """The facts list for policy owners (docs/policy/facts.md), as Markdown, from FACTS."""
    lines = [
        "# Facts",
        "",
        "<!-- Generated from escalator/ruleset/catalogue.py by `escalator rules facts`;",
        "     do not edit: change the catalogue, then run",
        "     `escalator rules facts > docs/policy/facts.md`. -->",
        "",
        "What rules can test. Numbers are decimals; labels are lower-case words. \"So far\" "
        "and",
        "\"in this conversation\" count from the first turn, or from the last release by an "
        "agent",
        "([Release](../api.md#release)), which starts the loop counters, streaks and means "
        "again.",
        "",
        "| fact | type | meaning |",
        "|---|---|---|",
    ]
    for spec in FACTS.values():
        lines.append(f"| `{spec.name}` | {_TYPE_WORDS[spec.type]} | {spec.doc} |")
    lines.append(f"| `{CONTEXT_PREFIX}<key>` | {_TYPE_WORDS['scalar']} | A value from the "
                 "turn's `context` map (number, boolean or label; labels in lower case). |")
    return "\n".join(lines) + "\n"
