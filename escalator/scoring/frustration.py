"""Frustration: negative sentiment plus customer-service cues, per turn and conversation-wide."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

from escalator.scoring.lexicons import CUE, Params
from escalator.scoring.memory import Memory
from escalator.scoring.text import Match

SHOUTING = "shouting"
EXCLAMATION = "exclamation"
LONG_MESSAGE = "long_message"
_PUNCTUATION_RUN = re.compile(r"[!?¡¿]{2,}")


@dataclass(frozen=True)
class FrustrationFacts:
    """The frustration facts of a turn."""

    score: float
    mean: float
    cues: tuple[str, ...]
    # the score's log-odds (0 for a turn without text), for the fitted layer
    evidence: float = 0.0


def is_shouting(text: str, params: Params) -> bool:
    """Capitals used as shouting: the whole message, or a run of words inside it.

    The whole message counts when it has at least `shouting.min_letters` letters and
    `shouting.min_upper_ratio` of them are capitals. A run counts when at least
    `shouting.segment_words` words in a row are in capitals and hold at least
    `shouting.min_letters` letters ("my order... THE PARCEL NEVER CAME"), so a short
    acronym ("UPS", "DM") or a short "OK THX" is not shouting.
    """
    if text.islower():
        return False  # cheap exit: no capitals at all
    upper = _count_capitals(text)
    if upper < params.shouting_min_letters * min(1.0, params.shouting_min_upper_ratio):
        return False  # too few capitals for either kind of shouting
    letters = sum(map(str.isalpha, text))
    if letters >= params.shouting_min_letters and upper >= (
            params.shouting_min_upper_ratio * letters):
        return True
    return _has_shouted_run(text, params)


_ASCII_CAPITALS = string.ascii_uppercase.encode("ascii")


def _count_capitals(text: str) -> int:
    """How many characters of the text are capitals (str.isupper)."""
    if text.isascii():
        # Most messages have a capital or two ("I", a name), so this runs on most
        # turns. In ASCII text the capitals are exactly A-Z, and deleting them with
        # bytes.translate is one pass in C rather than a Python call per character.
        raw = text.encode("ascii")
        return len(raw) - len(raw.translate(None, _ASCII_CAPITALS))
    return sum(map(str.isupper, text))


def _has_shouted_run(text: str, params: Params) -> bool:
    run_words = run_letters = 0
    for token in text.split():
        if token.isupper():
            run_words += 1
            run_letters += sum(map(str.isalpha, token))
            if (run_words >= params.shouting_segment_words
                    and run_letters >= params.shouting_min_letters):
                return True
        elif any(map(str.isalpha, token)):
            run_words = run_letters = 0  # a word with small letters ends the run
        # tokens without letters ("-", "3") neither end nor extend a run
    return False


def has_punctuation_run(text: str, params: Params) -> bool:
    """A run of ! and ? at least `exclamation.min_run` long ("!!!", "???", "?!")."""
    return any(len(run.group()) >= params.exclamation_min_run
               for run in _PUNCTUATION_RUN.finditer(text))


def cues_of(text: str, matches: Iterable[Match], params: Params) -> tuple[str, ...]:
    """The frustration cue labels that fire in a message, sorted."""
    cues = {match.label for match in matches if match.kind == CUE}
    if is_shouting(text, params):
        cues.add(SHOUTING)
    if has_punctuation_run(text, params):
        cues.add(EXCLAMATION)
    if len(text.split()) >= params.long_message_min_words:
        cues.add(LONG_MESSAGE)
    return tuple(sorted(cues))


def log_odds(sentiment: float, cues: Iterable[str], params: Params) -> float:
    """The evidence for frustration in one message, as log-odds (see turn_score).

    A sum of named parts, so every part of a score can be read back: the baseline of a
    message with no evidence, the negative and the positive side of the sentiment
    (each weighted by how far from neutral it is), and one weight per cue that fired
    (each label counts once; gratitude has a negative weight).
    """
    total = params.frustration_baseline
    if sentiment < 0.0:
        total -= params.negative_sentiment_weight * sentiment
    else:
        total += params.positive_sentiment_weight * sentiment
    weights = params.cue_weights
    for cue in cues:
        total += weights.get(cue, 0.0)
    return total


def turn_score(sentiment: float, cues: Iterable[str], params: Params) -> float:
    """0..1: the logistic of the evidence, on the scale of people's ratings (0-4 / 4).

    The weights were fitted so that the score estimates how frustrated people would
    rate the message (bench/quality/fit_frustration.py): 0.25 is "a little", 0.75 "clearly".
    Evidence adds up without ever passing 1, and every cue moves the score the same
    way whatever else fired.
    """
    return score_of(log_odds(sentiment, cues, params))


def score_of(evidence: float) -> float:
    """0..1: the logistic of log-odds evidence."""
    if evidence < -30.0:  # exp() would overflow; the score is 0 to 13 decimals anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(-evidence))


def step(memory: Memory, text: str | None, sentiment: float, matches: Iterable[Match],
         params: Params) -> tuple[FrustrationFacts, Memory]:
    """Score this turn's frustration and fold it into the conversation's decayed mean.

    A turn without text reports 0 and leaves the mean as it was (see sentiment.step).
    """
    if text is None:
        mean = (memory.frustration_sum / memory.frustration_weight
                if memory.frustration_weight else 0.0)
        return FrustrationFacts(0.0, max(0.0, min(1.0, mean)), ()), memory
    cues = cues_of(text, matches, params)
    evidence = log_odds(sentiment, cues, params)
    score = score_of(evidence)
    total = memory.frustration_sum * params.frustration_decay + score
    weight = memory.frustration_weight * params.frustration_decay + 1.0
    facts = FrustrationFacts(score, max(0.0, min(1.0, total / weight)), cues, evidence)
    return facts, memory.evolve(frustration_sum=total, frustration_weight=weight,
                                frustration_last=evidence)
