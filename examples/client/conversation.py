"""A conversation through the Python client: a calm turn stays with the bot, a request for a
person routes. Run `escalator serve` first, then: python examples/client/conversation.py"""

from __future__ import annotations

import argparse
import os

from escalator.integrations.client import EscalatorClient, Turn

parser = argparse.ArgumentParser()
parser.add_argument("--conversation", default="whatsapp:+14155550100")
args = parser.parse_args()

client = EscalatorClient(os.environ.get("ESCALATOR_URL", "http://127.0.0.1:8080"),
                         api_key=os.environ.get("ESCALATOR_API_KEY"))
for number, text in enumerate(["Hi, where is my parcel?", "I want to talk to a person"], 1):
    decision = client.decide(Turn(args.conversation, f"t-{number}", text=text,
                                  channel="whatsapp", tier="gold"))
    handoff = decision.handoff
    print(decision.decision, decision.decisive_rule, decision.conversation_id,
          handoff.queue if handoff else "-", handoff.urgency if handoff else "-")
