"""Sentiment: VADER's compound score per turn, its decayed mean, trend and negative streak."""

from __future__ import annotations

import string
from dataclasses import dataclass

from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText

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
    if has_emoji:
        score = float(lexicons.analyzer.polarity_scores(folded)["compound"])
    else:
        score = vader_compound_without_emoji(lexicons.analyzer, folded)
    return max(-1.0, min(1.0, score))


def vader_compound_without_emoji(analyzer: SentimentIntensityAnalyzer, text: str) -> float:
    """VADER's compound score for a text known to hold no emoji.

    The same steps as SentimentIntensityAnalyzer.polarity_scores() (vaderSentiment
    3.3.2), without its first pass, which rebuilds the text character by character to
    spell out emojis: a quarter of VADER's cost on a typical message, and a no-op when
    there is no emoji. tests/scoring checks both give the same score.
    """
    text = text.strip()
    sentitext = SentiText(text)
    words = sentitext.words_and_emoticons
    sentiments: list[float] = []
    for i, item in enumerate(words):
        lowered = item.lower()
        if lowered in BOOSTER_DICT or (
                lowered == "kind" and i < len(words) - 1 and words[i + 1].lower() == "of"):
            sentiments.append(0)
            continue
        sentiments = analyzer.sentiment_valence(0, sentitext, item, i, sentiments)
    sentiments = analyzer._but_check(words, sentiments)
    return float(analyzer.score_valence(sentiments, text)["compound"])


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
    return facts, memory.evolve(sentiment_sum=total, sentiment_weight=weight,
                          sentiment_recent=recent, negative_streak=streak)


def _clamp(value: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value))
