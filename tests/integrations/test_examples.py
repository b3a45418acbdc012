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
