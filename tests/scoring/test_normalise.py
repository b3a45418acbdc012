"""What the customer typed is read as a reader sees it: invisible characters, compatibility
forms and Latin look-alikes from other scripts cannot hide a request for a person."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable

import pytest
from confusable_homoglyphs import categories, confusables  # type: ignore[import-untyped]

from escalator.scoring import ScoredTurn
from escalator.scoring.text import _FORMAT, _LOOKALIKES, normalise_text

Score = Callable[..., ScoredTurn]

HIDDEN = [
    "I want to talk to a hu\u200bman",  # zero-width space
    "I want to talk to a hu\u00adman",  # soft hyphen
    "I want to talk to a hu\u200dm\u2060an",  # zero-width joiner, word joiner
    "\ufeffI want to talk to a \u202ehuman",  # byte-order mark, a bidi control
    "I want to talk to a \u04bbuman",  # Cyrillic shha for h
    "I want to talk to a hum\u0430n",  # Cyrillic a
    "TALK TO A HU\u041c\u0410N",  # Cyrillic capital em and a
    "I want to talk to a \u0570\u057dman",  # Armenian ho and seh for h and u
    "talk to a \uff48\uff55\uff4d\uff41\uff4e",  # fullwidth letters
    "talk to a \U0001d5c1\U0001d5ce\U0001d5c6\U0001d5ba\U0001d5c7",  # mathematical sans-serif
    "quiero hablar con una pers\u03bfna",  # Greek omicron, in Spanish
    "Ich m\u00f6chte mit einem Mit\u0430rbeiter sprechen",  # Cyrillic a, in German
]


@pytest.mark.parametrize("text", HIDDEN)
def test_a_hidden_request_for_a_person_is_seen(score: Score, text: str) -> None:
    assert score(text).facts["requested_human"] is True


@pytest.mark.parametrize("text", [
    "\u042f \u0445\u043e\u0447\u0443 \u043f\u043e\u0433\u043e\u0432\u043e\u0440\u0438\u0442\u044c "
    "\u0441 \u0447\u0435\u043b\u043e\u0432\u0435\u043a\u043e\u043c",  # Russian
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03bd\u03b1 "
    "\u03bc\u03b9\u03bb\u03ae\u03c3\u03c9",  # Greek
    "Quiero hablar con un agente, \u00bfd\u00f3nde est\u00e1 mi pedido?",
    "Paris \u0441\u0442\u043e\u043b\u0438\u0446\u0430 \u0424\u0440\u0430\u043d\u0446\u0438\u0438",
    "h\u0443\u043can",  # Latin and Cyrillic, with an em no Latin letter looks like
])
def test_text_in_other_scripts_is_left_as_it_is(text: str) -> None:
    assert normalise_text(text) == text


def test_invisible_characters_change_no_score(score: Score) -> None:
    plain = "I already told you twice, the parcel never came! Where is my refund?"
    hidden = ("I al\u200bready told you twice, the par\u00adcel never came! "
              "Where is my ref\u200dund?")
    facts, seen = score(plain).facts, score(hidden).facts
    assert {k: v for k, v in seen.items() if k != "message.chars"} == \
        {k: v for k, v in facts.items() if k != "message.chars"}
    assert seen["message.chars"] == len(hidden)  # what the caller sent


def test_an_apostrophe_typed_as_an_acute_accent_still_reads_as_one(score: Score) -> None:
    assert normalise_text("I don\u00b4t want a human") == "I don't want a human"
    assert score("I don\u00b4t need an agent").facts["requested_human"] is False


def test_a_message_of_only_invisible_characters_is_empty(score: Score) -> None:
    scored = score("\u200b\u200b\ufeff")
    assert scored.facts["requested_human"] is False and scored.scores.sentiment == 0.0


def test_every_format_character_is_removed() -> None:
    # The set is built from planes 0, 1 and 14 only, where Unicode has put them all.
    every = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"}
    assert every == _FORMAT


def derived_lookalikes() -> dict[int, str]:
    """The look-alike table as escalator.scoring.text documents its derivation."""
    table = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or unicodedata.normalize("NFKC", char) != char:
            continue
        script, category = categories.aliases_categories(char)
        if script in ("LATIN", "COMMON", "INHERITED") or not category.startswith("L"):
            continue
        latin = sorted({g["c"] for g in glyphs
                        if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()})
        if len(latin) == 1:
            table[ord(char)] = "I" if char.isupper() and latin[0] == "l" else latin[0]
    return table


def test_the_lookalike_table_is_unicodes() -> None:
    derived = derived_lookalikes()
    if derived != {code: chr(latin) for code, latin in _LOOKALIKES.items()}:
        keys = sorted(derived)
        pytest.fail("Unicode's confusables moved; the new table:\n"
                    + "".join(f"\\u{k:04x}" if k < 0x10000 else f"\\U{k:08x}" for k in keys)
                    + "\n" + "".join(derived[k] for k in keys))
    assert len(derived) > 250
