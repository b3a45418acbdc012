"""Fit the loop weights of scoring.yaml on BETOLD; prints the values and how well they do.

    python bench/fit_loops.py ../shared/data [--rules rules]

Run by hand when the loop events change, never by the service. The weights it prints go
into rules/lexicons/scoring.yaml (loops.half_life_turns and loops.weights) by hand.

How: every BETOLD dialogue is turned into the turns a bot platform would send (the same
mapping as bench/quality.py) and scored by the service's own score_turn with the shipped
vocabularies, so the loop *events* of each turn (bot repeat, oscillation, intent repeat,
not understood, rejection) are exactly the service's. Only the recursion that turns
events into loop.score is redone here, with candidate weights:

    level = level x 0.5 ** (1 / half_life) + sum(weight x event);  score = 1 - exp(-level)

and the largest level of a dialogue is ranked against its LUHF label (ROC AUC, the
quality.py measure; 1 - exp is monotone, so ranking levels ranks scores).

Against overfitting: the search sees only even-numbered dialogues; AUC is reported on
the odd-numbered ones (never seen by the search) and on all. Few parameters (a half-life
and five weights, each from a coarse grid), half-lives of 3-6 turns only (so an early
event fades within a conversation of ten turns), and the scale of the weights is not
fitted (AUC ignores it): it is fixed by setting the not-understood weight equal to the
hand-set fallback weight (both mean "the bot did not understand the customer"); the
prompt-side weights then get hand-set floors (FLOORS, below). The text-repeat and
fallback weights cannot be fitted here (BETOLD has no text, and the mapping never sets
bot.fallback) and are left as they are.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quality import BREAKDOWN, breakdown_turns, roc_auc

from escalator.config import default_rules_dir
from escalator.scoring import load_lexicons, score_turn

# The loop events fitted here, as the counter fact each one increments.
FITTED = ("bot_repeat", "oscillation", "intent_repeat", "not_understood", "rejection")
COUNTERS = {"bot_repeat": "loop.bot_repeats", "oscillation": "loop.oscillations",
            "intent_repeat": "loop.intent_repeats", "not_understood": "loop.not_understood",
            "rejection": "loop.rejections"}
HALF_LIVES = (3.0, 4.0, 5.0, 6.0)
PREFER_FADE = 0.01
# Hand-set floors, applied after the fit: on BETOLD a prompt id is a template (propose_date
# with a new date each time), so the fit gives the bot's side little or no weight; on bots
# whose prompt ids are questions, the same question again is the loop itself.
FLOORS = {"bot_repeat": 0.1, "oscillation": 0.1}
GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)

Events = list[tuple[int, ...]]


def dialogue_events(dialogue: dict[str, Any], lexicons: Any) -> Events:
    """The fitted loop events of each customer turn (0/1 each), in FITTED order."""
    memory: dict[str, Any] = {}
    before = dict.fromkeys(FITTED, 0)
    events: Events = []
    for index, turn in enumerate(breakdown_turns(dialogue), start=1):
        scored = score_turn(turn, memory, index, lexicons)
        memory = scored.memory
        now = {name: int(scored.facts[COUNTERS[name]]) for name in FITTED}
        events.append(tuple(now[name] - before[name] for name in FITTED))
        before = now
    return events


def largest_levels(dialogues: Sequence[Events], weights: Sequence[float],
                   half_life: float) -> list[float]:
    """The largest loop level each dialogue reaches with these weights."""
    decay = 0.5 ** (1 / half_life)
    result = []
    for events in dialogues:
        level = largest = 0.0
        for event in events:
            level = level * decay + sum(w * e for w, e in zip(weights, event, strict=True))
            largest = max(largest, level)
        result.append(largest)
    return result


def auc(dialogues: Sequence[Events], labels: Sequence[bool], weights: Sequence[float],
        half_life: float) -> float:
    return roc_auc(largest_levels(dialogues, weights, half_life), labels)


def fit(dialogues: Sequence[Events], labels: Sequence[bool]) -> tuple[float, list[float], float]:
    """Coordinate search over the grid, per half-life: (half-life, weights, training AUC).

    The shortest half-life wins unless a longer one is clearly better (by PREFER_FADE
    training AUC): the faster the past fades, the less one early repeat haunts a long
    conversation.
    """
    fits = []
    for half_life in HALF_LIVES:
        weights = [0.5] * len(FITTED)
        score = auc(dialogues, labels, weights, half_life)
        for _ in range(3):
            for i in range(len(FITTED)):
                for value in GRID:
                    trial = [*weights[:i], value, *weights[i + 1:]]
                    trial_score = auc(dialogues, labels, trial, half_life)
                    if trial_score > score + 1e-4:
                        weights, score = trial, trial_score
        print(f"  half-life {half_life:g}: training AUC {score:.3f}")
        fits.append((half_life, weights, score))
    top = max(score for _, _, score in fits)
    return next(fit for fit in fits if fit[2] >= top - PREFER_FADE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the data sets (../shared/data)")
    parser.add_argument("--rules", type=Path, default=None,
                        help="rule set folder whose lexicons/ to use (default: packaged)")
    args = parser.parse_args(argv)
    lexicons = load_lexicons((args.rules or default_rules_dir()) / "lexicons")
    params = lexicons.params

    raw = json.loads((args.data / BREAKDOWN).read_text(encoding="utf-8"))
    dialogues = [dialogue_events(d, lexicons) for d in raw]
    labels = [d["LUHF"] == "luhf" for d in raw]
    halves = {"all": slice(None), "even (fitted on)": slice(0, None, 2),
              "odd (held out)": slice(1, None, 2)}

    def report(name: str, weights: Sequence[float], half_life: float) -> None:
        parts = [f"{half}: {auc(dialogues[s], labels[s], weights, half_life):.3f}"
                 for half, s in halves.items()]
        print(f"{name:10s} AUC  " + "   ".join(parts))

    current = [params.bot_repeat_weight, params.oscillation_weight,
               params.intent_repeat_weight, params.not_understood_weight,
               params.rejection_weight]
    current_half_life = math.log(0.5) / math.log(params.loop_decay)
    report("current", current, current_half_life)

    half_life, weights, _ = fit(dialogues[0::2], labels[0::2])
    anchor = weights[FITTED.index("not_understood")]
    scale = params.fallback_weight / anchor if anchor else 1.0
    scaled = [round(w * scale, 2) for w in weights]
    report("fitted", scaled, half_life)
    shipped = [max(w, FLOORS.get(name, 0.0)) for name, w in zip(FITTED, scaled, strict=True)]
    report("floored", shipped, half_life)
    print("\nloops:")
    print(f"  half_life_turns: {half_life:g}")
    print("  weights:")
    for name, value in zip(FITTED, shipped, strict=True):
        print(f"    {name}: {value:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
