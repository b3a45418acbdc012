"""The OpenAPI 3.1 document of the HTTP API (GET /openapi.json), generated from the
marshmallow schemas: the request schemas the API loads with (escalator.turnschema and
escalator.http.schemas) and the response schemas that describe what it answers
(escalator.http.response_schemas).

Built once per app, from that app's limits (context keys, body size), and served as the
same bytes afterwards. tests/http/test_openapi.py checks that the document is valid and names
every route; tests/http/test_fuzz.py sends generated requests and checks the answers against it.
"""

from __future__ import annotations

import copy
import threading
from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.field_converter import FieldConverterMixin
from flask import Flask
from marshmallow import fields

from escalator.http import response_schemas as rs
from escalator.http.schemas import FeedbackSchema, ReleaseSchema
from escalator.http.services import EXTENSION, Services
from escalator.model import HANDOFF_URGENCIES, compact_json
from escalator.policy import INLINE_FILE, MAX_INLINE_FILES
from escalator.tools.transcripts import MAX_TURNS
from escalator.turnschema import CONTEXT_KEY, ID_PATTERN, MAX_TEXT_CHARS, ContextField, TurnSchema

OPENAPI_VERSION = "3.1.0"
EXTENSION_KEY = "escalator.openapi"
JSON = "application/json"
_BUILDING = threading.Lock()

# One reusable response per error code, the status it comes with and when.
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "Invalid JSON, a field missing or invalid (`details` has one "
                             "entry per field), or an invalid id."),
    "unauthorized": (401, "No API key, or not a valid one (`Authorization: Bearer <key>`)."),
    "forbidden": (403, "A caller key on an admin route."),
    "not_found": (404, "No state is kept for this conversation, or no route has this path."),
    "request_timeout": (408, "The request (headers and body) was not received within "
                             "ESCALATOR_CLIENT_TIMEOUT_SECONDS; the connection is closed."),
    "payload_too_large": (413, "The body is larger than ESCALATOR_MAX_BODY_BYTES."),
    "unsupported_media_type": (415, "The body is not sent as application/json."),
    "invalid_ruleset": (422, "The rules folder was refused; the running rule set stays "
                             "(`details.problems` lists file, line, rule and problem as "
                             "text, `details.diagnostics` the same as Problem objects, each "
                             "with its stable `code`)."),
    "internal_error": (500, "A bug: please report it."),
    "reload_in_progress": (409, "No reload result within the wait: a reload is still "
                           "running, or the rules folder changed moments ago and is "
                           "activated once it has been unchanged for "
                           "ESCALATOR_RELOAD_SETTLE_SECONDS. The running rule set stays; "
                           "ask again after `Retry-After` seconds."),
    "turn_superseded": (409, "This turn was already decided; newer turns have followed "
                        "(a retry of a turn older than the last 2, whose decision is no "
                        "longer kept). Nothing was changed."),
    "idempotency_key_reused": (422, "This turn id was already decided with other content "
                               "(another text, intent, bot prompt, labels, context or "
                               "timestamp): a turn id is an idempotency key, and a new turn "
                               "needs a new one. Nothing was changed."),
    "state_unreadable": (409, "The conversation's stored state cannot be read (corrupt, or "
                         "not written by escalator; `details.reason` says how); its next "
                         "turn starts it afresh, and DELETE erases it."),
    "decision_not_found": (404, "The decision is not among those the conversation keeps "
                           "for feedback (its last 4 and its last handoff, while its state "
                           "lives): unknown, older, or the state expired. Nothing was "
                           "changed."),
    "feedback_label_mismatch": (422, "The label does not fit the decision: handoff_needed "
                                "and handoff_not_needed are for route_to_human decisions, "
                                "should_have_escalated and resolved_by_bot for keep_with_bot "
                                "ones. Nothing was changed."),
    "feedback_conflict": (409, "This source already gave other feedback (another label or "
                          "reasons) on this decision; feedback is given once per decision "
                          "and source. Nothing was changed."),
    "state_unavailable": (503, "The state store is unavailable (or none is configured)."),
    "ruleset_too_large": (422, "A rule set sent inline is over a limit every rule set has, "
                               "or its evaluation went over its time or memory limit: "
                               "`details.limits` names them (e.g. list_values, "
                               "engine_tests, yaml_nodes, time, memory), `details.ruleset` "
                               "says where, with file, line and rule, and "
                               "`details.diagnostics` gives the same as Problem objects "
                               "(code budget)."),
    "rate_limited": (429, "Too many evaluations with a rule set sent inline from this "
                          "caller (ESCALATOR_INLINE_PER_MINUTE), or all of the instance's "
                          "inline evaluation slots are in use; the `Retry-After` header "
                          "(and `details.retry_after`) says in how many seconds to try "
                          "again."),
}
SecurityRequirements = list[dict[str, list[str]]]
CALLER: SecurityRequirements = [{"caller": []}, {"admin": []}]  # an admin may do it too
ADMIN: SecurityRequirements = [{"admin": []}]
OPEN: SecurityRequirements = []


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {str(ERRORS[code][0]): _ref("responses", code) for code in codes}


def _context_schema(max_keys: int) -> dict[str, Any]:
    """ContextField as JSON Schema: a flat map of numbers, booleans and short labels."""
    return {
        "type": "object",
        "maxProperties": max_keys,
        "propertyNames": {"pattern": CONTEXT_KEY.pattern},
        "additionalProperties": {"anyOf": [
            {"type": "boolean"},
            {"type": "integer", "minimum": -(2**63) + 1, "maximum": 2**63 - 1},
            {"type": "number"},
            {"type": "string", "pattern": r"^[A-Za-z0-9._:@-]{0,64}$"},
        ]},
        "description": "Exposed to rules as context.<key> (at most "
                       f"{max_keys} keys, ESCALATOR_MAX_CONTEXT_KEYS).",
    }


def _field_converter(max_context_keys: int) -> Any:
    """An apispec attribute function for the fields whose shape marshmallow cannot say."""

    def custom_fields(self: FieldConverterMixin, field: fields.Field,  # type: ignore[type-arg]
                      **kwargs: Any) -> dict[str, Any]:
        if isinstance(field, rs.JsonSchemaField):
            schema = copy.deepcopy(field.json_schema)
        elif isinstance(field, ContextField):
            schema = _context_schema(max_context_keys)
        else:
            return {}
        # apispec's own nullable handling runs before this function and sees no type.
        return {"anyOf": [schema, {"type": "null"}]} if field.allow_none else schema

    return custom_fields


def _operation(summary: str, responses: dict[str, Any], *, security: SecurityRequirements,
               body: dict[str, Any] | None = None, body_required: bool = True,
               description: str = "") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses,
                                 "security": security}
    if description:
        operation["description"] = description
    if body is not None:
        operation["requestBody"] = {"required": body_required,
                                    "content": {JSON: {"schema": body}}}
    return operation


def build_document(*, max_context_keys: int, max_body_bytes: int) -> dict[str, Any]:
    """The OpenAPI document for an app with these limits: every route, body, response
    (status and schema), path parameter pattern and security requirement."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="escalator",
        version=_package_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": (
            "Escalation decisions for chatbot conversations: route a conversation to a "
            "person or keep it with the bot, and say why. Errors are always "
            '{"error": {"code", "message", "details"}} with a stable code. '
            f"Request bodies are at most {max_body_bytes} bytes.")},
    )
    assert plugin.converter is not None  # set by APISpec
    plugin.converter.add_attribute_function(  # type: ignore[no-untyped-call]  # apispec
        _field_converter(max_context_keys))

    components = spec.components
    components.security_scheme("caller", {
        "type": "http", "scheme": "bearer",
        "description": "A caller key (ESCALATOR_API_KEYS); admin keys work too. With no "
                       "key configured, authentication is off."})
    components.security_scheme("admin", {
        "type": "http", "scheme": "bearer",
        "description": "An admin key (ESCALATOR_ADMIN_KEYS)."})
    components.schema("Condition", rs.CONDITION)
    components.schema("Turn", schema=TurnSchema)
    components.schema("Release", schema=ReleaseSchema)
    components.schema("Feedback", schema=FeedbackSchema)
    for schema in (rs.DecisionSchema, rs.EvaluationSchema, rs.ConversationSummarySchema,
                   rs.FeedbackResultSchema, rs.RulesetSchema, rs.ProblemSchema,
                   rs.ReloadSchema, rs.HealthSchema, rs.ReadinessSchema,
                   rs.ErrorSchema):
        components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    for code, (status, description) in ERRORS.items():
        response = _json({"allOf": [
            _ref("schemas", "Error"),
            {"properties": {"error": {"properties": {"code": {"const": code}}}}},
        ]}, description)
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "Seconds to wait before trying again.", "required": True,
                "schema": {"type": "integer", "minimum": 1}}}
        components.response(code, response)
    components.parameter("conversation_id", "path", {
        "description": "The conversation: 1-128 characters of A-Z a-z 0-9 . _ : @ -",
        "schema": {"type": "string", "pattern": ID_PATTERN, "minLength": 1,
                   "maxLength": 128}})

    # apispec resolves a name to the component's $ref (its annotation says only dicts).
    conversation: list[Any] = ["conversation_id"]
    state_errors = _errors("invalid_request", "unauthorized", "not_found", "internal_error",
                           "state_unavailable")
    readable_state_errors = {**state_errors, **_errors("state_unreadable")}
    spec.path("/v1/conversations/{conversation_id}/turns", parameters=conversation, operations={
        "post": _operation(
            "Decide one customer turn", {
                "200": _json(_ref("schemas", "Decision"), "The decision, with its reasons. "
                             "A retry of a turn already decided gets the stored decision "
                             'back with "replayed": true.'),
                **_errors("invalid_request", "unauthorized", "not_found", "request_timeout",
                          "payload_too_large", "unsupported_media_type", "turn_superseded",
                          "idempotency_key_reused", "internal_error", "state_unavailable"),
            }, security=CALLER, body=_ref("schemas", "Turn"),
            description="`turn_id` is the idempotency key, recognised among the "
                        "conversation's last 16 decided turns: a retry (the same content) "
                        "of one of the last 2 gets its stored decision, of an older one of the "
                        "16 answers 409 turn_superseded; the same id with other content "
                        "answers 422 idempotency_key_reused; an id older than the 16 is "
                        "forgotten and decided as a new turn. 503 only with "
                        "ESCALATOR_FAIL_MODE=error; otherwise a turn is decided without "
                        "state (`degraded: true`) when Redis is unavailable. A `timestamp` "
                        "must lie between the state TTL before the service's clock and 15 "
                        "minutes after it (400 otherwise).")})
    spec.path("/v1/conversations/{conversation_id}/feedback", parameters=conversation,
              operations={"post": _operation(
                  "Feedback on one of the conversation's decisions", {
                      "200": _json(_ref("schemas", "FeedbackResult"),
                                   "Kept (or already kept alike: `replayed`)."),
                      **_errors("invalid_request", "unauthorized", "decision_not_found",
                                "feedback_label_mismatch",
                                "request_timeout", "payload_too_large",
                                "unsupported_media_type", "internal_error",
                                "state_unavailable"),
                      # Two codes share 409 here: say both.
                      "409": _json({"allOf": [_ref("schemas", "Error"), {"properties": {
                          "error": {"properties": {"code": {"enum": [
                              "feedback_conflict", "state_unreadable"]}}}}}]},
                          f"feedback_conflict: {ERRORS['feedback_conflict'][1]} "
                          f"state_unreadable: {ERRORS['state_unreadable'][1]}")},
                  security=CALLER, body=_ref("schemas", "Feedback"),
                  description="Once per decision and source: the same feedback again gets "
                              "the same answer (`replayed`: true, not logged or counted "
                              "again); other feedback from that source answers 409 "
                              "feedback_conflict. Recorded in the decision log "
                              '(`"kind": "feedback"`) and counted in '
                              "escalator_feedback_total{rule, label}.")})
    spec.path("/v1/conversations/{conversation_id}", parameters=conversation, operations={
        "get": _operation("The stored state of a conversation (no text)", {
            "200": _json(_ref("schemas", "ConversationSummary"), "The state summary."),
            **readable_state_errors}, security=CALLER),
        "delete": _operation("Erase every key of a conversation", {
            "204": {"description": "Erased (also when there was nothing)."},
            **state_errors}, security=CALLER),
    })
    spec.path("/v1/conversations/{conversation_id}/release", parameters=conversation,
              operations={"post": _operation(
                  "An agent hands the conversation back to the bot", {
                      "200": _json(_ref("schemas", "ConversationSummary"),
                                   "Released: the state summary afterwards."),
                      **readable_state_errors,
                      **_errors("request_timeout", "payload_too_large",
                                "unsupported_media_type")},
                  security=CALLER, body=_ref("schemas", "Release"), body_required=False,
                  description="Ends the sticky handoff and gives the bot a fresh start: "
                              "the loop counters, streaks and means start again; the turn "
                              "index, minutes and handoffs so far are kept. The body is "
                              "empty or {}.")})
    spec.path("/v1/evaluate", operations={"post": _operation(
        "Dry run: decide every turn of a transcript", {
            "200": _json(_ref("schemas", "Evaluation"), "Each turn's decision."),
            **_errors("invalid_request", "unauthorized", "request_timeout",
                      "payload_too_large", "unsupported_media_type", "ruleset_too_large",
                      "rate_limited", "internal_error"),
        }, security=CALLER, body=_ref("schemas", "EvaluateRequest"),
        description="Against the active rules, or a rule set sent inline; no state is "
                    "read or written. A rule set sent inline is checked against the limits "
                    "of every rule set and evaluated in a child process with time and "
                    "memory limits (422 ruleset_too_large); such evaluations are limited "
                    "per caller and per instance (429 rate_limited).")})
    spec.path("/v1/integrations/dialogflow-cx", operations={"post": _operation(
        "Dialogflow CX webhook: decide the customer turn of a WebhookRequest", {
            "200": _json(_ref("schemas", "DialogflowCxWebhookResponse"),
                         "A WebhookResponse: on route_to_human the customer's sentence "
                         "and a liveAgentHandoff message (queue, urgency, reasons, brief "
                         "in its metadata); on keep_with_bot only session parameters; {} "
                         "for a request with neither text nor a matched intent, or a "
                         "second call within one customer turn."),
            **_errors("invalid_request", "unauthorized", "request_timeout",
                      "payload_too_large", "unsupported_media_type", "internal_error",
                      "state_unavailable"),
        }, security=CALLER, body=_ref("schemas", "DialogflowCxWebhookRequest"),
        description="Set it as the webhook of the CX fulfillments to judge (routes, and "
                    "no-match event handlers with a tag ending in `no-match`), with the "
                    "request header `Authorization: Bearer <caller key>`. The session is "
                    "the conversation and detectIntentResponseId the turn id; fields CX "
                    "adds that are not read are ignored. The decision is also in the "
                    "session parameters escalator_decision, escalator_decision_id, "
                    "escalator_rule, escalator_queue and escalator_urgency.")})
    spec.path("/v1/ruleset", operations={"get": _operation(
        "The active rule set", {
            "200": _json(_ref("schemas", "Ruleset"), "Name, version, digest, rules."),
            **_errors("unauthorized", "internal_error")}, security=CALLER)})
    spec.path("/v1/ruleset/reload", operations={"post": _operation(
        "Admin: reload the rules folder now, in every worker", {
            "200": _json(_ref("schemas", "Reload"), "Reloaded, or unchanged."),
            **_errors("unauthorized", "forbidden", "reload_in_progress", "invalid_ruleset",
                      "internal_error")},
        security=ADMIN,
        description="Reads the rules folder now and activates it once it is complete: a "
                    "folder that changed moments ago is read again "
                    "ESCALATOR_RELOAD_SETTLE_SECONDS later and activated only if unchanged "
                    "(a ConfigMap-style `..data` swap is activated at once). The answer "
                    "waits for that, at most the settle time + 5 s; then 409 "
                    "reload_in_progress, and the reload completes by itself.")})
    spec.path("/v1/shadow/reload", operations={"post": _operation(
        "Admin: reload the shadow rules folder now, in every worker", {
            "200": _json(_ref("schemas", "Reload"), "Reloaded, or unchanged."),
            **_errors("unauthorized", "forbidden", "not_found", "reload_in_progress",
                      "invalid_ruleset", "internal_error")},
        security=ADMIN,
        description="Like POST /v1/ruleset/reload, for ESCALATOR_SHADOW_RULES_DIR: a "
                    "refused folder answers 422 invalid_ruleset with its problems and the "
                    "previous shadow rule set stays; the live rules are never touched. 404 "
                    "not_found when no shadow rule set is configured.")})
    spec.path("/healthz", operations={"get": _operation("The process is alive", {
        "200": _json(_ref("schemas", "Health"), "Alive.")}, security=OPEN)})
    spec.path("/readyz", operations={"get": _operation(
        "Ready: rules loaded, state store reachable or stateless decisions allowed", {
            "200": _json(_ref("schemas", "Readiness"), "Ready."),
            "503": _json(_ref("schemas", "Readiness"), "Not ready.")}, security=OPEN)})
    spec.path("/metrics", operations={"get": _operation("Prometheus metrics", {
        "200": {"description": "The text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}}}},
        security=OPEN)})
    spec.path("/openapi.json", operations={"get": _operation("This document", {
        "200": _json({"type": "object"}, "The OpenAPI document.")}, security=OPEN)})

    document = spec.to_dict()
    document["security"] = CALLER
    document["paths"]["/v1/conversations/{conversation_id}/turns"]["post"]["parameters"] = [{
        "name": "shadow", "in": "query", "required": False,
        "description": "1 or true: the answer also has a `shadow` block, the shadow rule "
                       "set's verdict on the turn (null without one); anything else: not.",
        "schema": {"type": "string"}}]
    schemas = document["components"]["schemas"]
    _tighten_turn(schemas)
    schemas["EvaluateRequest"] = _evaluate_request()
    schemas["DialogflowCxWebhookRequest"] = _cx_request()
    schemas["DialogflowCxWebhookResponse"] = _cx_response()
    return document


def _tighten_turn(schemas: dict[str, Any]) -> None:
    """What marshmallow checks in code, said in the schemas: a message needs text or an
    intent, and a turn of a transcript may leave out its turn_id."""
    schemas["Message"]["anyOf"] = [
        {"required": ["text"],
         "properties": {"text": {"type": "string", "minLength": 1,
                                 "maxLength": MAX_TEXT_CHARS}}},
        {"required": ["intent"], "properties": {"intent": {"type": "string"}}},
    ]
    transcript_turn = copy.deepcopy(schemas["Turn"])
    transcript_turn["required"] = [n for n in transcript_turn["required"] if n != "turn_id"]
    transcript_turn["description"] = "A turn as POST .../turns takes it; turn_id defaults " \
                                     "to t-<n>."
    schemas["TranscriptTurn"] = transcript_turn


def _evaluate_request() -> dict[str, Any]:
    """POST /v1/evaluate's body (checked by hand in api.evaluate and transcripts)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["turns"],
        "properties": {
            "conversation_id": {"type": "string", "pattern": ID_PATTERN,
                                "description": "Default: dry-run."},
            "turns": {"type": "array", "minItems": 1, "maxItems": MAX_TURNS,
                      "items": _ref("schemas", "TranscriptTurn")},
            "ruleset": {"anyOf": [{"type": "null"}, {
                "type": "object",
                "additionalProperties": False,
                "required": ["files"],
                "description": "A rule set sent inline; lexicons from the active set "
                               "unless sent. Absent or null: the active rule set.",
                "properties": {"files": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": MAX_INLINE_FILES,
                    "propertyNames": {"pattern": INLINE_FILE.pattern},
                    "additionalProperties": {"type": "string",
                                             "description": "The file's text (YAML)."},
                }},
            }]},
        },
    }


_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}


def _cx_request() -> dict[str, Any]:
    """What the Dialogflow CX webhook reads of a WebhookRequest (CX's own reference has the
    rest: every other field is accepted and ignored)."""
    present = {"type": "string", "pattern": r"\S"}
    return {
        "type": "object",
        "description": "A Dialogflow CX WebhookRequest (v3), as CX sends it.",
        "required": ["detectIntentResponseId", "sessionInfo"],
        "properties": {
            "detectIntentResponseId": {**present, "description": "The turn id."},
            "sessionInfo": {"type": "object", "required": ["session"], "properties": {
                "session": {**present, "description": "The conversation (a session path, "
                            "hashed to a conversation id)."},
                "parameters": {"type": "object", "description": "escalator_tier, "
                               "escalator_segment, escalator_channel and "
                               "escalator_store_state are read."}}},
            "text": {**_TEXT, "description": "What the customer typed (scored, not kept)."},
            "transcript": {**_TEXT, "description": "What the customer said, for voice."},
            "languageCode": _TEXT,
            "intentInfo": {"type": "object", "properties": {
                "displayName": _TEXT, "confidence": {"type": "number"}}},
            "pageInfo": {"type": "object", "properties": {
                "displayName": _TEXT, "currentPage": _TEXT}},
            "fulfillmentInfo": {"type": "object", "properties": {"tag": {
                **_TEXT, "description": "A tag ending in no-match marks a bot fallback."}}},
            "sentimentAnalysisResult": {"type": "object", "properties": {
                "score": {"type": "number"}, "magnitude": {"type": "number"}}},
        },
    }


def _cx_response() -> dict[str, Any]:
    """What the Dialogflow CX webhook answers: a WebhookResponse (v3)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "sessionInfo": {"type": "object", "required": ["parameters"], "properties": {
                "parameters": {"type": "object", "required": [
                    "escalator_decision", "escalator_decision_id", "escalator_rule",
                    "escalator_queue", "escalator_urgency"], "properties": {
                        "escalator_decision": {"enum": ["route_to_human", "keep_with_bot"]},
                        "escalator_decision_id": _TEXT,
                        "escalator_rule": _NULLABLE_TEXT,
                        "escalator_queue": _NULLABLE_TEXT,
                        "escalator_urgency": {"enum": [*HANDOFF_URGENCIES, None]}}}}},
            "fulfillmentResponse": {
                "type": "object", "required": ["messages", "mergeBehavior"],
                "properties": {
                    "mergeBehavior": {"enum": ["REPLACE"]},
                    "messages": {"type": "array", "items": {"anyOf": [
                        {"type": "object", "required": ["text"], "properties": {
                            "text": {"type": "object", "properties": {
                                "text": {"type": "array", "items": _TEXT}}}}},
                        {"type": "object", "required": ["liveAgentHandoff"], "properties": {
                            "liveAgentHandoff": {"type": "object", "properties": {
                                "metadata": {"type": "object", "properties": {
                                    "queue": _TEXT, "urgency": _TEXT,
                                    "reasons": {"type": "array", "items": _TEXT},
                                    "brief": _ref("schemas", "Brief")}}}}}},
                    ]}}}},
        },
    }


def _package_version() -> str:
    try:
        return metadata.version("escalator")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0.0.0"


def document_json(app: Flask) -> bytes:
    """The app's OpenAPI document as JSON bytes, built on first use and kept."""
    with _BUILDING:  # threaded servers: the first requests wait for one build
        cached = app.extensions.get(EXTENSION_KEY)
        if cached is None:
            svc: Services = app.extensions[EXTENSION]
            document = build_document(max_context_keys=svc.config.max_context_keys,
                                      max_body_bytes=svc.config.max_body_bytes)
            cached = compact_json(document)
            app.extensions[EXTENSION_KEY] = cached
    assert isinstance(cached, bytes)
    return cached
