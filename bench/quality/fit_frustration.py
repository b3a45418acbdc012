"""Fit the frustration weights of scoring.yaml to people's ratings; offline, never at run time.

    python -m bench.quality.fit_frustration ../shared/data [--rules rules] [--ridge 1.0]

Each customer turn of dfrustration_dev.txt is turned into the evidence the service itself
sees (the same code: VADER compound through sentiment.compound, cue labels through the
phrase index and frustration.cues_of), and the weights of

    evidence = baseline + negative x neg + positive x pos + the weights of the cues fired
    frustration.score = 1 / (1 + exp(-evidence))

are fitted by least squares against the mean rating / 4 (Levenberg-Marquardt, in plain
Python: a dozen parameters need no numerical library). To guard against overfitting:

- the weights are fitted on the even-numbered dialogues only, and Pearson/Spearman are
  reported on the odd-numbered ones (held out) as well as on the fitted half and the whole;
- a ridge term pulls each weight towards the value already in scoring.yaml (a policy
  owner's prior), so a cue that fired on three tweets does not get an extreme weight
  from them; `--ridge` sets how hard (0 = plain least squares);
- the fit is repeated the other way round (odd fitted, even held out) to show how much
  the weights move with the data.

It prints the weights as YAML to paste into scoring.yaml (with how and when they were
fitted); it writes nothing. Then run bench.quality.quality, which also checks satisfaction on
STC-3, a data set the fit never saw.
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.stats import pearson, spearman
from bench.quality import quality
from escalator.config import default_rules_dir
from escalator.scoring import frustration, sentiment
from escalator.scoring.lexicons import Lexicons, load_lexicons
from escalator.scoring.text import fold, split_words

BASE = ("baseline", "negative_sentiment", "positive_sentiment")


@dataclass(frozen=True)
class Example:
    dialogue: int
    features: tuple[float, ...]
    target: float


def evidence(text: str, lexicons: Lexicons) -> tuple[float, tuple[str, ...]]:
    """The VADER compound and the cue labels of a message, exactly as score_turn gets them."""
    words = split_words(fold(text))
    matches = lexicons.index.find(words.words)
    return (sentiment.compound(text, lexicons),
            frustration.cues_of(text, matches, lexicons.params))


def examples(path: Path, lexicons: Lexicons, names: Sequence[str]) -> list[Example]:
    """One example per rated customer turn: features in the order of `names`."""
    column = {name: i for i, name in enumerate(names)}
    result = []
    for number, dialogue in enumerate(quality.frustration_dialogues(path)):
        for text, rating in dialogue:
            if rating is None:
                continue
            compound, cues = evidence(text, lexicons)
            row = [0.0] * len(names)
            row[0] = 1.0
            row[1] = max(0.0, -compound)
            row[2] = max(0.0, compound)
            for cue in cues:
                row[column[cue]] = 1.0
            result.append(Example(number, tuple(row), rating / 4))
    return result


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def predict(weights: Sequence[float], example: Example) -> float:
    return _sigmoid(sum(w * x for w, x in zip(weights, example.features, strict=True)))


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems here are about 15 x 15)."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def _loss(weights: Sequence[float], data: Sequence[Example], prior: Sequence[float],
          ridge: float) -> float:
    errors = sum((predict(weights, e) - e.target) ** 2 for e in data)
    # The baseline is not pulled: it only sets where a message without evidence sits.
    return errors + ridge * sum((w - p) ** 2 for w, p in zip(weights[1:], prior[1:],
                                                             strict=True))


def fit(data: Sequence[Example], prior: Sequence[float], ridge: float,
        rounds: int = 200) -> list[float]:
    """Least squares of the logistic model, ridge towards `prior` (Levenberg-Marquardt)."""
    n = len(prior)
    weights = list(prior)
    damping = 1e-2
    loss = _loss(weights, data, prior, ridge)
    for _ in range(rounds):
        normal = [[0.0] * n for _ in range(n)]
        gradient = [0.0] * n
        for e in data:
            p = predict(weights, e)
            slope = p * (1 - p)
            jac = [slope * x for x in e.features]
            residual = e.target - p
            for i in range(n):
                if jac[i]:
                    gradient[i] += jac[i] * residual
                    for j in range(n):
                        normal[i][j] += jac[i] * jac[j]
        for i in range(1, n):
            normal[i][i] += ridge
            gradient[i] -= ridge * (weights[i] - prior[i])
        for i in range(n):
            normal[i][i] += damping * (1 + normal[i][i])
        step = _solve(normal, gradient)
        trial = [w + s for w, s in zip(weights, step, strict=True)]
        trial_loss = _loss(trial, data, prior, ridge)
        if trial_loss < loss:
            improvement = loss - trial_loss
            weights, loss, damping = trial, trial_loss, damping / 3
            if improvement < 1e-10:
                break
        else:
            damping *= 4
    return weights


def agreement(weights: Sequence[float], data: Sequence[Example]) -> str:
    ours = [predict(weights, e) for e in data]
    people = [e.target for e in data]
    return (f"Pearson {pearson(ours, people):.3f}  "
            f"Spearman {spearman(ours, people):.3f}  ({len(data)} turns)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the data sets (../shared/data)")
    parser.add_argument("--rules", type=Path, default=None,
                        help="rule set folder (default: the packaged rules)")
    parser.add_argument("--ridge", type=float, default=1.0,
                        help="how hard weights are pulled towards scoring.yaml's (default 1)")
    args = parser.parse_args(argv)
    lexicons = load_lexicons((args.rules or default_rules_dir()) / "lexicons")
    params = lexicons.params
    labels = sorted(params.cue_weights)
    names = [*BASE, *labels]
    prior = [params.frustration_baseline, params.negative_sentiment_weight,
             params.positive_sentiment_weight, *(params.cue_weights[label] for label in labels)]
    data = examples(args.data / quality.FRUSTRATION, lexicons, names)
    even = [e for e in data if e.dialogue % 2 == 0]
    odd = [e for e in data if e.dialogue % 2 == 1]

    print("cue counts (even / odd):", ", ".join(
        f"{name} {sum(e.features[i] > 0 for e in even)}/{sum(e.features[i] > 0 for e in odd)}"
        for i, name in enumerate(names) if i >= len(BASE)))
    print(f"current weights     even  {agreement(prior, even)}")
    print(f"                    odd   {agreement(prior, odd)}")
    print(f"                    whole {agreement(prior, data)}")
    weights = fit(even, prior, args.ridge)
    print(f"fitted on even      even  {agreement(weights, even)}")
    print(f"                    odd   {agreement(weights, odd)}   <- held out")
    print(f"                    whole {agreement(weights, data)}")
    reverse = fit(odd, prior, args.ridge)
    print(f"fitted on odd       even  {agreement(reverse, even)}   <- held out")
    print(f"                    whole {agreement(reverse, data)}")
    print(f"\n{'weight':20s} {'prior':>7s} {'even':>7s} {'odd':>7s}")
    for name, p, w, r in zip(names, prior, weights, reverse, strict=True):
        print(f"{name:20s} {p:7.2f} {w:7.2f} {r:7.2f}")

    rated = statistics.fmean(e.target for e in data)
    print(f"\n# mean rating / 4 on the whole set: {rated:.3f}")
    print(f"# Fitted {datetime.date.today().isoformat()} by bench/quality/fit_frustration.py "
          f"(ridge {args.ridge:g}) on the even-numbered dialogues of dfrustration_dev")
    for name, w in zip(names, weights, strict=True):
        print(f"{name}: {w:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
