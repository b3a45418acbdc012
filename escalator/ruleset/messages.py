"""Customer messages in several languages, and how the one a customer is told is chosen.

A rule file gives a message as plain text (in the rule set's language, `default_language`,
en unless declared) or one text per language:

    customer_message:
      en: "Of course. I'm connecting you with a member of our team now."
      es: "Por supuesto. Ahora mismo le pongo en contacto con una persona de nuestro equipo."

A turn's language (`message.language`: sent by the caller or detected) picks the text: the
rule's own, else the rule set's default message, else the built-in sentence, each in that
language; only when none of them has it, the same in the rule set's language. So a customer
writing one of the built-in languages (en, es, de, fr, pt) is always told something in it,
even by a rule set written in one language only, and a rule's own words win wherever they
exist. `rules check` warns where a message lacks a language the rule set's others have.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields

# How a language is written in a message: the lower-case code message.language reports.
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
# The rule set's language when it declares none.
FALLBACK_LANGUAGE = "en"
# The key under which a message written as plain text waits until the rule set's language
# is known (another file may declare it).
PLAIN = ""
MAX_MESSAGE_CHARS = 500
# Languages written by name instead of code, for the hints ("write 'es'").
LANGUAGE_NAMES = {"english": "en", "spanish": "es", "espanol": "es", "español": "es",
                  "german": "de", "deutsch": "de", "french": "fr", "francais": "fr",
                  "français": "fr", "portuguese": "pt", "portugues": "pt", "português": "pt",
                  "italian": "it", "dutch": "nl"}


@dataclass(frozen=True)
class Messages:
    """One customer message in one or more languages."""

    texts: tuple[tuple[str, str], ...]  # (language, text), in the order written

    @classmethod
    def of(cls, texts: Mapping[str, str]) -> Messages:
        """Messages from {language: text}."""
        return cls(tuple(texts.items()))

    def get(self, language: str) -> str | None:
        """The text in `language`, or None."""
        for written, text in self.texts:
            if written == language:
                return text
        return None

    @property
    def languages(self) -> frozenset[str]:
        """The languages this message is written in."""
        return frozenset(language for language, _ in self.texts)

    def resolved(self, language: str) -> Messages:
        """These messages with a plain text given its language, the rule set's."""
        if self.get(PLAIN) is None:
            return self
        return Messages(tuple((language if written == PLAIN else written, text)
                              for written, text in self.texts))

    def as_written(self) -> dict[str, str]:
        """{language: text}, as GET /v1/ruleset shows it."""
        return dict(self.texts)


def choose(language: str, fallback: str, *candidates: Messages | None) -> str:
    """The text to tell a customer writing `language`: the first candidate (most specific
    first) that has it, else the first that has the rule set's language `fallback`, else
    English, else any text at all (the last candidate is a built-in: it has English)."""
    given = [c for c in candidates if c is not None]
    for wanted in (language, fallback, FALLBACK_LANGUAGE):
        for messages in given:
            text = messages.get(wanted)
            if text is not None:
                return text
    return next((text for messages in given for _, text in messages.texts), "")


class MessagesField(fields.Field):  # type: ignore[type-arg]
    """`customer_message`: plain text, or {language: text}."""

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> Messages:
        if isinstance(value, str):
            return Messages(((PLAIN, _text(value, None)),))
        if not isinstance(value, Mapping) or not value:
            raise ValidationError("must be text, or one text per language "
                                  "(en: ..., es: ...)")
        problems: list[str] = []
        texts: dict[str, str] = {}
        for key, text in value.items():
            if not isinstance(key, str) or not LANGUAGE_CODE.fullmatch(key):
                problems.append(f"is not valid: '{key}' is not a language code"
                                f"{_write_instead(key)}; languages are lower-case codes "
                                "such as en, es, de, fr, pt")
                continue
            try:
                texts[key] = _text(text, key)
            except ValidationError as exc:
                problems.extend(f"is not valid: {m}" for m in exc.messages)
        if problems:
            raise ValidationError(problems)
        return Messages.of(texts)


def _text(text: Any, language: str | None) -> str:
    """The text, or ValidationError saying what is wrong with it (in `language`)."""
    what = f"the text in '{language}' " if language else ""
    if not isinstance(text, str):
        raise ValidationError(f"{what}must be text (put it in quotes)")
    if not text.strip():
        raise ValidationError(f"{what}is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValidationError(f"{what}must be at most {MAX_MESSAGE_CHARS} characters")
    return text


def _write_instead(key: object) -> str:
    """" (write 'en')" when the intended code is clear."""
    text = str(key)
    code = LANGUAGE_NAMES.get(text.lower()) or text.lower().replace("_", "-").split("-")[0]
    return f" (write '{code}')" if LANGUAGE_CODE.fullmatch(code) else ""


# What a handoff says when neither the rule nor the rule set's default has a message in the
# customer's language. Written to be said by a bot to any customer: polite, neither formal
# nor casual beyond what each language's customer service expects.
BUILTIN_HANDOFF_MESSAGE = Messages.of({
    "en": "I'm connecting you with a member of our team.",
    "es": "Le pongo en contacto con una persona de nuestro equipo.",
    "de": "Ich verbinde Sie mit jemandem aus unserem Team.",
    "fr": "Je vous mets en relation avec un membre de notre équipe.",
    "pt": "Vou transferir você para alguém da nossa equipe.",
})
# What every turn of a conversation already with a person is told, unless the rule set
# says otherwise (handoff_in_progress: {customer_message: ...}).
BUILTIN_IN_PROGRESS_MESSAGE = Messages.of({
    "en": "You're in the queue for a member of our team; they'll be with you as soon as "
          "they can.",
    "es": "Ya está en la cola para hablar con una persona de nuestro equipo; le atenderá en "
          "cuanto pueda.",
    "de": "Sie sind in der Warteschlange für unser Team; jemand meldet sich so schnell wie "
          "möglich bei Ihnen.",
    "fr": "Vous êtes dans la file d'attente pour un membre de notre équipe ; il vous "
          "répondra dès que possible.",
    "pt": "Você já está na fila para falar com alguém da nossa equipe; essa pessoa vai "
          "atender você assim que puder.",
})
