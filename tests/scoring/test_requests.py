"""requested_human: explicit requests for a person, in five languages, and what is not one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from escalator.scoring import ScoredTurn

ASKS = [
    # English
    "talk to a human",
    "I want to speak to a real person",
    "Agent please",
    "OPERATOR!",
    "Can I speak to your manager?",
    "connect me to a live agent now",
    "I need a human, not a bot",
    "Representative.",
    "Why can't I talk to a human?",
    "this is useless, get me someone from customer service",
    "Is there a real person I can talk to?",
    "transfer me to an advisor please",
    # Spanish
    "Quiero hablar con un agente",
    "hablar con una persona real por favor",
    "¿Puedo hablar con un asesor?",
    "necesito un humano ya",
    "Pásame con un operador",
    # German
    "Ich möchte mit einem Mitarbeiter sprechen",
    "Einen Mitarbeiter bitte!",
    "Verbinden Sie mich mit einem echten Menschen",
    "ich brauche einen Berater",
    # French
    "Je veux parler à un conseiller",
    "Je voudrais parler à quelqu'un",
    "un vrai humain s'il vous plaît",
    "j'ai besoin d'un conseiller",
    # Portuguese
    "Quero falar com um atendente",
    "preciso falar com uma pessoa real",
    "me transfere para um atendente humano",
    "falar com alguém por favor",
]

NOT_ASKS = [
    # English
    "No, I don't need an agent",
    "are you a bot?",
    "Does human resources handle payroll?",
    "is this an automated agent?",
    "Are you a real person?",
    "The agent I spoke to yesterday was very helpful",
    "I don't want to talk to a human, just tell me my balance",
    "my travel agent booked the wrong flight",
    "no thanks, I do not need a person",
    "where is my parcel?",
    "I want a refund",
    "I need help with my password",
    # Spanish
    "no quiero un agente",
    "¿eres un robot?",
    "el agente no me ayudó",
    "necesito cambiar mi contraseña",
    # German
    "ich brauche keinen Mitarbeiter",
    "Bist du ein Mensch?",
    "die Mitarbeiter reden nur Unsinn",
    "wo ist mein Paket?",
    # French
    "je n'ai pas besoin d'un conseiller",
    "Êtes-vous un robot ?",
    "personne ne répond à mes mails",
    # Portuguese
    "não preciso de atendente",
    "você é um robô?",
    "o atendente disse que ia ligar",
    "quero saber o status do meu pedido",
]


def test_the_lists_cover_enough_cases() -> None:
    assert len(ASKS) >= 25
    assert len(NOT_ASKS) >= 25


@pytest.mark.parametrize("text", ASKS)
def test_an_explicit_request_for_a_person_is_recognised(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is True


@pytest.mark.parametrize("text", NOT_ASKS)
def test_negations_questions_and_other_uses_are_not_requests(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is False


def test_a_handoff_intent_counts_even_without_text(score: Callable[..., ScoredTurn]) -> None:
    assert score(None, intent="human_handoff").facts["requested_human"] is True
    assert score(None, intent="order_status").facts["requested_human"] is False


def test_a_request_in_a_later_clause_survives_a_negation_in_an_earlier_one(
        score: Callable[..., ScoredTurn]) -> None:
    assert score("I don't understand this menu, let me talk to a person").facts[
        "requested_human"] is True


# Tricky families, one readable test each (the full measured set is request_cases.yaml).

@pytest.mark.parametrize("text", [
    "nope dont need a human",
    "no quiero hablar con nadie",
    "ich will mit niemandem sprechen, nur meine sendungsnummer",
    "je ne veux parler à personne",
    "nao quero falar com ninguem",
])
def test_a_refusal_of_a_person_is_not_a_request(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is False


@pytest.mark.parametrize("text", [
    "no i want an agent",
    "no, quiero hablar con un agente",
    "Nein, ich will einen Mitarbeiter",
    "non je veux parler a une personne",
    "nao, quero falar com uma pessoa",
])
def test_a_no_that_answers_the_bot_does_not_cancel_the_ask_after_it(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is True


@pytest.mark.parametrize("text", [
    "I spoke to someone yesterday and they said it would be fixed",
    "ya hablé con un agente ayer y no me solucionó nada",
    "ich habe gestern mit einem mitarbeiter gesprochen und nichts ist passiert",
    "j'ai déjà parlé à un conseiller hier et rien n'a changé",
    "já falei com um atendente ontem e nada foi resolvido",
])
def test_a_report_of_an_earlier_conversation_is_not_a_request(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is False


@pytest.mark.parametrize("text", [
    "eres una persona real?",
    "sind sie ein echter mensch?",
    "c'est une vraie personne qui répond ?",
    "I'm a real person, why do you keep asking me to verify",
])
def test_asking_what_the_bot_is_or_saying_what_you_are_is_not_a_request(
        score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is False


@pytest.mark.parametrize("text", [
    "This bot is useless. Human. NOW.",
    "ich brauche einen menschen, keinen bot",
    "ya me canse de este bot, pasame con alguien de verdad",
])
def test_an_ask_inside_a_complaint_is_found(score: Callable[..., ScoredTurn], text: str) -> None:
    assert score(text).facts["requested_human"] is True


def test_a_person_word_alone_in_a_long_sentence_is_not_a_request(
        score: Callable[..., ScoredTurn]) -> None:
    # The person-only rule is for short sentences ("Human. NOW."), not any mention.
    assert score("Your staff were very helpful, thanks").facts["requested_human"] is False
    assert score("Thanks. The agent was great.").facts["requested_human"] is False
