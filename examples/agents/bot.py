"""A Microsoft 365 Agents SDK bot with escalator's middleware, talked to through the SDK's
TestAdapter (no Azure set-up needed). Run `escalator serve` first, then:

    python examples/agents/bot.py

In a hosted bot, add the middleware to the adapter the same way (`adapter.use(...)`)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any, cast

from microsoft_agents.activity import ActivityTypes
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.testing import TestAdapter

from escalator.integrations.agents_sdk import EscalatorMiddleware
from escalator.integrations.client import EscalatorClient
from escalator.integrations.ids import IdMapper

parser = argparse.ArgumentParser()
parser.add_argument("--conversation", default="Ak3sFw1ZpX2F7eBZJ8p1kT-us|livechat")
args = parser.parse_args()


async def bot(context: TurnContext) -> None:
    """The bot's own logic: here, one answer to everything."""
    await context.send_activity("Your parcel arrives on Tuesday.")


async def main() -> None:
    client = EscalatorClient(os.environ.get("ESCALATOR_URL", "http://127.0.0.1:8080"),
                             ids=IdMapper(prefix="agents"))
    adapter = TestAdapter(conversation=TestAdapter.create_conversation_model(
        channel_id="webchat", conv_id=args.conversation))
    adapter.use(EscalatorMiddleware(client))
    for text in ["where is my parcel?", "I want to talk to a human"]:
        await adapter.send_text_to_bot(text, bot)
        for reply in adapter.activity_queue:
            if reply.type == ActivityTypes.event:
                handoff = cast(dict[str, Any], reply.value)  # the middleware's handoff event
                print("event", reply.name, handoff["queue"], handoff["urgency"])
            else:
                print("message", reply.text)
        adapter.activity_queue.clear()


asyncio.run(main())
