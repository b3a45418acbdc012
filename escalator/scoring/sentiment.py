"""Sentiment: VADER's compound score per turn, its decayed mean, trend and negative streak."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import NamedTuple

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    SentimentIntensityAnalyzer,
    allcap_differential,
)

from escalator.scoring.lexicons import Lexicons, Params
from escalator.scoring.memory import Memory
from escalator.scoring.text import fold_accents


def _vader_tokens(text: str) -> list[str]:
    """The words VADER scores, tokenised as its SentiText does: split on whitespace, and
    punctuation stripped from each token unless that leaves 2 characters or fewer (":)")."""
    tokens = []
    for token in text.split():
        stripped = token.strip(string.punctuation)
        tokens.append(token if len(stripped) <= 2 else stripped)
    return tokens


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
    if not folded.isascii() and not lexicons.vader_emoji.isdisjoint(folded):
        score = float(lexicons.analyzer.polarity_scores(folded)["compound"])
    else:
        # The tokens are made once, for the pre-check and for the analysis.
        tokens = _vader_tokens(folded)
        lowered = [token.lower() for token in tokens]
        if lexicons.vader_words.isdisjoint(lowered):
            return 0.0
        score = _compound_of_tokens(lexicons.analyzer, folded.strip(), tokens, lowered)
    return max(-1.0, min(1.0, score))


def vader_compound_without_emoji(analyzer: SentimentIntensityAnalyzer, text: str) -> float:
    """VADER's compound score for a text known to hold no emoji.

    The same steps as SentimentIntensityAnalyzer.polarity_scores() (vaderSentiment
    3.3.2), without its first pass, which rebuilds the text character by character to
    spell out emojis: a quarter of VADER's cost on a typical message, and a no-op when
    there is no emoji. tests/scoring checks both give the same score.
    """
    text = text.strip()
    tokens = _vader_tokens(text)
    return _compound_of_tokens(analyzer, text, tokens, [token.lower() for token in tokens])


class _Neighbourhood(NamedTuple):
    """What SentimentIntensityAnalyzer.sentiment_valence() reads of a SentiText."""

    words_and_emoticons: list[str]
    is_cap_diff: bool


def _compound_of_tokens(analyzer: SentimentIntensityAnalyzer, text: str, tokens: list[str],
                        lowered: list[str]) -> float:
    """VADER's compound score of a stripped, emoji-free text, given its tokens (as
    _vader_tokens() makes them) and their lower-case forms.

    The loop is polarity_scores()'s, with two shortcuts that keep every value the same.
    A token that is not in the lexicon scores 0 without the call (sentiment_valence()
    would append 0 for it). A lexicon word is scored on its neighbourhood, the three
    tokens before it to the two after it, rather than on the whole message: that is all
    sentiment_valence() and its checks read around position i (i-3 .. i+2, each read
    guarded by the same bounds tests, which give the same answers on the neighbourhood),
    and its negation and idiom checks lower-case the whole list they are given, up to
    six times per lexicon word. Only the capitals test needs the whole message, and it
    is passed in computed on all the tokens.
    """
    lexicon = analyzer.lexicon
    last = len(tokens) - 1
    is_cap_diff = allcap_differential(tokens)
    sentiments: list[float] = []
    for i, word in enumerate(lowered):
        if (word not in lexicon or word in BOOSTER_DICT
                or (word == "kind" and i < last and lowered[i + 1] == "of")):
            sentiments.append(0)
            continue
        first = max(0, i - 3)
        around = _Neighbourhood(tokens[first:i + 3], is_cap_diff)
        sentiments += analyzer.sentiment_valence(0, around, tokens[i], i - first, [])
    if "but" in lowered:  # _but_check() changes nothing in a text without "but"
        sentiments = analyzer._but_check(tokens, sentiments)
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
