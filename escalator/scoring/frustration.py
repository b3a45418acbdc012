"""Frustration: negative sentiment plus customer-service cues, per turn and conversation-wide."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from escalator.scoring.lexicons import CUE, Params
from escalator.scoring.memory import Memory
from escalator.scoring.text import Match

SHOUTING = "shouting"
EXCLAMATION = "exclamation"
_PUNCTUATION_RUN = re.compile(r"[!?¡¿]{2,}")


@dataclass(frozen=True)
class FrustrationFacts:
    """The frustration facts of a turn."""

    score: float
    mean: float
    cues: tuple[str, ...]


def is_shouting(text: str, params: Params) -> bool:
    """Mostly capital letters, in a message long enough that it is not just "OK" or "NO"."""
    enough = params.shouting_min_letters * params.shouting_min_upper_ratio
    if text.islower() or (not text.isupper() and sum(map(str.isupper, text)) < enough):
        return False  # cheap exits: no capitals, or too few to reach the share
    letters = sum(map(str.isalpha, text))
    upper = sum(map(str.isupper, text))
    return letters >= params.shouting_min_letters and (
        upper >= params.shouting_min_upper_ratio * letters)


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
    return tuple(sorted(cues))


def turn_score(sentiment: float, cues: Iterable[str], params: Params) -> float:
    """0..1: each piece of evidence removes a share of the remaining calm (a noisy-OR)."""
    calm = 1.0 - params.sentiment_weight * max(0.0, -sentiment)
    for cue in cues:
        calm *= 1.0 - params.cue_weights.get(cue, 0.0)
    return max(0.0, min(1.0, 1.0 - calm))


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
    score = turn_score(sentiment, cues, params)
    total = memory.frustration_sum * params.frustration_decay + score
    weight = memory.frustration_weight * params.frustration_decay + 1.0
    facts = FrustrationFacts(score, max(0.0, min(1.0, total / weight)), cues)
    return facts, replace(memory, frustration_sum=total, frustration_weight=weight)
