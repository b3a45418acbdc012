"""`escalator fit`: rebuild the fitted layers' weights (rules/lexicons/fitted_*.yaml) from data.

    escalator fit frustration --data ../shared/data [--rules rules] [--out FILE]
    escalator fit breakdown --data ../shared/data [--rules rules] [--out FILE]

Offline, never at run time; needs numpy (`pip install escalator[fit]`), the service does
not. Every example is scored by the service's own score_turn with the rule set's
lexicons, so the features are exactly the ones the service computes
(ScoredTurn.frustration_features, .breakdown_features; see escalator.scoring.fitted).

- frustration: each rated customer turn of frustration/dfrustration_dev.txt (the mean of
  three people's 0-4 ratings / 4 as a soft label), every turn of a dialogue scored in
  order so the context features are the service's;
- breakdown: each phone-bot call of breakdown/BETOLD_valid.json at the caller's last turn
  (where the service acts), against its LUHF label (the caller hung up late or asked to
  be forwarded).

The model is a logistic regression (cross-entropy, soft labels allowed) with an L2
penalty on the standardised features; FIXED features enter with their fixed weight and
SIGNS bound the sign of others (a weight that comes out on the wrong side is set to 0
and the rest refitted). The penalty's strength is chosen by 5-fold cross-validation,
grouped by dialogue (a dialogue's turns are never on both sides), and its quality is
measured by nested cross-validation: for each of 5 outer folds the strength is chosen by
an inner 5-fold CV on the other four, and the model fitted on them is scored on the
held-out fold. The shipped weights are a fit on all of the data with the strength the
CV chose; the even and odd halves are scored for information only. Everything is
deterministic: folds by the dialogue's place in the file, no random numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalator.model import BotReply, Message, Turn
from escalator.scoring import Lexicons, score_turn
from escalator.scoring.fitted import FEATURES, FIXED, SIGNS
from escalator.tools.corpus import breakdown_turns, dfrustration_dialogues
from escalator.tools.stats import pearson, roc_auc

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]

FRUSTRATION_DATA = "frustration/dfrustration_dev.txt"
BREAKDOWN_DATA = "breakdown/BETOLD_valid.json"
DATA = {"frustration": FRUSTRATION_DATA, "breakdown": BREAKDOWN_DATA}
FOLDS = 5
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
TOP = 3  # contributions shown per turn
DECIMALS = 4


class FitError(Exception):
    """The data cannot be read or fitted (the message says why)."""


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Examples:
    """Feature rows, labels (0..1) and the dialogue each row comes from."""

    model: str
    rows: list[tuple[float, ...]]
    labels: list[float]
    groups: list[int]
    lexicon_scores: list[float]  # the lexicon score of each row, for comparison


def frustration_examples(data: Path, lexicons: Lexicons) -> Examples:
    """One row per rated customer turn, each dialogue scored turn by turn."""
    rows, labels, groups, lexicon = [], [], [], []
    for number, dialogue in enumerate(dfrustration_dialogues(
            (data / FRUSTRATION_DATA).read_text(encoding="utf-8").splitlines())):
        memory: dict[str, Any] = {}
        for index, (text, rating) in enumerate(dialogue, 1):
            scored = score_turn(Turn(f"t-{index}", Message(text=text), BotReply()), memory,
                                lexicons)
            memory = scored.memory
            if rating is not None and scored.frustration_features:
                rows.append(scored.frustration_features)
                labels.append(rating / 4)
                groups.append(number)
                lexicon.append(scored.scores.frustration)
    return Examples("frustration", rows, labels, groups, lexicon)


def breakdown_examples(data: Path, lexicons: Lexicons) -> Examples:
    """One row per call: its features at the caller's last turn."""
    rows, labels, groups, lexicon = [], [], [], []
    calls = json.loads((data / BREAKDOWN_DATA).read_text(encoding="utf-8"))
    for number, call in enumerate(calls):
        memory: dict[str, Any] = {}
        last = None
        for turn in breakdown_turns(call):
            last = score_turn(turn, memory, lexicons)
            memory = last.memory
        if last is None:
            continue
        rows.append(last.breakdown_features)
        labels.append(1.0 if call["LUHF"] == "luhf" else 0.0)
        groups.append(number)
        lexicon.append(last.scores.loop)
    return Examples("breakdown", rows, labels, groups, lexicon)


def examples(model: str, data: Path, lexicons: Lexicons) -> Examples:
    """The examples of one model from the data folder; FitError if a file is missing."""
    path = data / DATA[model]
    if not path.is_file():
        raise FitError(f"{path}: no such file (--data is the folder holding {DATA[model]})")
    found = (frustration_examples if model == "frustration" else breakdown_examples)(
        data, lexicons)
    if len(set(found.groups)) < 2 * FOLDS:
        raise FitError(f"{path}: too few dialogues to cross-validate ({len(set(found.groups))})")
    return found


# ------------------------------------------------------------------------------ measures


def _auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """ROC AUC of scores for labels >= 0.5."""
    return roc_auc(scores, [label >= 0.5 for label in labels])


def log_likelihood(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """The mean log-likelihood of (soft) labels under the predictions: higher is better,
    and unlike r or AUC it rewards probabilities that mean what they say."""
    total = 0.0
    for p, y in zip(predictions, labels, strict=True):
        p = min(max(p, 1e-12), 1 - 1e-12)
        total += y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(labels)


METRICS: dict[str, tuple[str, Callable[[Sequence[float], Sequence[float]], float]]] = {
    "frustration": ("Pearson r", pearson),
    "breakdown": ("ROC AUC", _auc),
}
# What the strength is chosen by, inside the cross-validation.
CHOICE = log_likelihood
# What a model's contributions are measured against (the centers written to the file):
# a typical message of the data (its mean), or none of the features (0: a conversation
# with no loop events, so each term is what an event adds).
REFERENCE = {"frustration": "mean", "breakdown": "zero"}


# ------------------------------------------------------------------------------ fitting


@dataclass(frozen=True)
class Fitted:
    """A fit on standardised features: intercept, one weight per column (0: left out)."""

    intercept: float
    weights: list[float]
    mean: list[float]
    spread: list[float]

    def log_odds(self, x: Array, offset: Array) -> Array:
        import numpy as np
        w = np.array(self.weights)
        result: Array = (self.intercept
                         + ((x - np.array(self.mean)) / np.array(self.spread)) @ w + offset)
        return result


class Fitter:
    """Penalised logistic regression for one model (see the module docstring)."""

    def __init__(self, model: str) -> None:
        try:
            import numpy
        except ImportError as exc:  # the service does not need numpy; fitting does
            raise FitError("fitting needs numpy: pip install 'escalator[fit]'") from exc
        self.np = numpy
        self.model = model
        names = list(FEATURES[model])
        self.fixed = {names.index(n): w for n, w in FIXED[model].items()}
        self.columns = [i for i in range(len(names)) if i not in self.fixed]
        self.signs = [SIGNS[model].get(names[i], 0) for i in self.columns]

    def split(self, rows: Sequence[tuple[float, ...]]) -> tuple[Array, Array]:
        """(the fitted columns, the fixed features' sum) of rows."""
        np = self.np
        full = np.array(rows, dtype=float)
        offset = np.zeros(len(rows))
        for column, weight in self.fixed.items():
            offset += weight * full[:, column]
        return full[:, self.columns], offset

    def _newton(self, x: Array, y: Array, offset: Array, strength: float) -> Array:
        np = self.np
        design = np.hstack([np.ones((len(y), 1)), x])
        penalty = strength * np.eye(design.shape[1])
        penalty[0, 0] = 0.0
        w = np.zeros(design.shape[1])
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-(design @ w + offset)))
            gradient = design.T @ (p - y) + penalty @ w
            hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
            step = np.linalg.solve(hessian, gradient)
            w = w - step
            if float(np.max(np.abs(step))) < 1e-12:
                break
        result: Array = np.asarray(w, dtype=float)
        return result

    def fit(self, x: Array, y: Array, offset: Array, strength: float) -> Fitted:
        """Fit with the sign bounds: a weight on the wrong side leaves, the rest refit."""
        mean = x.mean(axis=0)
        spread = x.std(axis=0)
        spread[spread == 0] = 1.0
        z = (x - mean) / spread
        active = list(range(x.shape[1]))
        while True:
            w = self._newton(z[:, active], y, offset, strength)
            wrong = [(-self.signs[col] * w[k + 1], col) for k, col in enumerate(active)
                     if self.signs[col] and -self.signs[col] * w[k + 1] > 0]
            if not wrong:
                break
            active.remove(max(wrong)[1])
        weights = [0.0] * x.shape[1]
        for k, col in enumerate(active):
            weights[col] = float(w[k + 1])
        return Fitted(float(w[0]), weights, [float(m) for m in mean],
                      [float(s) for s in spread])

    def predict(self, fitted: Fitted, x: Array, offset: Array) -> list[float]:
        return [float(v) for v in 1.0 / (1.0 + self.np.exp(-fitted.log_odds(x, offset)))]

    def cross_validate(self, x: Array, y: Array, offset: Array, groups: Sequence[int],
                       strength: float, metric: Callable[..., float]) -> list[float]:
        """The metric on each of FOLDS folds (grouped by dialogue) for one strength."""
        folds = fold_of(groups)
        scores = []
        for fold in range(FOLDS):
            train = self.np.array([f != fold for f in folds])
            fitted = self.fit(x[train], y[train], offset[train], strength)
            scores.append(metric(self.predict(fitted, x[~train], offset[~train]),
                                 list(y[~train])))
        return scores

    def choose(self, x: Array, y: Array, offset: Array, groups: Sequence[int],
               metric: Callable[..., float]) -> float:
        """The strength with the best mean CV score (the stronger one on a tie)."""
        best, best_score = STRENGTHS[-1], -math.inf
        for strength in reversed(STRENGTHS):
            score = statistics.fmean(self.cross_validate(x, y, offset, groups, strength,
                                                         metric))
            if score > best_score + 1e-12:
                best, best_score = strength, score
        return best


def fold_of(groups: Sequence[int]) -> list[int]:
    """Each row's fold: dialogues in order of first appearance, dealt round the folds."""
    order = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    return [order[g] % FOLDS for g in groups]


@dataclass(frozen=True)
class Outcome:
    """What `escalator fit` found: the weights file and the report."""

    yaml: str
    report: str


def run(model: str, data: Path, lexicons: Lexicons, command: str) -> Outcome:
    """Fit one model on the data folder: the weights file's text and a report."""
    found = examples(model, data, lexicons)
    fitter = Fitter(model)
    np = fitter.np
    name, metric = METRICS[model]
    x, offset = fitter.split(found.rows)
    y = np.array(found.labels)
    groups = found.groups
    folds = fold_of(groups)

    outer, chosen, baseline = [], [], []
    for fold in range(FOLDS):
        train = np.array([f != fold for f in folds])
        inner_groups = [g for g, keep in zip(groups, train, strict=True) if keep]
        strength = fitter.choose(x[train], y[train], offset[train], inner_groups, CHOICE)
        fitted = fitter.fit(x[train], y[train], offset[train], strength)
        held = list(y[~train])
        outer.append(metric(fitter.predict(fitted, x[~train], offset[~train]), held))
        baseline.append(metric([s for s, keep in zip(found.lexicon_scores, train, strict=True)
                                if not keep], held))
        chosen.append(strength)

    strength = fitter.choose(x, y, offset, groups, CHOICE)
    final = fitter.fit(x, y, offset, strength)
    intercept, terms = _terms(model, fitter, final, found.rows)
    predictions = fitter.predict(final, x, offset)
    halves = {half: metric([p for p, g in zip(predictions, groups, strict=True)
                            if g % 2 == parity],
                           [v for v, g in zip(found.labels, groups, strict=True)
                            if g % 2 == parity]) for half, parity in (("even", 0), ("odd", 1))}
    record = {
        "command": command,
        "data": DATA[model],
        "examples": len(found.rows),
        "dialogues": len(set(groups)),
        "strength": strength,
        "nested_cv": f"{name} {statistics.fmean(outer):.3f} ± {statistics.pstdev(outer):.3f} "
                     f"over {FOLDS} folds by dialogue",
        "lexicon_score_same_folds": f"{name} {statistics.fmean(baseline):.3f} ± "
                                    f"{statistics.pstdev(baseline):.3f}",
    }
    text = weights_yaml(model, intercept, terms, record)
    report = _report(model, name, outer, baseline, chosen, strength, halves, terms, final,
                     fitter, len(found.rows), len(set(groups)))
    return Outcome(text, report)


def _terms(model: str, fitter: Fitter, fitted: Fitted, rows: Sequence[tuple[float, ...]]
           ) -> tuple[float, dict[str, tuple[float, float]]]:
    """The intercept and {feature: (weight, center)} on the raw scale, rounded as written
    to the file. Centers are REFERENCE's: the log-odds are the same whatever they are,
    only what a contribution is measured against changes."""
    names = list(FEATURES[model])
    means = [statistics.fmean(row[i] for row in rows) for i in range(len(names))]
    intercept = fitted.intercept
    terms: dict[str, tuple[float, float]] = {}
    for i, feature in enumerate(names):
        center = means[i] if REFERENCE[model] == "mean" else 0.0
        if i in fitter.fixed:
            weight = fitter.fixed[i]
            intercept += weight * center  # the fixed features entered uncentred
        else:
            k = fitter.columns.index(i)
            weight = fitted.weights[k] / fitted.spread[k]
            intercept += weight * (center - fitted.mean[k])
        terms[feature] = (round(weight, DECIMALS), round(center, DECIMALS))
    return round(intercept, DECIMALS), terms


def _number(value: float) -> str:
    text = f"{value:.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0.0" if text in ("0", "-0") else text if "." in text else f"{text}.0"


def weights_yaml(model: str, intercept: float, terms: dict[str, tuple[float, float]],
                 record: dict[str, Any]) -> str:
    """The weights file, as `escalator fit` writes it (a test compares it byte for byte)."""
    fact = "frustration.fitted" if model == "frustration" else "breakdown.score"
    lines = [
        f"# The fitted {model} layer ({fact}).",
        "#",
        "# WRITTEN BY `escalator fit`: refit rather than edit (a test checks this file is",
        "# exactly what the command produces from the data). See docs/quality/fitted-layer.md.",
        "#",
        "#   log-odds = intercept + sum of weight x (value - center)",
        "#   score = 1 / (1 + exp(-log-odds))",
        "#",
        *(["# center is the feature's mean on the data, so each term is how far this turn",
           "# pushes the score from that of a typical message;"]
          if REFERENCE[model] == "mean" else
          ["# centers are 0, so each term is what the feature adds to a conversation with no",
           "# loop events (whose log-odds are the intercept);"]),
        f"# the largest `top` terms are the response's {model}.contributions.",
        "# A weight of 0 means the fit left the feature out.",
        f"model: {model}",
        f"intercept: {_number(intercept)}",
        f"top: {TOP}",
        "features:",
    ]
    width = max(len(name) for name in terms)
    for name, (weight, center) in terms.items():
        note = FEATURES[model][name]
        if name in FIXED[model]:
            note = f"fixed, not fitted: {note}"
        lines.append(f"  {name + ':':<{width + 1}} {{weight: {_number(weight)}, "
                     f"center: {_number(center)}}}  # {note}")
    lines.append("fit:")
    for key, value in record.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else value
        lines.append(f"  {key}: {shown}")
    return "\n".join(lines) + "\n"


def _report(model: str, name: str, outer: Sequence[float], baseline: Sequence[float],
            chosen: Sequence[float], strength: float, halves: dict[str, float],
            terms: dict[str, tuple[float, float]], fitted: Fitted, fitter: Fitter,
            examples_count: int, dialogues: int) -> str:
    lines = [f"{model}: {examples_count} examples from {dialogues} dialogues ({DATA[model]})",
             f"nested CV {name}, {FOLDS} folds by dialogue: "
             f"{statistics.fmean(outer):.3f} ± {statistics.pstdev(outer):.3f}  "
             f"(folds: {', '.join(f'{v:.3f}' for v in outer)}; strengths chosen inside: "
             f"{', '.join(f'{s:g}' for s in chosen)})",
             f"lexicon score on the same folds:      {statistics.fmean(baseline):.3f} ± "
             f"{statistics.pstdev(baseline):.3f}",
             f"shipped fit: all data, L2 strength {strength:g} (chosen by {FOLDS}-fold CV)",
             f"halves, for information (the shipped fit saw both): even {halves['even']:.3f}, "
             f"odd {halves['odd']:.3f}",
             "",
             f"{'feature':<20} {'weight':>8} {'center':>8} {'effect':>8}  "
             "(effect: log-odds per standard deviation of the feature)"]
    names = list(FEATURES[model])
    for feature, (weight, center) in terms.items():
        i = names.index(feature)
        if i in fitter.fixed:
            effect = "fixed"
        else:
            k = fitter.columns.index(i)
            effect = f"{fitted.weights[k]:+.3f}"
        lines.append(f"{feature:<20} {weight:>8.4f} {center:>8.4f} {effect:>8}")
    return "\n".join(lines)


def write(outcome: Outcome, out: Path | None) -> None:
    """Write the weights file (or print it when `out` is None)."""
    if out is None:
        print(outcome.yaml, end="")
    else:
        out.write_text(outcome.yaml, encoding="utf-8")


def names() -> Iterable[str]:
    """The models `escalator fit` knows."""
    return FEATURES.keys()
