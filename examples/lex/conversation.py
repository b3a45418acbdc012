"""Two turns of an Amazon Lex V2 bot through the code hook, as Lex would call the Lambda
function. Run `escalator serve` first, then: python examples/lex/conversation.py

The first turn goes back to Lex (Delegate); the second closes the dialog with the intent
an Amazon Connect flow transfers on, and the escalator_* session attributes."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

from escalator.integrations import lex

parser = argparse.ArgumentParser()
parser.add_argument("--session", default="417145722301937")
args = parser.parse_args()
os.environ.setdefault("ESCALATOR_URL", "http://127.0.0.1:8080")


def event(text: str, intent: str, confidence: float, attributes: dict[str, str]) -> dict[str, Any]:
    """A Lex V2 dialog code hook event (the fields the hook reads, as Lex sends them)."""
    return {
        "messageVersion": "1.0", "invocationSource": "DialogCodeHook", "inputMode": "Text",
        "sessionId": args.session, "inputTranscript": text,
        "bot": {"id": "ABCDEFGHIJ", "name": "ShopSupport", "localeId": "en_US",
                "version": "DRAFT", "aliasId": "TSTALIASID", "aliasName": "TestBotAlias"},
        "interpretations": [{"intent": {"name": intent, "slots": {}, "state": "InProgress"},
                             "nluConfidence": confidence}],
        "proposedNextState": {"dialogAction": {"type": "ElicitSlot",
                                               "slotToElicit": "orderNumber"},
                              "intent": {"name": intent, "slots": {}}},
        "sessionState": {"sessionAttributes": attributes,
                         "intent": {"name": intent, "slots": {}, "state": "InProgress"},
                         "originatingRequestId": str(uuid.uuid4())},
    }


attributes: dict[str, str] = {}
for text, intent, confidence in [("where is my order", "OrderStatus", 0.93),
                                 ("this is useless, I want an agent", "OrderStatus", 0.41)]:
    answer = lex.handler(event(text, intent, confidence, attributes), None)
    state = answer["sessionState"]
    attributes = state["sessionAttributes"]
    print(json.dumps({"dialogAction": state["dialogAction"]["type"],
                      "intent": state.get("intent", {}).get("name"),
                      "queue": attributes.get("escalator_queue"),
                      "urgency": attributes.get("escalator_urgency"),
                      "message": (answer.get("messages") or [{}])[0].get("content")}))
