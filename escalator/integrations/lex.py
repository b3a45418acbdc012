"""Amazon Lex V2 code hook: ask escalator on every turn, hand over through Amazon Connect.

Deployed as the bot's Lambda function (`escalator.integrations.lex.handler`, configured
by environment variables) or used in-process around a Lambda handler of your own:

    hook = LexHook(EscalatorClient(url, api_key=key), next_handler=my_handler)
    def lambda_handler(event, context): return hook(event, context)

For each event it sends escalator one turn: `inputTranscript` as text, the top
interpretation's intent and `nluConfidence` (a number, or `{"score": x}` as the runtime
API writes it), `bot.localeId` as language, `sessionId` as the conversation and
`sessionState.originatingRequestId` as the turn id (ids are made valid by the
client's IdMapper), so the dialog and fulfillment hooks
of one request, and Lambda's own retries, count as one turn. Lex's `sentimentResponse`
goes into the turn's context (`lex_sentiment`, `lex_negative`) for rules to use.

What the bot asked and whether its reply was a fallback are known only after the
turn, so the hook keeps them in session attributes for the next one: the prompt is
the `proposedNextState` (intent and slot elicited, or ConfirmIntent / ElicitIntent),
and a turn whose intent
was `FallbackIntent` makes the next turn's `bot.fallback` true.

On `route_to_human` the dialog is closed, fulfilled, with the intent the Amazon Connect
flow transfers on (`TransferToAgent` by default: it must exist in the bot), the
customer sentence as the message, and session attributes `escalator_decision`,
`escalator_queue`, `escalator_urgency`, `escalator_decision_id`, `escalator_rule` and,
when escalator sends one, `escalator_brief` (the handoff brief as compact JSON, kept
within `BRIEF_MAX_CHARS`). On `keep_with_bot` the next handler answers (or Lex, with
`Delegate`), and nothing but the hook's own attributes changes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from escalator.integrations.client import Decision, EscalatorClient, FailPolicy, Turn, thaw
from escalator.integrations.ids import IdMapper

log = logging.getLogger("escalator.lex")

HANDOFF_INTENT = "TransferToAgent"
FALLBACK_INTENTS = frozenset({"FallbackIntent"})
ATTRIBUTE_PREFIX = "escalator_"
# A session attribute value defined on a bot is limited to 1,024 characters, and the
# session attributes of a Lambda answer to 12 KB in all: the brief is kept to the first.
BRIEF_MAX_CHARS = 1024

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def confidence(interpretation: Mapping[str, Any]) -> float | None:
    """An interpretation's NLU confidence, written as a number or as {"score": x}."""
    raw = interpretation.get("nluConfidence")
    if isinstance(raw, Mapping):
        raw = raw.get("score")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    return None


def fit_brief(brief: Mapping[str, Any], max_chars: int = BRIEF_MAX_CHARS) -> str | None:
    """The brief as compact JSON of at most max_chars: its longest lists are shortened
    from the end (the oldest labels go first) until it fits; None if it cannot."""
    data = thaw(brief)

    def encoded() -> str:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    def lists(node: Any) -> list[list[Any]]:
        found: list[list[Any]] = []
        if isinstance(node, dict):
            for value in node.values():
                found.extend(lists(value))
        elif isinstance(node, list):
            if node:
                found.append(node)
            for value in node:
                found.extend(lists(value))
        return found

    text = encoded()
    while len(text) > max_chars:
        candidates = lists(data)
        if not candidates:
            return None
        max(candidates, key=lambda items: len(json.dumps(items))).pop()
        text = encoded()
    return text


class LexHook:
    """A Lex V2 code hook that asks escalator first, then closes for a transfer or goes on."""

    def __init__(self, client: EscalatorClient, *, next_handler: LambdaHandler | None = None,
                 handoff_intent: str = HANDOFF_INTENT, channel: str = "lex",
                 fallback_intents: frozenset[str] = FALLBACK_INTENTS,
                 prefix: str = ATTRIBUTE_PREFIX, brief_max_chars: int = BRIEF_MAX_CHARS
                 ) -> None:
        self.client = client
        self.next_handler = next_handler
        self.handoff_intent = handoff_intent
        self.channel = channel
        self.fallback_intents = fallback_intents
        self.prefix = prefix
        self.brief_max_chars = brief_max_chars

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """The Lambda answer to one Lex V2 event."""
        turn = self.turn(event)
        if turn is None:
            return self._go_on(event, context, self._carry(event))
        decision = self.client.decide(turn)
        carried = self._carry(event)
        if decision.route_to_human:
            return self.handoff(event, decision, carried)
        return self._go_on(event, context, carried)

    def turn(self, event: Mapping[str, Any]) -> Turn | None:
        """The escalator turn of a Lex V2 event (None when it has neither text nor intent)."""
        state = event.get("sessionState") or {}
        attributes = state.get("sessionAttributes") or {}
        interpretations = event.get("interpretations") or []
        top = interpretations[0] if interpretations else {}
        intent = (top.get("intent") or {}).get("name") or (state.get("intent") or {}).get("name")
        text = event.get("inputTranscript") or None
        if not (text and text.strip()) and intent is None:
            return None
        turn_id = state.get("originatingRequestId") or self._counted_turn(attributes)
        context: dict[str, str | int | float | bool] = {}
        sentiment = top.get("sentimentResponse") or {}
        if sentiment.get("sentiment"):
            context["lex_sentiment"] = str(sentiment["sentiment"]).lower()
            score = (sentiment.get("sentimentScore") or {}).get("negative")
            if isinstance(score, int | float) and not isinstance(score, bool):
                context["lex_negative"] = round(float(score), 4)
        mode = event.get("inputMode")
        if mode:
            context["lex_input_mode"] = str(mode).lower()
        prompt = attributes.get(f"{self.prefix}prompt") or None
        fallback = attributes.get(f"{self.prefix}fallback")
        return Turn(
            conversation_id=str(event.get("sessionId") or ""),
            turn_id=str(turn_id), text=text, intent=intent,
            intent_confidence=confidence(top) if intent not in self.fallback_intents else None,
            language=(event.get("bot") or {}).get("localeId"), prompt_id=prompt,
            fallback=None if fallback is None else fallback == "true",
            channel=self.channel, context=context or None)

    def _counted_turn(self, attributes: Mapping[str, str]) -> str:
        """A turn id from the hook's own counter, for events without originatingRequestId."""
        try:
            count = int(attributes.get(f"{self.prefix}turns", "0"))
        except ValueError:
            count = 0
        return f"n-{count + 1}"

    def _carry(self, event: Mapping[str, Any]) -> dict[str, str]:
        """The session attributes with what the next turn needs to know of this one."""
        state = event.get("sessionState") or {}
        attributes = dict(state.get("sessionAttributes") or {})
        p = self.prefix
        if not state.get("originatingRequestId"):
            attributes[f"{p}turns"] = self._counted_turn(attributes)[2:]
        interpretations = event.get("interpretations") or []
        top = (interpretations[0].get("intent") or {}) if interpretations else {}
        attributes[f"{p}fallback"] = "true" if top.get("name") in self.fallback_intents else "false"
        proposed = event.get("proposedNextState") or {}
        action = proposed.get("dialogAction") or {}
        intent = (proposed.get("intent") or {}).get("name") or top.get("name")
        # Only a next step that asks the customer something is a prompt; after Delegate
        # or Close, Lex has not said yet what it will ask.
        kind = action.get("type")
        step = (action.get("slotToElicit") if kind == "ElicitSlot"
                else kind if kind in ("ConfirmIntent", "ElicitIntent") else None)
        if intent and step:
            attributes[f"{p}prompt"] = f"{intent}.{step}"
        else:
            attributes.pop(f"{p}prompt", None)
        return attributes

    def handoff(self, event: Mapping[str, Any], decision: Decision,
                attributes: dict[str, str]) -> dict[str, Any]:
        """The Lex answer that closes the dialog for Amazon Connect to transfer."""
        handoff = decision.handoff
        p = self.prefix
        attributes.update({
            f"{p}decision": decision.decision,
            f"{p}queue": handoff.queue if handoff else "",
            f"{p}urgency": handoff.urgency if handoff else "",
            f"{p}decision_id": decision.decision_id or "",
            f"{p}rule": decision.decisive_rule or "",
            f"{p}source": decision.source,
        })
        attributes.pop(f"{p}brief", None)
        if handoff is not None and handoff.brief is not None:
            fitted = fit_brief(handoff.brief, self.brief_max_chars)
            if fitted is None:
                log.warning("the handoff brief of %s does not fit a Lex session attribute",
                            decision.decision_id)
            else:
                attributes[f"{p}brief"] = fitted
        answer: dict[str, Any] = {
            "sessionState": {
                "sessionAttributes": attributes,
                "dialogAction": {"type": "Close"},
                "intent": {"name": self.handoff_intent, "state": "Fulfilled",
                           "confirmationState": "None", "slots": {}},
            },
        }
        if handoff is not None and handoff.customer_message:
            answer["messages"] = [{"contentType": "PlainText",
                                   "content": handoff.customer_message}]
        return answer

    def _go_on(self, event: dict[str, Any], context: Any,
               attributes: dict[str, str]) -> dict[str, Any]:
        """The answer on keep_with_bot: the next handler's (with the hook's attributes
        added), or Delegate, which lets Lex carry on as configured."""
        if self.next_handler is not None:
            state = dict(event.get("sessionState") or {})
            state["sessionAttributes"] = dict(attributes)
            answer = self.next_handler({**event, "sessionState": state}, context)
            answer.setdefault("sessionState", {})
            merged = dict(answer["sessionState"].get("sessionAttributes") or {})
            merged.update({k: v for k, v in attributes.items() if k.startswith(self.prefix)})
            answer["sessionState"]["sessionAttributes"] = {**attributes, **merged}
            return answer
        state = event.get("sessionState") or {}
        session: dict[str, Any] = {"sessionAttributes": attributes,
                                   "dialogAction": {"type": "Delegate"}}
        if state.get("intent"):
            session["intent"] = state["intent"]
        return {"sessionState": session}


_hook: LexHook | None = None


def hook_from_environment(environ: Mapping[str, str] = os.environ) -> LexHook:
    """A LexHook configured by ESCALATOR_URL, ESCALATOR_API_KEY, ESCALATOR_TIMEOUT,
    ESCALATOR_FAIL_POLICY (keep_with_bot or route_to_human), ESCALATOR_LEX_HANDOFF_INTENT
    and ESCALATOR_ID_KEY (a key for hashing session ids that do not fit)."""
    key = environ.get("ESCALATOR_ID_KEY")
    client = EscalatorClient(
        environ["ESCALATOR_URL"], api_key=environ.get("ESCALATOR_API_KEY") or None,
        timeout=float(environ.get("ESCALATOR_TIMEOUT", "2.0")),
        fail_policy=FailPolicy(environ.get("ESCALATOR_FAIL_POLICY", "keep_with_bot")),
        ids=IdMapper(prefix="lex", key=key.encode() if key else None))
    return LexHook(client, handoff_intent=environ.get("ESCALATOR_LEX_HANDOFF_INTENT",
                                                      HANDOFF_INTENT))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one hook per warm container, built from the environment."""
    global _hook
    if _hook is None:
        _hook = hook_from_environment()
    return _hook(event, context)
