"""Scoring of one customer turn: sentiment, frustration, complexity, loops, requests for a person.

The pipeline loads the vocabularies once with load_lexicons(rules/lexicons) and then calls
score_turn() for every turn with the memory it stored after the previous one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalator.model import FactValue, Scores, Turn
from escalator.scoring import complexity, frustration, loops, sentiment
from escalator.scoring.fitted import breakdown_values, frustration_values
from escalator.scoring.lexicons import Lexicons, load_lexicons
from escalator.scoring.memory import Memory
from escalator.scoring.requests import requested_human
from escalator.scoring.text import (
    EMPTY_WORDS,
    Match,
    detect_language,
    fold,
    normalise_language,
    normalise_text,
    split_words,
)

__all__ = ["Lexicons", "ScoredTurn", "load_lexicons", "memory_after_release", "score_turn"]


@dataclass(frozen=True)
class ScoredTurn:
    """A turn's headline scores, its catalogue facts, and the scoring memory to store."""

    scores: Scores
    facts: dict[str, FactValue]
    memory: dict[str, Any]
    # The fitted layers' feature values (escalator.scoring.fitted), for `escalator fit`;
    # frustration's is () for a turn without text.
    frustration_features: tuple[float, ...] = ()
    breakdown_features: tuple[float, ...] = ()


def _number(value: float, lo: float, hi: float) -> float:
    """A fact number: finite, within its catalogue range, rounded to 4 decimals."""
    if not math.isfinite(value):
        value = 0.0
    # float(): max(0, 0.0) is the int 0, and the catalogue says "number".
    return float(round(max(lo, min(hi, value)), 4))


def memory_after_release(memory: Mapping[str, Any]) -> dict[str, Any]:
    """The stored scoring memory a conversation starts again from when an agent hands it
    back to the bot (see Memory.after_release)."""
    return Memory.from_json(memory).after_release().to_json()


def score_turn(turn: Turn, memory: Mapping[str, Any], lexicons: Lexicons) -> ScoredTurn:
    """Score one customer turn given the memory stored after the previous one ({} at first)."""
    params = lexicons.params
    previous = Memory.from_json(memory)
    message = turn.message
    # Normalised before anything reads it: a zero-width space or a Cyrillic look-alike
    # inside "human" must not hide a request for a person, nor change any score.
    text = normalise_text(message.text) if message.text else None
    if text is not None and (not text or text.isspace()):
        text = None

    words = EMPTY_WORDS
    matches: list[Match] = []
    casefolded = ""
    if text is not None:
        words = split_words(fold(text))
        matches = lexicons.index.find(words.words)
        casefolded = text.casefold()
    if message.language:
        language = normalise_language(message.language)
    else:
        language = detect_language(words.words, casefolded, lexicons.stop_words,
                                   lexicons.letters, params.language_min_votes,
                                   params.language_min_margin)

    compound = sentiment.compound(text, lexicons) if text is not None else None
    sentiment_facts, state = sentiment.step(previous, compound, params)
    frustration_facts, state = frustration.step(state, text, sentiment_facts.score, matches,
                                                params)
    complexity_facts = (complexity.assess(text, words, matches, lexicons) if text is not None
                        else complexity.NONE)
    loop_facts, state = loops.step(state, turn, words.words, lexicons)
    asked = requested_human(words, matches, message.intent, lexicons)
    state = state.evolve(turns=previous.turns + 1)

    if text is not None:
        frustration_features = frustration_values(
            frustration_facts.evidence, len(words.words), complexity_facts.questions,
            previous.frustration_weight > 0.0, previous.frustration_last,
            (previous.frustration_sum / previous.frustration_weight
             if previous.frustration_weight else 0.0))
        fitted_frustration, frustration_why = lexicons.frustration_model.apply(
            frustration_features)
    else:
        frustration_features, fitted_frustration, frustration_why = (), 0.0, ()
    breakdown_features = breakdown_values(
        state.loop_level, loop_facts.fallback_streak, loop_facts.fallbacks,
        loop_facts.not_understood, loop_facts.intent_repeats, loop_facts.bot_repeats,
        loop_facts.oscillations, loop_facts.rejections, loop_facts.reasks, loop_facts.answers,
        loop_facts.not_understood > previous.not_understood,
        loop_facts.rejections > previous.rejections, loop_facts.answers > previous.answers)
    # Remembered: breakdown's values are counts, the same few on most turns.
    breakdown, breakdown_why = lexicons.breakdown_model.remembered(breakdown_features)

    scores = Scores(
        sentiment=_number(sentiment_facts.score, -1, 1),
        frustration=_number(frustration_facts.score, 0, 1),
        complexity=_number(complexity_facts.score, 0, 1),
        loop=_number(loop_facts.score, 0, 1),
    )
    facts: dict[str, FactValue] = {
        "message.chars": len(message.text or ""),
        "message.language": language,
        "sentiment.score": scores.sentiment,
        "sentiment.mean": _number(sentiment_facts.mean, -1, 1),
        "sentiment.trend": _number(sentiment_facts.trend, -2, 2),
        "sentiment.negative_streak": sentiment_facts.negative_streak,
        "frustration.score": scores.frustration,
        "frustration.mean": _number(frustration_facts.mean, 0, 1),
        "frustration.cues": frustration_facts.cues,
        "frustration.fitted": _number(fitted_frustration, 0, 1),
        "frustration.contributions": frustration_why,
        "complexity.score": scores.complexity,
        "complexity.questions": complexity_facts.questions,
        "complexity.issues": complexity_facts.issues,
        "complexity.topics": complexity_facts.topics,
        "intent.low_confidence_streak": loop_facts.low_confidence_streak,
        "loop.score": scores.loop,
        "loop.repeats": loop_facts.repeats,
        "loop.fallback_streak": loop_facts.fallback_streak,
        "loop.fallbacks": loop_facts.fallbacks,
        "loop.bot_repeats": loop_facts.bot_repeats,
        "loop.intent_repeats": loop_facts.intent_repeats,
        "loop.oscillations": loop_facts.oscillations,
        "loop.not_understood": loop_facts.not_understood,
        "loop.rejections": loop_facts.rejections,
        "loop.answers": loop_facts.answers,
        "loop.reasks": loop_facts.reasks,
        "breakdown.score": _number(breakdown, 0, 1),
        "breakdown.contributions": breakdown_why,
        "requested_human": asked,
    }
    if message.intent is not None:
        facts["message.intent"] = message.intent
    if message.intent_confidence is not None:
        facts["intent.confidence"] = _number(message.intent_confidence, 0, 1)

    return ScoredTurn(scores=scores, facts=facts, memory=state.to_json(),
                      frustration_features=frustration_features,
                      breakdown_features=breakdown_features)
