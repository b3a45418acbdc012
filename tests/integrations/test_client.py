"""The Python client against a real `escalator serve`: decisions, idempotent retries, the
time budget and the fail policy when escalator is down, slow, failing or refusing."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.integrations import Front, closed_port_url, conversation_state, elapsed, unique
from support.servers import serve
from support.turns import SENT_TEXTS, sent_words_in

from escalator.integrations.client import (
    FAIL_POLICY_RULE,
    LOCAL_REQUEST_RULE,
    EscalatorClient,
    FailPolicy,
    Turn,
    thaw,
)
from escalator.integrations.ids import escalator_id

ASK_FOR_PERSON = "I want to talk to a human"
CALM = "Where is my parcel? The order number is 1234."


@pytest.fixture
def conversation(platform_ids: Callable[[str], str]) -> str:
    """A fresh conversation id whose state is removed after the test."""
    return platform_ids(unique("client-"))


def turn(conversation_id: str, text: str, turn_id: str = "t-1", **extra: object) -> Turn:
    return Turn(conversation_id=conversation_id, turn_id=turn_id, text=text, channel="web",
                **extra)  # type: ignore[arg-type]


def test_a_calm_turn_stays_with_the_bot_and_a_request_routes(escalator_url: str,
                                                             conversation: str) -> None:
    client = EscalatorClient(escalator_url)
    calm = client.decide(turn(conversation, CALM, "t-1"))
    assert calm.decision == "keep_with_bot" and not calm.route_to_human
    assert calm.source == "escalator" and calm.error is None and calm.attempts == 1
    assert calm.handoff is None and calm.decision_id

    routed = client.decide(turn(conversation, ASK_FOR_PERSON, "t-2"))
    assert routed.route_to_human and routed.decisive_rule == "explicit-human-request"
    assert routed.handoff is not None
    assert routed.handoff.queue and routed.handoff.urgency and routed.handoff.customer_message
    # Read as urgency whether the service calls it urgency or (before the rename) priority.
    assert routed.handoff.urgency == routed.raw["handoff"].get(
        "urgency", routed.raw["handoff"].get("priority"))
    assert routed.turn_id == "t-2" and routed.conversation_id == conversation


def test_a_retry_after_a_lost_answer_gets_the_stored_decision_and_the_turn_counted_once(
        escalator_url: str, conversation: str) -> None:
    # The first attempt reaches escalator, which decides and stores the turn; its answer
    # is lost on the way back (a 502 from the proxy). The retry must not count it again.
    with Front(escalator_url, ["lose", "forward"]) as front:
        decision = EscalatorClient(front.url).decide(turn(conversation, ASK_FOR_PERSON))
    assert decision.source == "escalator" and decision.attempts == 2
    assert decision.replayed and decision.route_to_human
    assert len(front.requests) == 2 and front.requests[0] == front.requests[1]
    state = conversation_state(escalator_url, conversation)
    assert state is not None and state["turn_index"] == 1


def test_escalator_down_keeps_with_the_bot_by_default(conversation: str) -> None:
    client = EscalatorClient(closed_port_url(), timeout=1.0)
    decision, seconds = elapsed(lambda: client.decide(turn(conversation, CALM)))
    assert decision.decision == "keep_with_bot" and decision.source == "fail_policy"
    assert decision.decisive_rule == FAIL_POLICY_RULE and "Connection" in (decision.error or "")
    assert seconds < 1.0 + 2.0  # the budget, and a generous margin for a loaded machine


def test_escalator_down_still_routes_an_explicit_request_detected_locally(
        conversation: str) -> None:
    client = EscalatorClient(closed_port_url(), timeout=0.5)
    routed = client.decide(turn(conversation, "can I speak to a real person please"))
    assert routed.route_to_human and routed.decisive_rule == LOCAL_REQUEST_RULE
    assert routed.handoff is not None and routed.handoff.queue == "support"
    # The same detector as the service's: a negated request is not one ...
    assert not client.decide(turn(conversation, "I don't need an agent, thanks")).route_to_human
    # ... and an NLU intent listed as a request is one, without text.
    by_intent = client.decide(Turn(conversation, "t-2", intent="talk_to_agent"))
    assert by_intent.route_to_human


def test_the_route_to_human_policy_routes_every_turn_escalator_did_not_decide(
        conversation: str) -> None:
    client = EscalatorClient(closed_port_url(), timeout=0.5,
                             fail_policy=FailPolicy.ROUTE_TO_HUMAN, fallback_queue="overflow")
    decision = client.decide(turn(conversation, CALM))
    assert decision.route_to_human and decision.source == "fail_policy"
    assert decision.handoff is not None and decision.handoff.queue == "overflow"


def test_a_slow_escalator_costs_at_most_the_budget(conversation: str) -> None:
    with Front(None, ["hang"], hang_seconds=10) as front:
        client = EscalatorClient(front.url, timeout=1.0, attempt_timeout=0.4)
        decision, seconds = elapsed(lambda: client.decide(turn(conversation, CALM)))
    assert decision.source == "fail_policy" and decision.decision == "keep_with_bot"
    assert "Timeout" in (decision.error or "") and decision.attempts >= 2
    assert seconds < 1.0 + 2.0


def test_a_slow_attempt_is_retried_and_answered_by_escalator(escalator_url: str,
                                                             conversation: str) -> None:
    with Front(escalator_url, ["hang", "forward"], hang_seconds=10) as front:
        client = EscalatorClient(front.url, timeout=10.0, attempt_timeout=0.5)
        decision = client.decide(turn(conversation, CALM))
    assert decision.source == "escalator" and decision.attempts == 2


def test_5xx_answers_are_retried_with_the_same_turn(escalator_url: str,
                                                    conversation: str) -> None:
    with Front(escalator_url, ["500", "503", "forward"]) as front:
        decision = EscalatorClient(front.url, timeout=10.0).decide(turn(conversation, CALM))
    assert decision.source == "escalator" and decision.attempts == 3
    assert len({body for _, body in front.requests}) == 1
    assert json.loads(front.requests[0][1])["turn_id"] == "t-1"


def test_persistent_5xx_ends_in_the_fail_policy(conversation: str) -> None:
    with Front(None, ["502"]) as front:
        decision = EscalatorClient(front.url, timeout=10.0, max_attempts=3).decide(
            turn(conversation, CALM))
    assert decision.source == "fail_policy" and decision.attempts == 3
    assert decision.error is not None and decision.error.startswith("HTTP 502")


def test_429_waits_retry_after_when_the_budget_allows(escalator_url: str,
                                                      conversation: str) -> None:
    with Front(escalator_url, ["429", "forward"], retry_after="0.2") as front:
        decision = EscalatorClient(front.url, timeout=10.0).decide(turn(conversation, CALM))
    assert decision.source == "escalator" and decision.attempts == 2


def test_429_with_a_wait_past_the_budget_gives_up_at_once(conversation: str) -> None:
    with Front(None, ["429"], retry_after="30") as front:
        client = EscalatorClient(front.url, timeout=1.0)
        decision, seconds = elapsed(lambda: client.decide(turn(conversation, CALM)))
    assert decision.source == "fail_policy" and decision.attempts == 1
    assert "rate_limited" in (decision.error or "") and seconds < 1.0 + 2.0


def test_a_refused_request_is_not_retried(escalator_url: str, conversation: str) -> None:
    bad_context = turn(conversation, CALM, context={"Not A Key": 1})
    decision = EscalatorClient(escalator_url).decide(bad_context)
    assert decision.source == "fail_policy" and decision.attempts == 1
    assert decision.error == "HTTP 400 invalid_request"


@pytest.fixture(scope="module")
def escalator_with_keys(redis_url: str) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="escalator-client-auth-"))
    try:
        with serve(folder, redis_url, workers=1, ESCALATOR_API_KEYS="right-key") as base:
            yield base
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_api_key_is_sent_as_a_bearer_token(escalator_with_keys: str,
                                               conversation: str) -> None:
    refused = EscalatorClient(escalator_with_keys, api_key="wrong-key").decide(
        turn(conversation, CALM))
    assert refused.source == "fail_policy" and refused.error == "HTTP 401 unauthorized"
    assert refused.attempts == 1
    decided = EscalatorClient(escalator_with_keys, api_key="right-key").decide(
        turn(conversation, CALM))
    assert decided.source == "escalator"


def test_platform_ids_reach_the_same_conversation_every_time(
        escalator_url: str, platform_ids: Callable[[str], str]) -> None:
    phone = "whatsapp:+1415" + unique("")[:7]
    mapped = platform_ids(escalator_id(phone))
    client = EscalatorClient(escalator_url)
    first = client.decide(Turn(phone, "wamid.HBgL|1", text=CALM, channel="whatsapp"))
    second = client.decide(Turn(phone, "wamid.HBgL|2", text=CALM, channel="whatsapp"))
    assert first.source == second.source == "escalator"
    assert first.conversation_id == second.conversation_id == mapped
    state = conversation_state(escalator_url, mapped)
    assert state is not None and state["turn_index"] == 2


def test_a_turn_without_text_or_intent_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        EscalatorClient(closed_port_url()).decide(Turn("c", "t", text="  "))


def test_no_brief_the_client_gets_holds_a_word_the_customer_wrote(
        escalator_url: str, conversation: str) -> None:
    client = EscalatorClient(escalator_url)
    decisions = [client.decide(Turn(conversation, f"t-{n}", text=text, channel="web"))
                 for n, text in enumerate(SENT_TEXTS, 1)]
    assert decisions[-1].route_to_human and decisions[-1].handoff is not None
    assert decisions[-1].handoff.brief is not None
    assert sent_words_in([d.body() for d in decisions]) == []
    assert sent_words_in(thaw(decisions[-1].handoff.brief)) == []
