"""Sentiment: VADER's compound score per turn, its decayed mean, trend and negative streak."""

from __future__ import annotations

import string
from dataclasses import dataclass, replace

from escalator.scoring.lexicons import Lexicons, Params
from escalator.scoring.memory import Memory
from escalator.scoring.text import fold_accents


def _vader_words(text: str) -> list[str]:
    """The words VADER looks up, tokenised as VADER does (split, punctuation stripped)."""
    words = []
    for token in text.split():
        stripped = token.strip(string.punctuation)
        words.append((token if len(stripped) <= 2 else stripped).lower())
    return words


def compound(text: str, lexicons: Lexicons) -> float:
    """VADER's compound score of a text, -1..1 (0 for empty text).

    VADER only moves away from 0 when a word is in its lexicon (or an emoji, which it
    turns into words), so texts without one skip the full analysis: same result, a
    fraction of the cost. Texts are accent-folded first so the extra words from
    sentiment.yaml ("pésimo" stored as "pesimo") match; case is kept because VADER
    reads capitals as emphasis. No cache: it would keep customer text in memory.
    """
    if not text or text.isspace():
        return 0.0
    folded = fold_accents(text)
    has_emoji = not folded.isascii() and not lexicons.vader_emoji.isdisjoint(folded)
    if not has_emoji and lexicons.vader_words.isdisjoint(_vader_words(folded)):
        return 0.0
    score = float(lexicons.analyzer.polarity_scores(folded)["compound"])
    return max(-1.0, min(1.0, score))


@dataclass(frozen=True)
class SentimentFacts:
    """The sentiment facts of a turn."""

    score: float
    mean: float
    trend: float
    negative_streak: int


def slope(values: tuple[float, ...]) -> float:
    """Least-squares slope of values over equally spaced turns (0 for fewer than two)."""
    count = len(values)
    if count < 2:
        return 0.0
    mean_x = (count - 1) / 2
    mean_y = sum(values) / count
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    denominator = sum((x - mean_x) ** 2 for x in range(count))
    return numerator / denominator


def step(memory: Memory, score: float | None, params: Params) -> tuple[SentimentFacts, Memory]:
    """Fold this turn's score into the conversation's sentiment.

    `score` is None for a turn without text (an intent-only voice turn): it reports 0
    but leaves the mean, the trend history and the negative streak as they were, because
    a turn we could not read says nothing about how the customer feels.
    """
    if score is None:
        mean = memory.sentiment_sum / memory.sentiment_weight if memory.sentiment_weight else 0.0
        trend = _clamp(slope(memory.sentiment_recent), -2, 2)
        return SentimentFacts(0.0, _clamp(mean, -1, 1), trend, memory.negative_streak), memory
    decay = params.sentiment_decay
    total = memory.sentiment_sum * decay + score
    weight = memory.sentiment_weight * decay + 1.0
    recent = (*memory.sentiment_recent, score)[-params.trend_window:]
    streak = memory.negative_streak + 1 if score <= params.negative_threshold else 0
    facts = SentimentFacts(score, _clamp(total / weight, -1, 1), _clamp(slope(recent), -2, 2),
                           streak)
    return facts, replace(memory, sentiment_sum=total, sentiment_weight=weight,
                          sentiment_recent=recent, negative_streak=streak)


def _clamp(value: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value))
