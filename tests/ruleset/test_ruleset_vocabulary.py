"""Labels rules compare with: a label no turn can carry is caught at load (closed
vocabularies), and caller-chosen labels (tiers, segments, channels, context values) match
whatever their case, at load and at runtime alike."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from support.rulesets import copy_rules

from escalator.cli import main
from escalator.config import default_rules_dir
from escalator.errors import PolicyError
from escalator.policy import load_policy
from escalator.ruleset.conditions import Leaf

WriteRules = Callable[..., Path]


@pytest.fixture
def policy_folder(write_rules: WriteRules) -> Callable[[str], Path]:
    """policy_folder(rules_yaml) -> a rules folder with the default lexicons beside it."""
    def write(rules_yaml: str) -> Path:
        folder = write_rules(rules_yaml)
        if not (folder / "lexicons").exists():
            shutil.copytree(default_rules_dir() / "lexicons", folder / "lexicons")
        return folder
    return write


def rule(when: str) -> str:
    return (f"- id: r\n  description: A rule under test.\n  priority: 10\n"
            f"  when: {when}\n  then: {{decision: route_to_human}}\n")


def refusal_and_warnings(folder: Path) -> tuple[list[str], list[str]]:
    with pytest.raises(PolicyError) as info:
        load_policy(folder).close()
    return [str(p) for p in info.value.problems], [str(w) for w in info.value.warnings]


def test_a_misspelt_topic_is_refused_with_a_suggestion(
        policy_folder: Callable[[str], Path]) -> None:
    problems, _ = refusal_and_warnings(policy_folder(rule(
        "{fact: complexity.topics, contains: cancelation}")))
    assert problems == [
        "rules.yaml:19: rule 'r' there is no topic 'cancelation' (did you mean "
        "'cancellation'?), so this can never match; the topics are: bereavement, "
        "cancellation, complaint, data_privacy, fraud, legal, safety, vulnerability "
        "(defined in lexicons/topics.yaml)"]


@pytest.mark.parametrize(("when", "expected"), [
    ("{fact: frustration.cues, contains: threat_to_leve}",
     "there is no frustration cue 'threat_to_leve' (did you mean 'threat_to_leave'?)"),
    ("{fact: message.language, eq: EN}", "'EN' can never match: languages are compared as "
                                         "lower-case codes without a region"),
    ("{fact: message.language, in: [es, pt-BR]}", "write 'pt'"),
    ("{fact: message.language, eq: english}", "'english' is not a language code (did you "
                                              "mean 'en'?)"),
    ("{fact: message.language, eq: Español}", "'Español' is not a language code (did you "
                                              "mean 'es'?)"),
    ("{fact: context.agentsAvailable, eq: 0}", "'context.agentsAvailable' can never be sent: "
                                               "context keys are 1-40 lower-case letters"),
])
def test_labels_no_turn_can_carry_are_refused(policy_folder: Callable[[str], Path],
                                              when: str, expected: str) -> None:
    problems, _ = refusal_and_warnings(policy_folder(rule(when)))
    assert len(problems) == 1 and expected in problems[0], problems


def test_labels_a_platform_might_still_send_are_warnings(
        policy_folder: Callable[[str], Path]) -> None:
    folder = policy_folder(rule("{any: [{fact: channel, eq: webchat}, "
                                "{fact: message.language, eq: it}]}"))
    policy = load_policy(folder)
    try:
        warnings = [w.message for w in policy.ruleset.warnings]
    finally:
        policy.close()
    assert len(warnings) == 2
    assert warnings[0].startswith("'webchat' is not a channel escalator knows (did you mean "
                                  "'chat'?); the rule matches only if your platform sends")
    assert warnings[1].startswith("'it' is not among the languages of the lexicons")
    assert CliRunner().invoke(main, ["rules", "check", str(folder)]).exit_code == 0
    result = CliRunner().invoke(main, ["rules", "check", "--strict", str(folder)])
    assert result.exit_code == 1
    assert "warning: rules.yaml:19: rule 'r' 'webchat'" in result.output


def test_the_check_command_reports_the_misspelt_labels_of_the_issue(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    copy_rules(folder, with_tests=True)
    topics = folder / "topics.yaml"
    topics.write_text(topics.read_text().replace("contains: cancellation}",
                                                 "contains: cancelation}"))
    result = CliRunner().invoke(main, ["rules", "check", str(folder)])
    assert result.exit_code == 1
    assert "rule 'valued-customer-cancelling' there is no topic 'cancelation' (did you mean " \
           "'cancellation'?)" in result.output


def test_open_labels_are_read_in_lower_case(policy_folder: Callable[[str], Path]) -> None:
    policy = load_policy(policy_folder(rule(
        "{all: [{fact: customer.tier, eq: VIP}, {fact: customer.segment, in: [Business]}, "
        "{fact: context.plan, ne: Premium-Plus}, {fact: context.seats, gte: 10}]}")))
    try:
        assert policy.ruleset.rules[-1].when.items == (  # type: ignore[union-attr]
            Leaf("customer.tier", "eq", "vip"), Leaf("customer.segment", "in", ("business",)),
            Leaf("context.plan", "ne", "premium-plus"), Leaf("context.seats", "gte", 10))
        assert policy.ruleset.warnings == ()
    finally:
        policy.close()


VIP_RULES = """\
ruleset: vip
version: "1"
default: {decision: keep_with_bot}
rules:
  - id: asked
    description: The customer asked for a person.
    priority: 100
    when: {fact: requested_human, is: true}
    then: {decision: route_to_human}
  - id: fallbacks
    description: The bot failed three times in a row.
    priority: 90
    when: {fact: loop.fallback_streak, gte: 3}
    then: {decision: route_to_human}
  - id: vip-customer
    description: VIP customers talk to a person.
    priority: 50
    when: {all: [{fact: customer.tier, eq: VIP}, {fact: channel, in: [Web]}]}
    then: {decision: route_to_human, queue: vip}
"""


@pytest.mark.parametrize("tier", ["vip", "VIP", "Vip"])
def test_a_rule_written_tier_vip_matches_every_spelling_at_runtime(
        client: FlaskClient, tier: str) -> None:
    response = client.post("/v1/evaluate", json={
        "turns": [{"message": {"text": "Where is my parcel?"}, "customer": {"tier": tier},
                   "channel": "WEB"}],
        "ruleset": {"files": {"vip.yaml": VIP_RULES}}})
    assert response.status_code == 200, response.data
    decision = response.get_json()["decisions"][0]
    assert decision["decision"] == "route_to_human"
    assert decision["reasons"][0]["rule"] == "vip-customer"
    assert (decision["facts"]["customer.tier"], decision["facts"]["channel"]) == ("vip", "web")


def test_a_live_turn_matches_a_tier_whatever_its_case(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    # The default policy's valued-customer-cancelling is written [gold, platinum].
    response = client.post(f"/v1/conversations/{new_conversation_id()}/turns", json={
        "turn_id": "t-1", "message": {"text": "I would like to cancel my subscription"},
        "customer": {"tier": "GOLD"}})
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["reasons"][0]["rule"] == "valued-customer-cancelling"
    assert body["handoff"]["queue"] == "retention"
    assert body["facts"]["customer.tier"] == "gold"
