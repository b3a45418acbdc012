"""The shape of a rule file (marshmallow): its top-level keys, each rule, and a rule's `then`
(or the set's `default`). Conditions (`when`) are checked by escalator.ruleset.typecheck."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from escalator.model import HANDOFF_URGENCIES, KEEP, ROUTE
from escalator.ruleset.messages import LANGUAGE_CODE, MessagesField
from escalator.ruleset.model import MAX_PRIORITY
from escalator.validators import Exactly

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"

# Error messages are completed as "'<key>' <message>", so they read as plain sentences.

def _text(required: bool = False, max_length: int = 2000, **kwargs: Any) -> fields.String:
    return fields.String(
        required=required,
        validate=validate.Length(min=1, max=max_length,
                                 error=f"must be between 1 and {max_length} characters"),
        error_messages={"required": "is missing", "invalid": "must be text (put it in quotes)",
                        "null": "is empty"},
        **kwargs,
    )


_URGENCY_ERROR = "must be one of: " + ", ".join(HANDOFF_URGENCIES)
# `priority` under then/default is what `urgency` was called before it was told apart from
# a rule's priority (its rank): still read, with a warning.
OLD_URGENCY = "priority"


class OutcomeSchema(Schema):
    """`then:` of a rule, and the set's `default:`."""

    OLD_NAMES = (OLD_URGENCY,)

    decision = fields.String(
        required=True,
        validate=validate.OneOf([ROUTE, KEEP], error=f"must be {ROUTE} or {KEEP}"),
        error_messages={"required": f"is missing (write {ROUTE} or {KEEP})",
                        "invalid": f"must be {ROUTE} or {KEEP}", "null": "is empty"},
    )
    queue = fields.String(
        validate=Exactly(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                                 error="must be a queue name: letters, digits, - _ . :"),
        error_messages={"invalid": "must be text", "null": "is empty"},
    )
    urgency = fields.String(
        validate=validate.OneOf(HANDOFF_URGENCIES, error=_URGENCY_ERROR),
        error_messages={"invalid": _URGENCY_ERROR, "null": "is empty"},
    )
    priority = fields.String(
        validate=validate.OneOf(HANDOFF_URGENCIES, error=_URGENCY_ERROR),
        error_messages={"invalid": _URGENCY_ERROR, "null": "is empty"},
    )
    customer_message = MessagesField(error_messages={"null": "is empty"})

    @validates_schema
    def _one_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "urgency" in data and OLD_URGENCY in data:
            raise ValidationError("is the old name of 'urgency'; write only urgency",
                                  OLD_URGENCY)

    @post_load
    def _new_name(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if OLD_URGENCY in data:
            data["urgency"] = data.pop(OLD_URGENCY)
        return data


class RuleSchema(Schema):
    """One entry of `rules:`; `when` is checked by the condition parser."""

    id = fields.String(
        required=True,
        validate=Exactly(
            RULE_ID_PATTERN,
            error="must be 1-64 lower-case letters, digits and dashes, "
                  "starting with a letter or digit (e.g. explicit-human-request)"),
        error_messages={"required": "is missing", "invalid": "must be text", "null": "is empty"},
    )
    description = _text(required=True, max_length=500)
    priority = fields.Integer(
        required=True, strict=True,
        validate=validate.Range(min=0, max=MAX_PRIORITY,
                                error=f"must be a whole number from 0 to {MAX_PRIORITY}"),
        error_messages={"required": f"is missing (a whole number from 0 to {MAX_PRIORITY}; "
                                    "higher wins)",
                        "invalid": f"must be a whole number from 0 to {MAX_PRIORITY}",
                        "null": "is empty"},
    )
    when = fields.Raw(required=True, error_messages={"required": "is missing", "null": "is empty"})
    then = fields.Nested(OutcomeSchema, required=True,
                         error_messages={"required": "is missing", "null": "is empty"})


class InProgressSchema(Schema):
    """`handoff_in_progress:`: what a conversation already with a person is told."""

    customer_message = MessagesField(required=True, error_messages={
        "required": "is missing", "null": "is empty"})


class RuleFileSchema(Schema):
    """A rule file's top level; `rules` entries are checked one by one by RuleSchema."""

    ruleset = fields.String(
        validate=Exactly(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                 error="must be a short name: letters, digits, - _ ."),
        error_messages={"invalid": "must be text", "null": "is empty"},
    )
    version = _text(max_length=64)
    default_language = fields.String(
        validate=Exactly(LANGUAGE_CODE.pattern, error="must be a lower-case language code "
                                                     "such as en, es, de, fr, pt"),
        error_messages={"invalid": "must be a language code such as en", "null": "is empty"},
    )
    default = fields.Nested(OutcomeSchema, error_messages={"null": "is empty"})
    handoff_in_progress = fields.Nested(InProgressSchema, error_messages={"null": "is empty"})
    rules = fields.List(fields.Raw(), error_messages={
        "invalid": "must be a list of rules (each starting with '- id: ...')", "null": "is empty"})
