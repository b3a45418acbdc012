"""Microsoft 365 Agents SDK middleware: escalator judges each incoming message activity.

    adapter.use(EscalatorMiddleware(EscalatorClient(url, api_key=key,
                                                    ids=IdMapper(prefix="agents"))))

For every incoming `message` activity with text it sends escalator one turn: the text,
`locale` as language, `channelId` as channel, `conversation.id` as the conversation
(`a:1AbC|livechat` and other ids escalator refuses are hashed by the client's IdMapper)
and the activity `id` as the turn id, so a channel's redelivery of one activity counts
once. The SDK has no NLU of its own: `describe` may add what the bot knows (intent and
confidence, the prompt it last sent, whether that was a fallback, the customer's tier).

On `route_to_human` it sends escalator's sentence to the customer, then the
`handoff.initiate` event activity in the form of the Bot Framework handoff protocol
(the SDK's HandoffEventFactory in .NET): `value` carries the handoff for the agent hub
(queue, urgency, decision id, reasons and, when escalator sends one, the `brief`), and
an attachment named "Transcript" (`application/json`) carries the decision as a
transcript of one trace activity (labels and numbers, never the customer's text). The
bot's own logic does not run for that turn. On `keep_with_bot` the turn goes on
untouched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from microsoft_agents.activity import Activity, ActivityTypes, Attachment, Transcript
from microsoft_agents.hosting.core import TurnContext

from escalator.integrations.client import Decision, EscalatorClient, Turn

HANDOFF_INITIATE = "handoff.initiate"
TRANSCRIPT = "Transcript"
DECISION_TRACE = "escalator.decision"

Describe = Callable[[TurnContext, Turn], Turn]


class EscalatorMiddleware:
    """Agents SDK middleware: asks escalator first, hands over instead of the bot's reply."""

    def __init__(self, client: EscalatorClient, *, describe: Describe | None = None) -> None:
        self.client = client
        self.describe = describe

    def turn(self, context: TurnContext) -> Turn | None:
        """The escalator turn of the incoming activity (None: not a customer message)."""
        activity = context.activity
        if activity.type != ActivityTypes.message or not (activity.text or "").strip():
            return None
        conversation = activity.conversation.id if activity.conversation else None
        if not conversation:
            return None
        turn = Turn(conversation_id=conversation,
                    turn_id=activity.id or f"ts-{activity.timestamp}",
                    text=activity.text, language=activity.locale,
                    channel=str(activity.channel_id) if activity.channel_id else None)
        return self.describe(context, turn) if self.describe else turn

    async def on_turn(self, context: TurnContext,
                      logic: Callable[[TurnContext], Awaitable[Any]]) -> None:
        """Decide the turn; hand over (and stop) on route_to_human, else run the bot."""
        turn = self.turn(context)
        if turn is None:
            await logic(context)
            return
        decision = await asyncio.get_running_loop().run_in_executor(
            None, self.client.decide, turn)
        if not decision.route_to_human:
            await logic(context)
            return
        message = decision.handoff.customer_message if decision.handoff else ""
        if message:
            await context.send_activity(message)
        await context.send_activity(handoff_initiation(context.activity, decision))


def handoff_value(decision: Decision) -> dict[str, Any]:
    """The agent hub's handoff context: the handoff (with its brief), decision id, reasons."""
    value = decision.handoff.payload() if decision.handoff else {}
    value.update(decision=decision.decision, decision_id=decision.decision_id,
                 reasons=[reason.rule for reason in decision.reasons], source=decision.source)
    return value


def decision_transcript(activity: Activity, decision: Decision) -> Transcript:
    """The decision as a transcript of one trace activity (no customer text in it)."""
    trace = Activity.model_validate({
        "type": ActivityTypes.trace, "name": DECISION_TRACE, "label": "escalator decision",
        "value_type": "application/json", "value": decision.body() or handoff_value(decision),
        "timestamp": datetime.now(UTC), "conversation": activity.conversation,
        "channel_id": activity.channel_id, **_reply_to(activity)})
    return Transcript(activities=[trace])


def handoff_initiation(activity: Activity, decision: Decision) -> Activity:
    """The `handoff.initiate` event for the incoming activity, as the Bot Framework
    handoff protocol defines it: from the customer, relating to their conversation."""
    return Activity.model_validate({
        "type": ActivityTypes.event, "name": HANDOFF_INITIATE, "value": handoff_value(decision),
        "id": str(uuid.uuid1()), "timestamp": datetime.now(UTC),
        "conversation": activity.conversation, "from_property": activity.from_property,
        "relates_to": activity.get_conversation_reference(), **_reply_to(activity),
        "service_url": activity.service_url, "channel_id": activity.channel_id,
        "attachments": [Attachment(content_type="application/json", name=TRANSCRIPT,
                                   content=decision_transcript(activity, decision))],
        "entities": []})


def _reply_to(activity: Activity) -> dict[str, str]:
    """reply_to_id for an activity answering this one, when it has an id."""
    return {"reply_to_id": activity.id} if activity.id else {}


def with_turn(turn: Turn, **changes: Any) -> Turn:
    """A copy of the turn with changes: for `describe` callbacks."""
    return replace(turn, **changes)
