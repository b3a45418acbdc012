"""Every example under examples/ runs from zero to a routed conversation against a real
`escalator serve`, and a calm turn before it stays with the bot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support.integrations import require_extra, unique
from support.servers import free_port, http, wait_for

from escalator.integrations import dialogflow_cx
from escalator.integrations.ids import IdMapper, escalator_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, escalator_url: str, *args: str) -> list[str]:
    """The example's output lines (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env["ESCALATOR_URL"] = escalator_url
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_the_client_example(escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    conversation = "whatsapp:+1415" + unique("")[:8]
    platform_ids(escalator_id(conversation))
    calm, routed = run_example("client/conversation.py", escalator_url,
                               "--conversation", conversation)
    assert calm.startswith("keep_with_bot None") and routed.startswith("route_to_human")
    assert escalator_id(conversation) in routed


def test_the_lex_example(escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    require_extra("botocore", "lex")
    session = unique("lex-example-")
    platform_ids(IdMapper(prefix="lex")(session))
    calm, routed = (json.loads(line) for line in run_example(
        "lex/conversation.py", escalator_url, "--session", session))
    assert calm["dialogAction"] == "Delegate" and calm["queue"] is None
    assert routed["dialogAction"] == "Close" and routed["intent"] == "TransferToAgent"
    assert routed["queue"] and routed["urgency"] and routed["message"]


def test_the_rasa_example_on_rasa_sdks_own_action_server(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    require_extra("rasa_sdk", "rasa")
    sender = unique("rasa-example-")
    platform_ids(IdMapper(prefix="rasa")(sender))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env["ESCALATOR_URL"] = escalator_url
    server = subprocess.Popen([sys.executable, "-m", "rasa_sdk", "--actions", "actions",
                               "--port", str(port)], cwd=EXAMPLES / "rasa", env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            assert server.poll() is None, "the action server exited"
            try:
                return http(f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(up, 60, "rasa_sdk's action server answers /health", interval=0.2)
        calm, routed = (json.loads(line) for line in run_example(
            "rasa/conversation.py", escalator_url, "--sender", sender,
            "--action-server", f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert calm == {"events": [], "text": [], "queue": []}
    assert routed["events"] == ["pause"] and routed["text"][0] and routed["queue"][0]


def test_the_agents_sdk_example(escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    require_extra("microsoft_agents.testing", "agents")
    conversation = unique("example-") + "|livechat"
    platform_ids(IdMapper(prefix="agents")(conversation))
    lines = run_example("agents/bot.py", escalator_url, "--conversation", conversation)
    assert lines[0] == "message Your parcel arrives on Tuesday."
    assert lines[1].startswith("message ") and "Tuesday" not in lines[1]
    assert lines[2].startswith("event handoff.initiate ")
    assert len(lines) == 3


def test_the_dialogflow_cx_example(escalator_url: str,
                                   platform_ids: Callable[[str], str]) -> None:
    types = require_extra("google.cloud.dialogflowcx_v3.types", "dialogflow")
    session = unique("cx-example-")
    platform_ids(dialogflow_cx.CONVERSATIONS(
        "projects/acme-support/locations/global/agents/6b21725c-c625-42dc-ad10-2ffe08a4f769"
        f"/sessions/{session}"))
    calm, routed = (json.loads(line) for line in run_example(
        "dialogflow_cx/conversation.py", escalator_url, "--session", session))
    assert calm == {"decision": "keep_with_bot", "messages": [], "queue": None,
                    "urgency": None, "said": None, "brief": None}
    assert routed["decision"] == "route_to_human"
    assert routed["messages"] == ["text", "liveAgentHandoff"]
    assert routed["queue"] and routed["urgency"] and routed["said"] and routed["brief"]
    # The agent's configuration the docs walk through, read by CX's own types.
    agent = json.loads((EXAMPLES / "dialogflow_cx" / "agent.json").read_text())
    types.Webhook.from_json(json.dumps(agent["webhook"]))
    for route in ("orderStatusRoute", "handoffRoute"):
        types.TransitionRoute.from_json(json.dumps(agent[route]))
    handler = types.EventHandler.from_json(json.dumps(agent["noMatchHandler"]))
    assert dialogflow_cx.is_no_match(handler.trigger_fulfillment.tag)
    assert agent["webhook"]["genericWebService"]["uri"].endswith(
        "/v1/integrations/dialogflow-cx")
