"""Fitted layers: frustration.fitted and breakdown.score, each a logistic over named features.

The lexicon scorers give evidence a person can read (cues, sentiment, loop events); these
layers weigh that evidence together with a few facts about the conversation so far, with
weights fitted on people's labels by `escalator fit` (escalator/tools/fit.py) and stored
in rules/lexicons/fitted_*.yaml. Every score is

    log-odds = intercept + sum over features of weight x (value - center)
    score = 1 / (1 + exp(-log-odds))

where a feature's center is its mean on the data the weights were fitted on, so each term
says how far this turn's value pushes the score from that of a typical turn: the terms
with the largest size are the turn's contributions (frustration.contributions,
breakdown.contributions). A feature's weight may be fixed rather than fitted (frustration's
lexicon evidence counts at weight 1: see FIXED).

Only language-independent features: the lexicon scorers' own outputs (computed per
language from the lexicons), counts, and context from the scoring memory. No word is a
feature, so what the weights learn from one data set cannot be its vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Each model's features, in the order score_turn computes their values, with what they
# mean (the fit command's report and the weights files show these).
FRUSTRATION_FEATURES: dict[str, str] = {
    "lexicon": "frustration.score's evidence as log-odds (sentiment and cues)",
    "words": "log(1 + the message's words)",
    "questions": "questions in the message (complexity.questions), at most 3",
    "first": "1 when no earlier message of the conversation was scored, else 0",
    "previous": "the evidence of the conversation's previous message (0 for the first)",
    "mean": "frustration.mean before this message (0 for the first)",
}
BREAKDOWN_FEATURES: dict[str, str] = {
    "level": "the loop level behind loop.score (loop.score = 1 - exp(-level))",
    "fallback_streak": "log(1 + loop.fallback_streak)",
    "fallbacks": "log(1 + loop.fallbacks)",
    "not_understood": "log(1 + loop.not_understood)",
    "intent_repeats": "log(1 + loop.intent_repeats)",
    "bot_repeats": "log(1 + loop.bot_repeats)",
    "oscillations": "log(1 + loop.oscillations)",
    "rejections": "log(1 + loop.rejections)",
    "reasks": "log(1 + loop.reasks)",
    "answers": "log(1 + loop.answers)",
    "not_understood_now": "1 when this turn was not understood, else 0",
    "rejection_now": "1 when this turn turned the bot down, else 0",
    "answer_now": "1 when this turn gave the bot what it asked for, else 0",
}
FEATURES: dict[str, dict[str, str]] = {"frustration": FRUSTRATION_FEATURES,
                                       "breakdown": BREAKDOWN_FEATURES}
# Features whose weight is not fitted: the frustration layer adds to the lexicon evidence
# rather than re-weighing it, so a message scores in every language as the lexicons say,
# moved only by what the conversation adds.
FIXED: dict[str, dict[str, float]] = {"frustration": {"lexicon": 1.0}, "breakdown": {}}
# The sign a fitted weight may have (+1: not below 0; -1: not above 0): more loop events
# cannot make a breakdown less likely, and progress cannot make it more likely. Without
# these the fit learns the dev data's templates (a phone bot proposing another date with
# the same prompt id) as a sign that all is well.
SIGNS: dict[str, dict[str, int]] = {
    "frustration": {},
    "breakdown": {**{name: 1 for name in BREAKDOWN_FEATURES},
                  "answers": -1, "answer_now": -1},
}
# A contribution smaller than this is not shown (it moves the score by well under 1%).
SHOWN_ABOVE = 0.01
# How many results FittedModel.remembered() keeps at most.
REMEMBER_AT_MOST = 4096


@dataclass(frozen=True)
class Term:
    """One feature's part of a fitted score: weight x (value - center)."""

    name: str
    position: int  # the index of its value in the model's feature values
    weight: float
    center: float


@dataclass(frozen=True)
class FittedModel:
    """A logistic over named features, as stored in a fitted_*.yaml file."""

    name: str
    intercept: float
    terms: tuple[Term, ...]  # features with a weight other than 0, in feature order
    top: int  # how many contributions a turn shows
    # The terms as plain tuples (position, weight, center, name): apply() runs on every
    # turn, and unpacking a tuple is cheaper than reading four attributes.
    _plain: tuple[tuple[int, float, float, str], ...] = ()
    # Results by feature values (see remembered()).
    _seen: dict[tuple[float, ...], tuple[float, tuple[str, ...]]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, intercept: float, weights: Mapping[str, tuple[float, float]],
           top: int) -> FittedModel:
        """The model of `name` with {feature: (weight, center)}; features not given weigh 0."""
        order = list(FEATURES[name])
        terms = tuple(Term(feature, order.index(feature), weight, center)
                      for feature, (weight, center) in sorted(
                          weights.items(), key=lambda item: order.index(item[0]))
                      if weight != 0.0)
        return cls(name, intercept, terms, top,
                   tuple((t.position, t.weight, t.center, t.name) for t in terms))

    def log_odds(self, values: Sequence[float]) -> float:
        """The score's log-odds for these feature values."""
        return self.intercept + sum([weight * (values[position] - center)
                                     for position, weight, center, _ in self._plain])

    def apply(self, values: tuple[float, ...]) -> tuple[float, tuple[str, ...]]:
        """The score (0..1) and its largest contributions, largest first, as
        "feature +0.42" (log-odds: +0.42 raises the odds by half)."""
        total = self.intercept
        shown: list[tuple[float, str, float]] = []
        # One pass, no intermediate lists: this runs on every turn.
        for position, weight, center, name in self._plain:
            part = weight * (values[position] - center)
            total += part
            if part > SHOWN_ABOVE:
                shown.append((part, name, part))
            elif part < -SHOWN_ABOVE:
                shown.append((-part, name, part))
        if len(shown) > 1:
            shown.sort(reverse=True)
        labels = []
        known = _LABELS.get
        for _, name, part in shown[:self.top]:
            if -1e6 < part < 1e6:
                key = (name, int(part * 100.0 + (0.5 if part > 0.0 else -0.5)))
                labels.append(known(key) or _new_label(key))
            else:  # a stored memory out of all range (inf): say so, keep nothing
                labels.append(f"{name} {part:+.2f}")
        if total < -30.0:
            return 0.0, tuple(labels)
        return 1.0 / (1.0 + math.exp(-total)), tuple(labels)

    def remembered(self, values: tuple[float, ...]) -> tuple[float, tuple[str, ...]]:
        """apply(), remembered by the values (for breakdown's, which repeat: counts).
        Numbers only; at most REMEMBER_AT_MOST results."""
        seen = self._seen
        result = seen.get(values)
        if result is None:
            if len(seen) >= REMEMBER_AT_MOST:
                seen.clear()
            result = seen[values] = self.apply(values)
        return result


# "feature +0.42" labels, made once per feature and value in hundredths: formatting a
# float costs more than the rest of a contribution. Bounded: values past +-10 are not
# kept, and at most _LABELS_KEPT labels are.
_LABELS: dict[tuple[str, int], str] = {}
_LABELS_KEPT = 20000


def _new_label(key: tuple[str, int]) -> str:
    name, hundredths = key
    label = f"{name} {hundredths / 100:+.2f}"
    if -1000 < hundredths < 1000 and len(_LABELS) < _LABELS_KEPT:
        _LABELS[key] = label
    return label


def frustration_values(evidence: float, words: int, questions: int, scored_before: bool,
                       previous: float, mean: float) -> tuple[float, ...]:
    """The frustration layer's feature values, in FRUSTRATION_FEATURES order (the mean
    kept within 0..1 whatever a stored memory held)."""
    return (evidence, math.log1p(words), float(min(questions, 3)),
            0.0 if scored_before else 1.0, previous, min(1.0, max(0.0, mean)))


_LOG1P = tuple(math.log1p(n) for n in range(256))
LEVEL_AT_MOST = 50.0


def breakdown_values(level: float, fallback_streak: int, fallbacks: int, not_understood: int,
                     intent_repeats: int, bot_repeats: int, oscillations: int,
                     rejections: int, reasks: int, answers: int, not_understood_now: bool,
                     rejection_now: bool, answer_now: bool) -> tuple[float, ...]:
    """The breakdown layer's feature values, in BREAKDOWN_FEATURES order (the level kept
    at most LEVEL_AT_MOST whatever a stored memory held: loop.score is 1 long before)."""
    table = _LOG1P
    try:
        return (min(level, LEVEL_AT_MOST), table[fallback_streak], table[fallbacks],
                table[not_understood], table[intent_repeats], table[bot_repeats],
                table[oscillations], table[rejections], table[reasks], table[answers],
                1.0 if not_understood_now else 0.0, 1.0 if rejection_now else 0.0,
                1.0 if answer_now else 0.0)
    except IndexError:  # a long conversation: a count past the table
        return (min(level, LEVEL_AT_MOST), *(math.log1p(count) for count in (
                    fallback_streak, fallbacks, not_understood, intent_repeats, bot_repeats,
                    oscillations, rejections, reasks, answers)),
                1.0 if not_understood_now else 0.0, 1.0 if rejection_now else 0.0,
                1.0 if answer_now else 0.0)
