"""Two turns of a Dialogflow CX agent through escalator's CX webhook, sent as CX sends them.
Run `escalator serve` first, then (with `pip install 'escalator[dialogflow]'`):
python examples/dialogflow_cx/conversation.py

The first turn stays with the bot: the answer only sets the session parameters. The
second asks for a person: the answer carries escalator's sentence and a liveAgentHandoff
message with the queue, urgency, reasons and brief. Each answer is parsed strictly by
google-cloud-dialogflow-cx's own WebhookResponse, as CX would read it."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

import urllib3
from google.cloud.dialogflowcx_v3.types import WebhookResponse

AGENT = "projects/acme-support/locations/global/agents/6b21725c-c625-42dc-ad10-2ffe08a4f769"
parser = argparse.ArgumentParser()
parser.add_argument("--session", default="dfMessenger-58641064")
args = parser.parse_args()
url = os.environ.get("ESCALATOR_URL", "http://127.0.0.1:8080") + "/v1/integrations/dialogflow-cx"
headers = {"Content-Type": "application/json"}
if os.environ.get("ESCALATOR_API_KEY"):  # what the CX webhook's request headers carry
    headers["Authorization"] = f"Bearer {os.environ['ESCALATOR_API_KEY']}"


def webhook_request(text: str, intent: str, confidence: float, page: str) -> dict[str, Any]:
    """A WebhookRequest as CX sends it from a route whose fulfillment has the tag escalator."""
    return {
        "detectIntentResponseId": str(uuid.uuid4()),
        "intentInfo": {"lastMatchedIntent": f"{AGENT}/intents/{uuid.uuid4()}",
                       "displayName": intent, "confidence": confidence},
        "pageInfo": {"currentPage": f"{AGENT}/flows/00000000-0000-0000-0000-000000000000/"
                                    f"pages/{uuid.uuid4()}", "displayName": page},
        "sessionInfo": {"session": f"{AGENT}/sessions/{args.session}",
                        "parameters": {"escalator_tier": "gold", "escalator_channel": "web"}},
        "fulfillmentInfo": {"tag": "escalator"},
        "text": text,
        "languageCode": "en",
    }


for request in (webhook_request("Where is my order?", "order.status", 0.93, "Start Page"),
                webhook_request("This is useless, I want to talk to a real person",
                                "live.agent", 0.97, "Order Status")):
    response = urllib3.request("POST", url, body=json.dumps(request), headers=headers,
                               timeout=10, retries=False)
    assert response.status == 200, response.data
    answer = response.json()
    WebhookResponse.from_json(json.dumps(answer))  # what CX accepts, or this fails
    parameters = answer["sessionInfo"]["parameters"]
    messages = answer.get("fulfillmentResponse", {}).get("messages", [])
    handoff = next((m["liveAgentHandoff"]["metadata"] for m in messages
                    if "liveAgentHandoff" in m), None)
    print(json.dumps({
        "decision": parameters["escalator_decision"],
        "messages": [next(iter(m)) for m in messages],
        "queue": parameters["escalator_queue"], "urgency": parameters["escalator_urgency"],
        "said": next((m["text"]["text"][0] for m in messages if "text" in m), None),
        "brief": handoff["brief"]["why"]["decisive"] if handoff else None}))
