"""The Microsoft 365 Agents SDK middleware, driven by the SDK's own TestAdapter and TestFlow,
with activities in the shape channels send, end to end on escalator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from support.integrations import (
    Front,
    brief_of,
    conversation_state,
    fixture_json,
    require_extra,
)
from support.turns import SENT_TEXTS, sent_words_in

from escalator.integrations.client import EscalatorClient, Turn
from escalator.integrations.ids import IdMapper

require_extra("microsoft_agents.activity", "agents")
require_extra("microsoft_agents.hosting.core", "agents")
require_extra("microsoft_agents.testing", "agents")
from microsoft_agents.activity import Activity, ActivityTypes, Transcript  # noqa: E402
from microsoft_agents.hosting.core import TurnContext  # noqa: E402
from microsoft_agents.testing import TestAdapter, TestFlow  # noqa: E402

from escalator.integrations.agents_sdk import (  # noqa: E402
    DECISION_TRACE,
    HANDOFF_INITIATE,
    EscalatorMiddleware,
    with_turn,
)

BOT_REPLY = "Your parcel arrives on Tuesday."
IDS = IdMapper(prefix="agents")


def incoming(name: str, conversation: str | None = None) -> Activity:
    """A fixture activity (for a fresh conversation id when given)."""
    data = fixture_json(f"agents/{name}")
    if conversation is not None:
        data["conversation"]["id"] = conversation
    return Activity.model_validate(data)


def adapter_for(activity: Activity, client: EscalatorClient, **options: Any) -> TestAdapter:
    """The SDK's TestAdapter on the activity's own conversation, with the middleware."""
    adapter = TestAdapter(conversation=activity.get_conversation_reference())
    adapter.use(EscalatorMiddleware(client, **options))
    return adapter


async def bot(context: TurnContext) -> None:
    """The bot's own logic: it answers every message."""
    await context.send_activity(BOT_REPLY)


def run(build: Callable[[], TestFlow]) -> None:
    """Build the flow inside an event loop (TestFlow schedules its steps as tasks) and run it."""

    async def go() -> None:
        await build().start_test()

    asyncio.run(go())


@pytest.mark.parametrize("name", ["webchat_message.json", "teams_message.json"])
def test_every_fixture_is_an_activity_of_the_sdk_with_no_field_dropped(name: str) -> None:
    data = fixture_json(f"agents/{name}")
    parsed = Activity.model_validate(data)
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert set(data) <= set(dumped), set(data) - set(dumped)
    assert set(data["conversation"]) <= set(dumped["conversation"])
    assert parsed.type == ActivityTypes.message and parsed.text


def check_handoff_event(reply: Activity, customer: Activity) -> dict[str, Any]:
    """The handoff.initiate event as the Bot Framework handoff protocol shapes it; its value."""
    # As the SDK's connector client puts it on the wire, and as a channel reads it back.
    Activity.model_validate(reply.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    assert reply.type == ActivityTypes.event and reply.name == HANDOFF_INITIATE
    assert reply.conversation is not None and customer.conversation is not None
    assert reply.conversation.id == customer.conversation.id
    # Sending stamps the bot as sender; the customer's side is in relatesTo.
    assert reply.relates_to is not None and reply.reply_to_id == customer.id
    assert reply.relates_to.user is not None and customer.from_property is not None
    assert reply.relates_to.user.id == customer.from_property.id
    [attachment] = reply.attachments or []
    assert (attachment.name, attachment.content_type) == ("Transcript", "application/json")
    transcript = Transcript.model_validate(attachment.content)
    [trace] = transcript.activities
    assert trace.type == ActivityTypes.trace and trace.name == DECISION_TRACE
    assert trace.value["decision"] == "route_to_human"
    # No customer text in what goes to the agent hub.
    assert (customer.text or "") not in reply.model_dump_json()
    value: dict[str, Any] = reply.value
    return value


def test_a_request_for_a_person_hands_over_and_the_bot_does_not_answer(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    customer = incoming("webchat_message.json")
    platform_ids(IDS("Ak3sFw1ZpX2F7eBZJ8p1kT-us|livechat"))
    adapter = adapter_for(customer, EscalatorClient(escalator_url, ids=IDS))
    values: list[dict[str, Any]] = []

    def handoff(reply: Activity) -> None:
        values.append(check_handoff_event(reply, customer))

    run(lambda: TestFlow(adapter, bot).send(customer)
        .assert_reply(lambda reply: None if reply.text and reply.text != BOT_REPLY
                      else pytest.fail(f"not escalator's sentence: {reply.text!r}"))
        .assert_reply(handoff)
        .assert_no_more_replies())
    [value] = values
    assert value["queue"] and value["urgency"] and len(value["decision_id"]) == 32
    assert value["reasons"][0] == "explicit-human-request"


def test_a_calm_message_reaches_the_bot(escalator_url: str,
                                        platform_ids: Callable[[str], str]) -> None:
    customer = incoming("teams_message.json")
    assert customer.conversation is not None
    mapped = platform_ids(IDS(customer.conversation.id))
    adapter = adapter_for(customer, EscalatorClient(escalator_url, ids=IDS))
    run(lambda: TestFlow(adapter, bot).send(customer).assert_reply(BOT_REPLY)
        .assert_no_more_replies())
    state = conversation_state(escalator_url, mapped)
    # The Teams id (over 128 characters) reached escalator hashed.
    assert state is not None and state["turn_index"] == 1


def test_what_the_bot_knows_can_be_added_to_the_turn(escalator_url: str,
                                                     platform_ids: Callable[[str], str]) -> None:
    customer = incoming("teams_message.json", conversation="a:1AbC" + "x" * 12)
    platform_ids("a:1AbC" + "x" * 12)

    def describe(context: TurnContext, turn: Turn) -> Turn:
        return with_turn(turn, intent="talk_to_agent", intent_confidence=0.91, tier="gold")

    adapter = adapter_for(customer, EscalatorClient(escalator_url, ids=IDS), describe=describe)
    values: list[dict[str, Any]] = []
    run(lambda: TestFlow(adapter, bot).send(customer).assert_reply(lambda reply: None)
        .assert_reply(lambda reply: values.append(check_handoff_event(reply, customer)))
        .assert_no_more_replies())
    assert values[0]["reasons"][0] == "explicit-human-request"  # by the NLU intent


def test_the_handoff_brief_is_in_the_event_value(escalator_url: str,
                                                 platform_ids: Callable[[str], str]) -> None:
    customer = incoming("webchat_message.json", conversation="brief-" + "y" * 8 + "|livechat")
    platform_ids(IDS("brief-" + "y" * 8 + "|livechat"))
    middleware = EscalatorMiddleware(EscalatorClient(escalator_url, ids=IDS))
    turn = middleware.turn(TurnContext(TestAdapter(), customer))
    assert turn is not None
    real = middleware.client.decide(turn)
    with Front(None, ["canned"], canned=real.body()) as front:
        adapter = adapter_for(customer, EscalatorClient(front.url, ids=IDS))
        values: list[dict[str, Any]] = []
        run(lambda: TestFlow(adapter, bot).send(customer).assert_reply(lambda reply: None)
            .assert_reply(lambda reply: values.append(check_handoff_event(reply, customer))))
    assert values[0]["brief"] == brief_of(real.body())


def test_activities_that_are_not_customer_messages_pass_through(escalator_url: str) -> None:
    adapter = TestAdapter()
    adapter.use(EscalatorMiddleware(EscalatorClient(escalator_url)))
    typing = Activity(type=ActivityTypes.typing)
    run(lambda: TestFlow(adapter, bot).send(typing).assert_reply(BOT_REPLY))


def test_no_brief_the_agent_hub_gets_holds_a_word_the_customer_wrote(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    conversation = "words-" + "z" * 8 + "|livechat"
    platform_ids(IDS(conversation))
    first = incoming("webchat_message.json", conversation=conversation)
    # One adapter for the conversation: it numbers the activities, which are the turn ids.
    adapter = adapter_for(first, EscalatorClient(escalator_url, ids=IDS))
    replies: list[Activity] = []
    for text in SENT_TEXTS:
        customer = incoming("webchat_message.json", conversation=conversation)
        customer.text = text
        run(lambda customer=customer: TestFlow(adapter, bot).send(customer)
            .assert_reply(lambda reply: replies.append(reply)))
        while (more := adapter.get_next_reply()) is not None:  # a handoff's second reply
            replies.append(more)
    handoffs = [r for r in replies if r.type == ActivityTypes.event]
    assert handoffs, replies
    value = handoffs[-1].value
    assert value["source"] == "escalator" and value["brief"]["why"]["decisive"], value
    dumped = [r.model_dump(by_alias=True, exclude_unset=True, mode="json") for r in replies]
    assert sent_words_in(dumped) == []
