"""The rule form and the playground form: what a page posts, turned into rules and turns.

Values are converted by the fact's type only as far as the form can tell (a number field
holding "abc" stays text): whether the result is a valid rule is for the checker of
`escalator rules check` to say, in its own words, next to the row it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from escalator.studio.engine import (
    CONTEXT_PREFIX,
    EXPLANATIONS,
    FACTS,
    HANDOFF_URGENCIES,
    KEEP,
    KNOWN_CHANNELS,
    OPERATORS_BY_TYPE,
    ROUTE,
    lookup,
)

# How operators read in the form's menu.
OPERATOR_LABELS = {
    "eq": "is", "ne": "is not", "lt": "is below", "lte": "is at most", "gt": "is above",
    "gte": "is at least", "in": "is one of (a, b, ...)", "not_in": "is none of (a, b, ...)",
    "contains": "includes", "is": "is (yes/no)",
}


@dataclass
class Row:
    """One condition of the form: fact, operator, value as typed."""

    fact: str = ""
    op: str = ""
    value: str = ""


@dataclass
class RuleForm:
    """A rule as the form shows it; `flat` is False when its conditions are nested (they
    are then edited as YAML, and the form keeps them as they are)."""

    id: str = ""
    description: str = ""
    priority: str = "50"
    match: str = "all"
    rows: list[Row] = field(default_factory=list)
    decision: str = ROUTE
    queue: str = ""
    urgency: str = ""
    message: str = ""
    flat: bool = True


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    return "" if value is None else str(value)


def form_of(raw: Mapping[str, Any], language: str) -> RuleForm:
    """The form of a rule as written in its file."""
    then = raw.get("then") if isinstance(raw.get("then"), dict) else {}
    assert isinstance(then, dict)
    form = RuleForm(id=str(raw.get("id", "")), description=str(raw.get("description", "")),
                    priority=_shown(raw.get("priority")),
                    decision=str(then.get("decision", ROUTE)),
                    queue=str(then.get("queue") or ""),
                    urgency=str(then.get("urgency") or then.get("priority") or ""))
    message = then.get("customer_message")
    if isinstance(message, str):
        form.message = message
    elif isinstance(message, dict):
        form.message = str(message.get(language, ""))
    when = raw.get("when")
    leaves: list[Any] | None = None
    if isinstance(when, dict) and "fact" in when:
        leaves = [when]
    elif isinstance(when, dict) and len(when) == 1 and ("all" in when or "any" in when):
        form.match = "all" if "all" in when else "any"
        items = when[form.match]
        if isinstance(items, list) and all(isinstance(i, dict) and "fact" in i for i in items):
            leaves = items
    if leaves is None:
        form.flat = False
        return form
    for leaf in leaves:
        ops = [key for key in leaf if key != "fact"]
        op = ops[0] if ops else ""
        form.rows.append(Row(str(leaf.get("fact", "")), op, _shown(leaf.get(op))))
    return form


def read_form(data: Mapping[str, str]) -> RuleForm:
    """The rule form as posted (rows named fact-N, op-N, value-N; empty rows dropped)."""
    form = RuleForm(id=data.get("id", "").strip(), description=data.get("description", "").strip(),
                    priority=data.get("priority", "").strip(),
                    match=data.get("match", "all") if data.get("match") in ("all", "any")
                    else "all",
                    decision=data.get("decision", ROUTE), queue=data.get("queue", "").strip(),
                    urgency=data.get("urgency", "").strip(),
                    message=data.get("message", "").strip(),
                    flat=data.get("flat", "1") == "1")
    numbers = sorted({int(key.split("-", 1)[1]) for key in data
                      if key.startswith("fact-") and key.split("-", 1)[1].isdigit()})
    for number in numbers:
        row = Row(data.get(f"fact-{number}", "").strip(), data.get(f"op-{number}", "").strip(),
                  data.get(f"value-{number}", "").strip())
        if row.fact or row.value:
            form.rows.append(row)
    return form


def _scalar(text: str) -> Any:
    """A typed value read as YAML reads it (3 -> 3, true -> true, gold -> 'gold')."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _value(fact: str, op: str, text: str) -> Any:
    spec = lookup(fact)
    kind = spec.type if spec is not None else "scalar"
    if op in ("in", "not_in"):
        return [_one(kind, part.strip()) for part in text.split(",") if part.strip()]
    return _one(kind, text)


def _one(kind: str, text: str) -> Any:
    if kind in ("string", "labels"):
        return text
    return _scalar(text)


def rule_of(form: RuleForm, raw: Mapping[str, Any] | None, language: str) -> dict[str, Any]:
    """The rule the form describes, keeping what the form does not show (the nested
    conditions of a rule edited as YAML, messages in other languages)."""
    rule: dict[str, Any] = {"id": form.id, "description": form.description}
    priority = _scalar(form.priority) if form.priority else None
    rule["priority"] = priority
    if form.flat:
        leaves = [{"fact": row.fact, row.op or "eq": _value(row.fact, row.op, row.value)}
                  for row in form.rows]
        rule["when"] = {form.match: leaves}
    else:
        rule["when"] = (raw or {}).get("when")
    then: dict[str, Any] = {"decision": form.decision}
    old_then = (raw or {}).get("then")
    old_message = old_then.get("customer_message") if isinstance(old_then, dict) else None
    if form.decision == ROUTE:
        if form.queue:
            then["queue"] = form.queue
        if form.urgency:
            then["urgency"] = form.urgency
        if isinstance(old_message, dict):
            message = dict(old_message)
            if form.message:
                message[language] = form.message
            else:
                message.pop(language, None)
            if message:
                then["customer_message"] = message
        elif form.message:
            then["customer_message"] = {language: form.message}
    rule["then"] = then
    return rule


def fact_choices() -> list[tuple[str, str, str]]:
    """(name, type, description) of every fact a rule can test, in catalogue order."""
    return [(spec.name, spec.type, spec.doc) for spec in FACTS.values()
            if spec.name not in EXPLANATIONS]


def operators_for(fact: str) -> list[str]:
    """The operators a fact can be compared with."""
    spec = lookup(fact)
    return list(OPERATORS_BY_TYPE[spec.type]) if spec else list(OPERATOR_LABELS)


def vocabularies(topics: set[str], cues: set[str], languages: set[str],
                 channels: set[str], tiers: set[str], segments: set[str]
                 ) -> dict[str, list[str]]:
    """The values each fact with a closed (or seen) vocabulary can take, for the form."""
    return {
        "complexity.topics": sorted(topics),
        "frustration.cues": sorted(cues),
        "message.language": sorted(languages | {"und"}),
        "channel": sorted(channels | KNOWN_CHANNELS),
        "customer.tier": sorted(tiers),
        "customer.segment": sorted(segments),
        "requested_human": ["true", "false"],
        "conversation.escalated": ["true", "false"],
    }


# ---------------------------------------------------------------- the playground


@dataclass
class TurnRow:
    """One turn of the playground as typed."""

    text: str = ""
    intent: str = ""
    prompt: str = ""
    fallback: bool = False
    channel: str = ""
    tier: str = ""
    context: str = ""


def read_turns(data: Mapping[str, str]) -> list[TurnRow]:
    """The playground's rows as posted (text-N, intent-N, ...), empty ones dropped."""
    numbers = sorted({int(key.split("-", 1)[1]) for key in data
                      if key.startswith("text-") and key.split("-", 1)[1].isdigit()})
    rows = []
    for n in numbers:
        row = TurnRow(data.get(f"text-{n}", ""), data.get(f"intent-{n}", "").strip(),
                      data.get(f"prompt-{n}", "").strip(), data.get(f"fallback-{n}") == "on",
                      data.get(f"channel-{n}", "").strip(), data.get(f"tier-{n}", "").strip(),
                      data.get(f"context-{n}", "").strip())
        if row.text.strip() or row.intent:
            rows.append(row)
    return rows


def turn_request(row: TurnRow) -> dict[str, Any]:
    """A playground row as the turns API takes it (checked by the API's own schema)."""
    message: dict[str, Any] = {}
    if row.text.strip():
        message["text"] = row.text
    if row.intent:
        message["intent"] = row.intent
    turn: dict[str, Any] = {"message": message}
    if row.prompt or row.fallback:
        turn["bot"] = {k: v for k, v in (("prompt_id", row.prompt or None),
                                         ("fallback", row.fallback)) if v}
    if row.channel:
        turn["channel"] = row.channel
    if row.tier:
        turn["customer"] = {"tier": row.tier}
    if row.context:
        context: dict[str, Any] = {}
        for part in row.context.split(","):
            key, _, value = part.partition("=")
            if key.strip():
                context[key.strip()] = _scalar(value.strip())
        turn["context"] = context
    return turn


def rows_of(turns: list[Mapping[str, Any]]) -> list[TurnRow]:
    """Turn requests (a pasted transcript) as playground rows."""
    rows = []
    for turn in turns:
        message = turn.get("message") or {}
        bot = turn.get("bot") or {}
        customer = turn.get("customer") or {}
        context = turn.get("context") or {}
        rows.append(TurnRow(
            str(message.get("text") or ""), str(message.get("intent") or ""),
            str(bot.get("prompt_id") or ""), bool(bot.get("fallback")),
            str(turn.get("channel") or ""), str(customer.get("tier") or ""),
            ", ".join(f"{k}={_shown(v)}" for k, v in context.items())))
    return rows


def context_fact(key: str) -> str:
    """The fact a context key becomes."""
    return CONTEXT_PREFIX + key


__all__ = ["HANDOFF_URGENCIES", "KEEP", "OPERATOR_LABELS"]
