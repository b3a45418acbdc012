"""What the customer is told at a handoff, in their language.

Before, "Quiero hablar con una persona" was detected as Spanish and routed, and the
customer was told "Of course. I'm connecting you with a member of our team now."; the
handoff-in-progress sentence was English and fixed in the code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from support.rulesets import copy_rules, rules_folder

from escalator.cli import main
from escalator.config import default_rules_dir
from escalator.policy import load_policy

EXPLICIT = {
    "en": "Of course. I'm connecting you with a member of our team now.",
    "es": "Por supuesto. Ahora mismo le pongo en contacto con una persona de nuestro equipo.",
    "de": "Selbstverständlich. Ich verbinde Sie jetzt mit jemandem aus unserem Team.",
    "fr": "Bien sûr. Je vous mets tout de suite en relation avec un membre de notre équipe.",
    "pt": "Claro. Vou transferir você agora para alguém da nossa equipe.",
}
IN_PROGRESS_ES = ("Ya está en la cola para hablar con una persona de nuestro equipo; le "
                  "atenderá en cuanto pueda.")


def post(client: FlaskClient, cid: str, turn_id: str, text: str, **message: Any
         ) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": turn_id, "message": {"text": text, **message}})
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize(("language", "text"), [
    ("es", "Quiero hablar con una persona"),
    ("de", "Ich möchte bitte mit einem Mitarbeiter sprechen"),
    ("fr", "Je veux parler à un conseiller s'il vous plaît"),
    ("pt", "Quero falar com um atendente humano"),
    ("en", "I want to talk to a person"),
])
def test_the_customer_is_told_in_the_language_they_wrote_in(
        client: FlaskClient, new_conversation_id: Callable[..., str], language: str,
        text: str) -> None:
    decided = post(client, new_conversation_id(), "t-1", text)
    assert decided["facts"]["message.language"] == language  # detected
    assert decided["reasons"][0]["rule"] == "explicit-human-request"
    assert decided["handoff"]["customer_message"] == EXPLICIT[language]


def test_the_handoff_in_progress_is_said_in_the_turns_language(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    cid = new_conversation_id()
    post(client, cid, "t-1", "Quiero hablar con una persona")
    waiting = post(client, cid, "t-2", "Vale, gracias", language="es-MX")
    assert waiting["reasons"][0]["rule"] == "handoff-in-progress"
    assert waiting["handoff"]["customer_message"] == IN_PROGRESS_ES
    english = post(client, cid, "t-3", "ok thanks", language="en")
    assert english["handoff"]["customer_message"].startswith("You're in the queue")


def test_a_language_without_messages_gets_the_rule_sets_language(
        client: FlaskClient, new_conversation_id: Callable[..., str]) -> None:
    decided = post(client, new_conversation_id(), "t-1", "I want to talk to a person",
                   language="it")
    assert decided["handoff"]["customer_message"] == EXPLICIT["en"]


# A small rule set in Spanish first: plain texts are its language, messages given per
# language, its own handoff-in-progress sentence.
SPANISH_FIRST = """
ruleset: es-first
version: "1"
default_language: es
default:
  decision: keep_with_bot
  customer_message: "Le paso con una persona de nuestro equipo."
handoff_in_progress:
  customer_message:
    es: "Una persona de nuestro equipo le atenderá enseguida."
    en: "Someone from our team will be with you shortly."
rules:
  - id: explicit-human-request
    description: The customer asked for a person.
    priority: 100
    when: {all: [{fact: requested_human, is: true}]}
    then:
      decision: route_to_human
      customer_message:
        es: "Claro, le paso ahora mismo."
        en: "Of course, putting you through now."
  - id: bot-fallback-cap
    description: Three bot failures in a row.
    priority: 95
    when: {all: [{fact: loop.fallback_streak, gte: 3}]}
    then: {decision: route_to_human}
"""


@pytest.fixture
def spanish_app(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(rules_dir=rules_folder(tmp_path, SPANISH_FIRST))


def test_a_rule_set_sets_its_language_and_its_handoff_in_progress_sentence(
        spanish_app: Flask, new_conversation_id: Callable[..., str]) -> None:
    client = spanish_app.test_client()
    cid = new_conversation_id()
    first = post(client, cid, "t-1", "I want to talk to a person")
    assert first["handoff"]["customer_message"] == "Of course, putting you through now."
    waiting = post(client, cid, "t-2", "Vale, gracias", language="es")
    assert waiting["handoff"]["customer_message"] == \
        "Una persona de nuestro equipo le atenderá enseguida."
    # A language the rule set has no sentence in: its own language, Spanish.
    waiting = post(client, cid, "t-3", "ok", language="nl")
    assert waiting["handoff"]["customer_message"] == \
        "Una persona de nuestro equipo le atenderá enseguida."
    ruleset = client.get("/v1/ruleset").get_json()
    assert ruleset["default_language"] == "es"
    assert ruleset["handoff_in_progress"]["customer_message"]["en"].startswith("Someone")
    assert ruleset["default"]["customer_message"]["es"] == \
        "Le paso con una persona de nuestro equipo."


def test_a_rule_without_a_message_in_the_customers_language_says_the_default_in_it(
        spanish_app: Flask, new_conversation_id: Callable[..., str]) -> None:
    # Spanish default, no English one: the built-in English sentence rather than Spanish
    # to an English-speaking customer.
    client = spanish_app.test_client()
    for language, expected in (("es", "Le paso con una persona de nuestro equipo."),
                               ("en", "I'm connecting you with a member of our team."),
                               ("fr", "Je vous mets en relation avec un membre de notre "
                                      "équipe.")):
        cid = new_conversation_id()
        for n in range(1, 4):
            decided = client.post(f"/v1/conversations/{cid}/turns", json={
                "turn_id": f"t-{n}", "message": {"intent": "order_status",
                                                  "language": language},
                "bot": {"fallback": True}}).get_json()
        assert decided["reasons"][0]["rule"] == "bot-fallback-cap"
        assert decided["handoff"]["customer_message"] == expected


def check(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rules", "check", str(folder), *args])
    return result.exit_code, result.output


def test_rules_check_warns_when_a_message_lacks_a_language_others_have(
        tmp_path: Path) -> None:
    folder = rules_folder(tmp_path, SPANISH_FIRST.replace(
        '        en: "Of course, putting you through now."\n',
        '        en: "Of course, putting you through now."\n'
        '        de: "Natürlich, ich verbinde Sie jetzt."\n'))
    code, output = check(folder, "--strict")
    assert code == 1
    lacking = [line for line in output.splitlines() if "has no text in" in line]
    assert len(lacking) == 2, output
    assert "ruleset.yaml:7: 'default.customer_message' has no text in de, en" in lacking[0]
    assert "ruleset.yaml:9: 'handoff_in_progress.customer_message' has no text in de" \
        in lacking[1]
    assert check(folder)[0] == 0


def test_the_default_policy_has_every_message_in_five_languages() -> None:
    policy = load_policy(default_rules_dir())
    ruleset = policy.ruleset
    policy.close()
    assert ruleset.warnings == ()
    messages = [ruleset.in_progress, ruleset.default.customer_message,
                *(rule.then.customer_message for rule in ruleset.rules
                  if rule.then.decision == "route_to_human")]
    assert all(m is not None and m.languages == {"en", "es", "de", "fr", "pt"}
               for m in messages)


@pytest.mark.parametrize(("message", "problem"), [
    ('{EN: "Hi"}', "'EN' is not a language code (write 'en')"),
    ('{english: "Hi"}', "'english' is not a language code (write 'en')"),
    ('{Italian: "Ciao"}', "'Italian' is not a language code (write 'it')"),
    ('{pt-BR: "Oi"}', "'pt-BR' is not a language code (write 'pt')"),
    ('{en: ""}', "the text in 'en' is empty"),
    ("{en: 3}", "the text in 'en' must be text"),
    ("[a, b]", "must be text, or one text per language (en: ..., es: ...)"),
])
def test_mistakes_in_messages_are_refused_in_plain_words(
        tmp_path: Path, message: str, problem: str) -> None:
    folder = rules_folder(tmp_path, SPANISH_FIRST.replace(
        '  customer_message: "Le paso con una persona de nuestro equipo."',
        f"  customer_message: {message}"))
    code, output = check(folder)
    assert code == 1
    assert problem in output, output


def test_rule_tests_check_the_message_in_the_turns_language(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    copy_rules(folder)
    (folder / "tests").mkdir()
    (folder / "tests" / "spanish.yaml").write_text(f"""
tests:
  - name: A Spanish request is answered in Spanish
    turns:
      - message: {{text: "Quiero hablar con una persona"}}
      - message: {{text: "Vale, gracias", language: es}}
    expect:
      - {{turn: 1, customer_message: "{EXPLICIT['es']}"}}
      - {{turn: 2, customer_message: "{IN_PROGRESS_ES}"}}
""", encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "test", str(folder)])
    assert result.output.strip().splitlines()[-1] == "1 passed, 0 failed", result.output
