"""Fixtures for the scoring tests: the shipped vocabularies, and a way to play a conversation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from escalator.model import BotReply, Message, Turn
from escalator.scoring import Lexicons, ScoredTurn, load_lexicons, score_turn

LEXICONS_DIR = Path(__file__).resolve().parents[2] / "rules" / "lexicons"


@pytest.fixture(scope="session")
def lexicons() -> Lexicons:
    """The vocabularies shipped in rules/lexicons."""
    return load_lexicons(LEXICONS_DIR)


def make_turn(text: str | None = None, *, intent: str | None = None,
              confidence: float | None = None, language: str | None = None,
              prompt: str | None = None, fallback: bool = False, turn_id: str = "t-1") -> Turn:
    """A customer turn as the pipeline would build it."""
    return Turn(turn_id, Message(text=text, intent=intent, intent_confidence=confidence,
                                 language=language),
                BotReply(prompt_id=prompt, fallback=fallback))


@pytest.fixture
def turn() -> Callable[..., Turn]:
    """Build a customer turn: turn("text", intent=..., confidence=..., prompt=..., fallback=...)."""
    return make_turn


@pytest.fixture
def score(lexicons: Lexicons) -> Callable[..., ScoredTurn]:
    """Score one turn on its own (a first turn, empty memory)."""

    def run(text: str | None = None, memory: dict[str, Any] | None = None,
            **turn: Any) -> ScoredTurn:
        return score_turn(make_turn(text, **turn), memory or {}, lexicons)

    return run


@pytest.fixture
def converse(lexicons: Lexicons) -> Callable[[Iterable[Turn | str]], list[ScoredTurn]]:
    """Score a conversation turn by turn, carrying the memory like the pipeline does."""

    def run(turns: Iterable[Turn | str]) -> list[ScoredTurn]:
        memory: dict[str, Any] = {}
        results = []
        for index, item in enumerate(turns, start=1):
            turn = make_turn(item, turn_id=f"t-{index}") if isinstance(item, str) else item
            result = score_turn(turn, memory, lexicons)
            memory = result.memory
            results.append(result)
        return results

    return run
