"""marshmallow schemas of what the API answers, for the OpenAPI document only.

The service builds its responses by hand (`Decision.to_dict`, `api.state_summary`, ...)
because that is measurably cheaper on the hot path; these schemas describe those bodies
so that escalator.http.openapi can generate the document from them. They are never used to
dump a response, so they cannot drift silently: tests/http/test_fuzz.py checks every response
the service gives against the document built from them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from escalator.errors import PROBLEM_CODES
from escalator.model import HANDOFF_URGENCIES, KEEP, ROUTE
from escalator.ruleset.model import MAX_PRIORITY
from escalator.turnschema import ID_PATTERN
from escalator.validators import Exactly

DECISIONS = (ROUTE, KEEP)
# Every code an error body can carry (docs/api.md, "Errors"); 429 and the like would add here.
ERROR_CODES = (
    "invalid_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
    "payload_too_large", "unsupported_media_type", "turn_superseded", "state_unreadable",
    "reload_in_progress", "invalid_ruleset", "ruleset_too_large", "idempotency_key_reused",
    "rate_limited", "state_unavailable", "internal_error", "request_timeout",
    "decision_not_found", "feedback_label_mismatch", "feedback_conflict",
)


class JsonSchemaField(fields.Field):  # type: ignore[type-arg]
    """A value whose shape marshmallow cannot say (unions, recursion): the OpenAPI document
    takes `json_schema` for it as written."""

    def __init__(self, json_schema: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.json_schema = json_schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=Exactly(ID_PATTERN), **kwargs)


class RulesetRefSchema(Schema):
    """Which rule set decided."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    digest = fields.String(required=True)


class BriefWhySchema(Schema):
    """Why the conversation goes to a person, in the rules' own words."""

    decisive = fields.String(required=True, allow_none=True, metadata={
        "description": "The decisive reason: the description of the rule that decided "
                       "(handoff-in-progress on the turns of a conversation already with "
                       "a person)."})
    rule = fields.String(required=True, allow_none=True, metadata={
        "description": "The id of that rule."})
    others = fields.List(fields.String(), required=True, metadata={
        "description": "The descriptions of the other matching route_to_human rules."})


class BriefFrustrationSchema(Schema):
    """How frustrated the customer has been, as a few numbers (0..1, 2 decimals)."""

    now = fields.Float(required=True, validate=validate.Range(0, 1), metadata={
        "description": "This message's frustration.score (0 for a message without text)."})
    mean = fields.Float(required=True, validate=validate.Range(0, 1), metadata={
        "description": "frustration.mean: the conversation so far, recent turns weighing "
                       "more."})
    trend = fields.Float(required=True, validate=validate.Range(-1, 1), metadata={
        "description": "Change per turn over the recent scores (least-squares slope): "
                       "positive when the customer is getting more frustrated."})
    recent = fields.List(fields.Float(validate=validate.Range(0, 1)), required=True,
                         validate=validate.Length(max=5), metadata={
                             "description": "The scores of the last 5 messages with text, "
                                            "most recent first."})


class BriefConversationSchema(Schema):
    """How the conversation went."""

    turns = fields.Integer(required=True, validate=validate.Range(min=1), metadata={
        "description": "Customer turns so far (turn_index)."})
    minutes = fields.Float(required=True, validate=validate.Range(min=0), metadata={
        "description": "Since the first turn (conversation.minutes)."})
    fallbacks = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "Bot fallbacks (loop.fallbacks; since a release, if any)."})
    repeats = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "Customer turns that repeated an earlier one (loop.repeats)."})
    frustration = fields.Nested(BriefFrustrationSchema, required=True)


class BriefSchema(Schema):
    """The handoff brief for the person taking over: labels and numbers, never what the
    customer wrote."""

    why = fields.Nested(BriefWhySchema, required=True)
    language = fields.String(required=True, metadata={
        "description": "The turn's language (message.language; und when unknown)."})
    intents = fields.List(fields.String(), required=True, validate=validate.Length(max=5),
                          metadata={"description": "Intent labels the bot's NLU gave, most "
                                    "recent first (requests only: not understood, confirm "
                                    "or deny are left out)."})
    topics = fields.List(fields.String(), required=True, validate=validate.Length(max=5),
                         metadata={"description": "Topic labels escalator found "
                                   "(complexity.topics), most recent first."})
    conversation = fields.Nested(BriefConversationSchema, required=True)
    asked_for_person = fields.Boolean(required=True, metadata={
        "description": "The customer explicitly asked for a person, in this turn or "
                       "earlier in the conversation."})
    tier = fields.String(required=True, allow_none=True, metadata={
        "description": "customer.tier as sent (lower case)."})
    channel = fields.String(required=True, allow_none=True, metadata={
        "description": "The channel as sent (lower case)."})


class HandoffSchema(Schema):
    """Where and how urgently to hand over, and what the bot can say meanwhile."""

    queue = fields.String(required=True)
    urgency = fields.String(required=True, validate=validate.OneOf(HANDOFF_URGENCIES),
                            metadata={"description": "How urgently a person should take "
                                      "it: the most urgent of the matching route rules, "
                                      "raised (never lowered) during the handoff."})
    customer_message = fields.String(required=True, metadata={
        "description": "What the bot can tell the customer, in the turn's language when "
                       "the rule set has it."})
    priority = fields.String(required=True, validate=validate.OneOf(HANDOFF_URGENCIES),
                             metadata={"deprecated": True, "description": "The old name "
                                       "of urgency, with the same value; read urgency."})
    brief = fields.Nested(BriefSchema, metadata={
        "description": "For the person taking over: why, the language, what the customer "
                       "wanted, how the conversation went, whether they asked for a "
                       "person, tier and channel. In every route_to_human decision (a "
                       "retry of a turn decided before briefs existed gets its stored "
                       "decision, without one)."})


class ReasonSchema(Schema):
    """A rule that matched, in the words of its author."""

    rule = fields.String(required=True)
    priority = fields.Integer(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    description = fields.String(required=True)


class ScoresSchema(Schema):
    """The four headline scores of a turn."""

    sentiment = fields.Float(required=True, validate=validate.Range(-1, 1))
    frustration = fields.Float(required=True, validate=validate.Range(0, 1))
    complexity = fields.Float(required=True, validate=validate.Range(0, 1))
    loop = fields.Float(required=True, validate=validate.Range(0, 1))


FACT_VALUE: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"},
              {"type": "array", "items": {"type": "string"}}],
}


class ShadowSchema(Schema):
    """What the shadow rule set decided on the same facts (docs/policy/feedback-and-shadow.md)."""

    ruleset = fields.Nested(RulesetRefSchema, required=True)
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    rules = fields.List(fields.String(), required=True, metadata={
        "description": "The shadow rules that matched, the decisive one first "
                       "(handoff-in-progress first on a conversation already with a person)."})
    agrees = fields.Boolean(required=True, metadata={
        "description": "Whether the shadow's decision is the live one."})


class DecisionSchema(Schema):
    """200 of POST /v1/conversations/{id}/turns: one turn's decision and why."""

    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    decision_id = fields.String(required=True)
    conversation_id = _id(required=True)
    turn_id = _id(required=True)
    turn_index = fields.Integer(required=True, validate=validate.Range(min=0))
    handoff = fields.Nested(HandoffSchema, required=True, allow_none=True, metadata={
        "description": "null when the conversation stays with the bot."})
    reasons = fields.List(fields.Nested(ReasonSchema), required=True, metadata={
        "description": "Every matching rule, the decisive one first."})
    scores = fields.Nested(ScoresSchema, required=True)
    facts = fields.Dict(keys=fields.String(), values=JsonSchemaField(FACT_VALUE),
                        required=True, metadata={
                            "description": "Every fact the rules saw (docs/policy/facts.md)."})
    ruleset = fields.Nested(RulesetRefSchema, required=True)
    degraded = fields.Boolean(required=True, metadata={
        "description": "Decided without state: the state store was unavailable."})
    replayed = fields.Boolean(required=True, metadata={
        "description": "This answer is a retry's stored decision: the turn was already "
                       "decided, and its decision is answered unchanged."})
    shadow = fields.Nested(ShadowSchema, allow_none=True, metadata={
        "description": "Only with ?shadow=1: the shadow rule set's verdict, null if no "
                       "shadow rule set is loaded or the answer is a retry's."})


class EvaluationSchema(Schema):
    """200 of POST /v1/evaluate: every turn's decision of a dry run."""

    conversation_id = _id(required=True)
    ruleset = fields.Nested(RulesetRefSchema, required=True)
    decisions = fields.List(fields.Nested(DecisionSchema), required=True)


class ConversationSummarySchema(Schema):
    """GET /v1/conversations/{id}: the state kept between turns, numbers and labels only."""

    conversation_id = _id(required=True)
    version = fields.Integer(required=True)
    turn_index = fields.Integer(required=True, validate=validate.Range(min=0))
    started_at = fields.Float(required=True, allow_none=True,
                              metadata={"description": "Unix time of the first turn."})
    updated_at = fields.Float(required=True, allow_none=True,
                              metadata={"description": "Unix time of the last turn."})
    escalated = fields.Boolean(required=True, metadata={
        "description": "With a person until released."})
    escalated_turn = fields.Integer(required=True, allow_none=True)
    handoff_queue = fields.String(required=True, allow_none=True)
    handoff_urgency = fields.String(required=True, allow_none=True)
    handoff_priority = fields.String(required=True, allow_none=True, metadata={
        "deprecated": True, "description": "The old name of handoff_urgency, the same value."})
    escalations = fields.Integer(required=True, validate=validate.Range(min=0), metadata={
        "description": "Times the conversation was handed to a person, released handoffs "
                       "included (a release keeps it)."})


class OutcomeSchema(Schema):
    """`then:` of a rule, or the rule set's `default:`, as written."""

    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    queue = fields.String()
    urgency = fields.String(validate=validate.OneOf(HANDOFF_URGENCIES), metadata={
        "description": "Also when written as the old name `priority`."})
    customer_message = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "{language: text}; a text written plain is under the rule set's "
                       "default_language."})


class InProgressSchema(Schema):
    """What each turn of a conversation already with a person is told."""

    customer_message = fields.Dict(keys=fields.String(), values=fields.String(),
                                   required=True, metadata={"description": "{language: text}"})


# A rule's `when:` as its author wrote it: all/any/not nest, a leaf names a fact and one
# operator (docs/policy/guide.md, "Rule files"). Recursive, hence written as JSON Schema.
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "is")
CONDITION: dict[str, Any] = {
    "description": "A condition as written in the rule file: {all: [...]}, {any: [...]}, "
                   "{not: {...}} or {fact: NAME, OPERATOR: VALUE}.",
    "anyOf": [
        {"type": "object", "required": ["all"], "additionalProperties": False,
         "properties": {"all": {"type": "array", "items": _ref("Condition")}}},
        {"type": "object", "required": ["any"], "additionalProperties": False,
         "properties": {"any": {"type": "array", "items": _ref("Condition")}}},
        {"type": "object", "required": ["not"], "additionalProperties": False,
         "properties": {"not": _ref("Condition")}},
        {"type": "object", "required": ["fact"], "minProperties": 2, "maxProperties": 2,
         "propertyNames": {"enum": ["fact", *OPERATORS]},
         "properties": {"fact": {"type": "string"}}},
    ],
}


class RuleSchema(Schema):
    """One rule of the active rule set."""

    id = fields.String(required=True)
    description = fields.String(required=True)
    priority = fields.Integer(required=True, validate=validate.Range(0, MAX_PRIORITY))
    when = JsonSchemaField(_ref("Condition"), required=True)
    then = fields.Nested(OutcomeSchema, required=True)


class RulesetSchema(Schema):
    """GET /v1/ruleset: the active rule set."""

    name = fields.String(required=True)
    version = fields.String(required=True)
    digest = fields.String(required=True)
    default_language = fields.String(required=True, metadata={
        "description": "The language of messages written as plain text, and the one a "
                       "customer is told in when no message has theirs."})
    handoff_in_progress = fields.Nested(InProgressSchema, required=True)
    default = fields.Nested(OutcomeSchema, required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True)


class ProblemSchema(Schema):
    """One problem of a rule set, its lexicons or its rule tests: the shape `escalator
    rules check --format json` prints, and the API's `diagnostics`."""

    code = fields.String(required=True, validate=validate.OneOf(sorted(PROBLEM_CODES)),
                         metadata={"description": "What kind of problem: stable, for "
                                                  "matching (the policy guide lists them)."})
    severity = fields.String(required=True, validate=validate.OneOf(("error", "warning")),
                             metadata={"description": "error: the rule set is refused; "
                                                      "warning: it loads."})
    file = fields.String(required=True, metadata={
        "description": "The file's path inside the rules folder ('.' for the folder itself; "
                       "'ruleset' for a rule set sent inline as a whole)."})
    line = fields.Integer(required=True, allow_none=True, validate=validate.Range(min=1),
                          metadata={"description": "1-based; null when about a whole file."})
    rule = fields.String(required=True, allow_none=True,
                         metadata={"description": "The id of the rule it is about, if any."})
    limit = fields.String(required=True, allow_none=True, metadata={
        "description": "The limit gone over, exactly when code is budget."})
    message = fields.String(required=True, metadata={
        "description": "In plain words, for a policy owner (may change; match on code)."})


class ReloadSchema(Schema):
    """200 of POST /v1/ruleset/reload."""

    result = fields.String(required=True, validate=validate.OneOf(("reloaded", "unchanged")))
    version = fields.String(required=True)
    digest = fields.String(required=True)
    seconds = fields.Float(required=True, validate=validate.Range(min=0))
    warnings = fields.List(fields.String(), metadata={
        "description": "Reloaded, but something a policy owner should know, e.g. the "
                       "content changed and the version did not."})
    diagnostics = fields.List(fields.Nested(ProblemSchema), metadata={
        "description": "The same warnings, each a Problem with its code, file and line."})


class HealthSchema(Schema):
    """GET /healthz."""

    status = fields.String(required=True, validate=validate.OneOf(("ok",)))


class ReadinessSchema(Schema):
    """GET /readyz, 200 (ready) or 503 (not ready)."""

    status = fields.String(required=True, validate=validate.OneOf(("ready", "not_ready")))
    ruleset = fields.Nested(RulesetRefSchema, required=True)
    state_store = fields.String(required=True, validate=validate.OneOf(("ok", "unavailable")))
    state_circuit = fields.String(
        required=True, validate=validate.OneOf(("open", "closed")),
        metadata={"description": "open: Redis was found down and is not asked again until "
                                 "a short cool-down has passed"})
    degraded = fields.Boolean(required=True)


class ErrorBodySchema(Schema):
    """The inside of an error: a stable code, a sentence, and per-field details if any."""

    code = fields.String(required=True, validate=validate.OneOf(ERROR_CODES))
    message = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), metadata={
        "description": "invalid_request: one entry per field (nested like the body); "
                       "invalid_ruleset: problems (as text) and diagnostics (the same, "
                       "each a Problem: code, severity, file, line, rule, limit, message); "
                       "ruleset_too_large: limits, ruleset (the problems as text) and "
                       "diagnostics; invalid_request for a rule set sent inline: ruleset "
                       "and diagnostics; rate_limited: retry_after (seconds). Left out when "
                       "there is nothing to add."})


class ErrorSchema(Schema):
    """Every error: {"error": {"code", "message", "details"}}."""

    error = fields.Nested(ErrorBodySchema, required=True)


class FeedbackResultSchema(Schema):
    """200 of POST /v1/conversations/{id}/feedback: the feedback as kept."""

    feedback_id = fields.String(required=True)
    decision_id = fields.String(required=True)
    conversation_id = _id(required=True)
    label = fields.String(required=True, validate=validate.OneOf((
        "handoff_needed", "handoff_not_needed", "should_have_escalated", "resolved_by_bot")))
    source = fields.String(required=True, validate=validate.OneOf(("agent", "survey",
                                                                   "platform")))
    reasons = fields.List(fields.String(), required=True, metadata={
        "description": "The reason codes, sorted, each once."})
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS), metadata={
        "description": "The decision's outcome."})
    rules = fields.List(fields.String(), required=True, metadata={
        "description": "The decision's rules, the decisive one first."})
    replayed = fields.Boolean(required=True, metadata={
        "description": "This source had already given this very feedback: nothing new "
                       "was kept, logged or counted."})
