"""Two customer messages sent to a running action server as Rasa sends them. Start
escalator (`escalator serve`) and the action server (see actions.py), then:

    python examples/rasa/conversation.py

The first message leaves the bot talking; the second pauses it with the handoff message."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import urllib3

parser = argparse.ArgumentParser()
parser.add_argument("--sender", default="3d1f0a2b-7c9e-4b8d-a6f2-0e1c5b9d4a77")
parser.add_argument("--action-server", default="http://127.0.0.1:5055")
args = parser.parse_args()

events: list[dict[str, Any]] = [
    {"event": "action", "name": "action_listen", "timestamp": time.time()}]
for text, intent, confidence in [("where is my order", "order_status", 0.96),
                                 ("useless. I want to talk to a real person", "complain", 0.71)]:
    message = {"text": text, "intent": {"name": intent, "confidence": confidence},
               "intent_ranking": [{"name": intent, "confidence": confidence}],
               "entities": [], "message_id": uuid.uuid4().hex, "metadata": {}}
    events.append({"event": "user", "timestamp": time.time(), "text": text,
                   "parse_data": message, "input_channel": "rest",
                   "message_id": message["message_id"], "metadata": {}})
    call = {"next_action": "action_escalator_check", "sender_id": args.sender, "version": "3.10.0",
            "tracker": {"sender_id": args.sender, "slots": {}, "latest_message": message,
                        "events": events, "paused": False, "followup_action": None,
                        "active_loop": {}, "latest_action_name": "action_listen",
                        "latest_input_channel": "rest"},
            "domain": {"actions": ["action_escalator_check"], "intents": [intent]}}
    answer = urllib3.request("POST", f"{args.action_server}/webhook", json=call).json()
    print(json.dumps({"events": [e["event"] for e in answer["events"]],
                      "text": [r.get("text") for r in answer["responses"]],
                      "queue": [r["custom"]["handoff"]["queue"] for r in answer["responses"]]}))
    events += [{"event": "action", "name": "action_escalator_check", "timestamp": time.time()},
               {"event": "action", "name": "utter_ask_order_number", "timestamp": time.time()},
               {"event": "action", "name": "action_listen", "timestamp": time.time()}]
