"""POST /v1/evaluate: a dry run of a whole transcript that touches no state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from escalator.config import default_rules_dir

FALLBACKS = [{"message": {"intent": "order_status"},
              "bot": {"prompt_id": f"p{i}", "fallback": True}} for i in range(3)]


def default_files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in default_rules_dir().glob("*.yaml")}


def test_a_transcript_is_decided_turn_by_turn_without_state(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    response = client.post("/v1/evaluate", json={"conversation_id": cid, "turns": FALLBACKS})
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert [d["decision"] for d in body["decisions"]] == [
        "keep_with_bot", "keep_with_bot", "route_to_human"]
    assert body["decisions"][2]["facts"]["loop.fallback_streak"] == 3
    assert body["ruleset"]["name"] == "default"
    assert client.get(f"/v1/conversations/{cid}").status_code == 404


def test_a_rule_set_sent_inline_is_used_instead(client: FlaskClient) -> None:
    files = default_files()
    files["ruleset.yaml"] = files["ruleset.yaml"].replace(
        "{fact: loop.fallback_streak, gte: 3}", "{fact: loop.fallback_streak, gte: 2}")
    files["ruleset.yaml"] = files["ruleset.yaml"].replace('version: "', 'version: "try-')
    body = client.post("/v1/evaluate", json={"turns": FALLBACKS,
                                             "ruleset": {"files": files}}).get_json()
    assert [d["decision"] for d in body["decisions"]][:2] == ["keep_with_bot",
                                                             "route_to_human"]
    assert body["ruleset"]["version"].startswith("try-")
    # The active rule set is unchanged.
    assert client.get("/v1/ruleset").get_json()["version"] != body["ruleset"]["version"]


def test_an_inline_rule_set_without_the_floor_is_refused(client: FlaskClient) -> None:
    files = default_files()
    files["ruleset.yaml"] = files["ruleset.yaml"].replace(
        "{fact: requested_human, is: true}", "{fact: requested_human, is: false}")
    response = client.post("/v1/evaluate", json={"turns": FALLBACKS,
                                                 "ruleset": {"files": files}})
    assert response.status_code == 400
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert any("requested_human is true" in p for p in error["details"]["ruleset"])


def test_invalid_transcripts_are_400_with_the_turn_that_is_wrong(client: FlaskClient) -> None:
    cases = [
        ({"turns": []}, None),
        ({"turns": [{"message": {"text": "hi"}}, {"message": {}}]}, "turns"),
        ({"turns": FALLBACKS, "extra": 1}, "extra"),
        ({"turns": FALLBACKS, "ruleset": {"files": {"../evil.yaml": "x"}}}, "ruleset"),
        ({"turns": FALLBACKS, "ruleset": "default"}, "ruleset"),
    ]
    for body, field in cases:
        response = client.post("/v1/evaluate", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["code"] == "invalid_request"
        if field:
            assert field in response.get_json()["error"]["details"], body
    turn_errors = client.post("/v1/evaluate", json=cases[1][0]).get_json()["error"]["details"]
    assert "2" in turn_errors["turns"]


def test_problems_in_an_inline_lexicon_name_the_file_as_sent(client: FlaskClient) -> None:
    files = default_files()
    files["lexicons/scoring.yaml"] = "sentiment: [not, a, mapping]\n"
    response = client.post("/v1/evaluate", json={"turns": FALLBACKS,
                                                 "ruleset": {"files": files}})
    assert response.status_code == 400
    problems = response.get_json()["error"]["details"]["ruleset"]
    assert problems and all("/tmp" not in p and "escalator-inline" not in p for p in problems)


def test_a_transcript_has_at_most_500_turns(client: FlaskClient) -> None:
    turns = [{"message": {"text": f"where is parcel {n}?"}} for n in range(501)]
    decided = client.post("/v1/evaluate", json={"turns": turns[:500]})
    assert decided.status_code == 200, decided.data
    assert len(decided.get_json()["decisions"]) == 500
    for ruleset in ({}, {"ruleset": {"files": default_files()}}):
        response = client.post("/v1/evaluate", json={"turns": turns, **ruleset})
        assert response.status_code == 400, response.data
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request"
        assert error["message"] == "A transcript has at most 500 turns."


def extra_rule_files(count: int) -> dict[str, str]:
    """`count` more valid files of one rule each."""
    return {f"extra-{n}.yaml": f"""rules:
  - id: extra-{n}
    description: An extra rule.
    priority: 10
    when:
      all:
        - {{fact: turn_index, eq: {n + 1}}}
    then:
      decision: keep_with_bot
""" for n in range(count)}


def test_a_rule_set_sent_inline_has_at_most_32_files(client: FlaskClient) -> None:
    files = default_files()
    files.update(extra_rule_files(32 - len(files)))
    assert len(files) == 32
    accepted = client.post("/v1/evaluate", json={"turns": FALLBACKS, "ruleset": {"files": files}})
    assert accepted.status_code == 200, accepted.data
    files.update(extra_rule_files(33 - len(default_files())))
    assert len(files) == 33
    refused = client.post("/v1/evaluate", json={"turns": FALLBACKS, "ruleset": {"files": files}})
    assert refused.status_code == 422, refused.data
    error = refused.get_json()["error"]
    assert error["code"] == "ruleset_too_large"
    assert error["details"]["limits"] == ["files"]
    assert error["details"]["ruleset"] == ["ruleset: at most 32 files"]
