"""Rasa custom action: ask escalator about the latest customer message, pause for a person.

In the action server's actions package (`rasa run actions`), importing the class is
enough for the SDK to register it:

    from escalator.integrations.rasa import EscalatorAction  # "action_escalator_check"

It reads escalator's address from ESCALATOR_URL (and ESCALATOR_API_KEY,
ESCALATOR_TIMEOUT, ESCALATOR_FAIL_POLICY, ESCALATOR_ID_KEY), or takes a client:
`executor.register_action(EscalatorAction(client=...))`. Run it after every customer
message you want judged, e.g. in a rule before the bot's answer, and at least on
`nlu_fallback`.

From the tracker it sends: the latest message's text, intent and confidence (Rasa's
`nlu_fallback` is an intent escalator already counts as not understood), the last bot
action before that message as the prompt id, whether that action was a fallback (a
fallback action, or an answer to a message whose intent was a fallback), the sender id
as the conversation, the message id as the turn id (the user event's timestamp when
Rasa sent none), and the input channel.

On `route_to_human` the action utters the handoff message (escalator's sentence as
text, and under `custom.handoff` the handoff for the channel connector: queue, urgency,
decision id, reasons and the brief when escalator sends one) and returns the
`ConversationPaused` event, so the bot stays silent while a person takes over. On
`keep_with_bot` it says nothing and returns no event.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from escalator.integrations.client import Decision, EscalatorClient, FailPolicy, Turn
from escalator.integrations.ids import IdMapper

ACTION_NAME = "action_escalator_check"
FALLBACK_INTENTS = frozenset({"nlu_fallback"})
FALLBACK_ACTIONS = frozenset({"action_default_fallback", "action_two_stage_fallback",
                              "utter_default", "utter_ask_rephrase", "action_default_ask_rephrase"})
# Actions that are not the bot talking to the customer.
_NOT_PROMPTS = frozenset({"action_listen", "action_session_start", "action_restart",
                          "action_unlikely_intent"})


def client_from_environment(environ: Mapping[str, str] = os.environ) -> EscalatorClient:
    """An EscalatorClient configured by ESCALATOR_URL, ESCALATOR_API_KEY, ESCALATOR_TIMEOUT,
    ESCALATOR_FAIL_POLICY and ESCALATOR_ID_KEY, hashing ids that do not fit as `rasa:h:...`."""
    key = environ.get("ESCALATOR_ID_KEY")
    return EscalatorClient(
        environ["ESCALATOR_URL"], api_key=environ.get("ESCALATOR_API_KEY") or None,
        timeout=float(environ.get("ESCALATOR_TIMEOUT", "2.0")),
        fail_policy=FailPolicy(environ.get("ESCALATOR_FAIL_POLICY", "keep_with_bot")),
        ids=IdMapper(prefix="rasa", key=key.encode() if key else None))


def _user_events(events: list[dict[str, Any]]) -> list[int]:
    """Indexes of the customer's messages in the tracker's events."""
    return [i for i, e in enumerate(events) if e.get("event") == "user"]


def _intent(event: Mapping[str, Any]) -> str | None:
    """The intent name of a user event."""
    parse = event.get("parse_data") or {}
    name = (parse.get("intent") or {}).get("name")
    return name if isinstance(name, str) else None


class EscalatorAction(Action):  # type: ignore[misc]
    """Sends the latest customer message to escalator; pauses the bot for a person."""

    def __init__(self, client: EscalatorClient | None = None, *, action_name: str = ACTION_NAME,
                 channel: str | None = None, tier_slot: str | None = "customer_tier",
                 fallback_intents: frozenset[str] = FALLBACK_INTENTS,
                 fallback_actions: frozenset[str] = FALLBACK_ACTIONS) -> None:
        self._client = client
        self.action_name = action_name
        self.channel = channel
        self.tier_slot = tier_slot
        self.fallback_intents = fallback_intents
        self.fallback_actions = fallback_actions

    def name(self) -> str:
        """The action's name in the domain."""
        return self.action_name

    @property
    def client(self) -> EscalatorClient:
        """The client given, or one from the environment (built at first use)."""
        if self._client is None:
            self._client = client_from_environment()
        return self._client

    def turn(self, tracker: Tracker) -> Turn | None:
        """The escalator turn of the tracker's latest message (None if there is none)."""
        latest = tracker.latest_message or {}
        intent = (latest.get("intent") or {})
        text = latest.get("text") or None
        if not (text and text.strip()) and not intent.get("name"):
            return None
        events = list(tracker.events or [])
        users = _user_events(events)
        last_user = users[-1] if users else len(events)
        prompt = None
        for event in reversed(events[:last_user]):
            if event.get("event") == "user":
                break
            name = event.get("name")
            if (event.get("event") == "action" and name not in _NOT_PROMPTS
                    and name != self.action_name):
                prompt = name
                break
        previous_user = events[users[-2]] if len(users) >= 2 else None
        fallback = (prompt in self.fallback_actions
                    or (previous_user is not None
                        and _intent(previous_user) in self.fallback_intents))
        turn_id = latest.get("message_id")
        if not turn_id and users:
            stamp = events[last_user].get("timestamp")
            turn_id = f"ts-{stamp}" if stamp is not None else f"n-{len(users)}"
        tier = tracker.get_slot(self.tier_slot) if self.tier_slot else None
        return Turn(conversation_id=tracker.sender_id, turn_id=str(turn_id or "n-0"),
                    text=text, intent=intent.get("name"),
                    intent_confidence=intent.get("confidence"), prompt_id=prompt,
                    fallback=fallback, tier=tier if isinstance(tier, str) else None,
                    channel=self.channel or tracker.get_latest_input_channel())

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        """Ask escalator (in a worker thread: the client blocks) and act on its decision."""
        turn = self.turn(tracker)
        if turn is None:
            return []
        decision = await asyncio.get_running_loop().run_in_executor(
            None, self.client.decide, turn)
        if not decision.route_to_human:
            return []
        self.utter_handoff(dispatcher, decision)
        return [ConversationPaused()]

    def utter_handoff(self, dispatcher: CollectingDispatcher, decision: Decision) -> None:
        """The handoff message: escalator's sentence, and the handoff for the connector."""
        handoff = decision.handoff.payload() if decision.handoff else {}
        handoff.update(decision=decision.decision, decision_id=decision.decision_id,
                       reasons=[reason.rule for reason in decision.reasons],
                       source=decision.source)
        dispatcher.utter_message(text=handoff.get("customer_message") or None,
                                 json_message={"handoff": handoff})
