"""Fit the loop weights of scoring.yaml on BETOLD; prints the values and how well they do.

    python -m bench.quality.fit_loops ../shared/data [--rules rules] \
        [--reading last|largest] [--ideas]

Run by hand when the loop events change, never by the service. The weights it prints go
into rules/lexicons/scoring.yaml (loops.half_life_turns and loops.weights) by hand.

How: every BETOLD dialogue is turned into the turns a bot platform would send (the same
mapping as bench/quality/quality.py) and scored by the service's own score_turn with the shipped
vocabularies, so the loop *events* of each turn (fallback, bot repeat, oscillation, intent
repeat, not understood, rejection again, answer) are exactly the service's. Only the
recursion that turns events into loop.score is redone here, with candidate weights:

    level = max(0, level x 0.5 ** (1 / half_life) + sum(weight x event))
    score = 1 - exp(-level)

(an answer's weight is negative) and the level at the caller's last turn (--reading last,
the headline: where the service acts) or the largest level of a dialogue is ranked
against its LUHF label (ROC AUC, the quality.py measures; 1 - exp is monotone, so
ranking levels ranks scores). Both readings are printed for every line; with the shipped
weights the "current" lines reproduce quality.py's breakdown AUCs.

Against overfitting: the search sees only even-numbered dialogues; AUC is reported on
the odd-numbered ones (never seen by the search) and on all. Few parameters (a half-life
and five weights, each from a coarse grid), half-lives of 3-6 turns only (so an early
event fades within a conversation of ten turns), and the scale of the weights is not
fitted (AUC ignores it): it is fixed by setting the not-understood weight equal to the
hand-set fallback weight (both mean "the bot did not understand the customer"); the
prompt-side weights then get hand-set floors (FLOORS, below). The text-repeat weight
cannot be fitted here (BETOLD has no text); the fallback weight is held at its hand-set
value (the mapping sets bot.fallback only for the rare did_not_understand prompt), and
an answer undoes one not-understood turn (the same weight, lowering).

--ideas also measures the candidate loop signals that were tried and not shipped (see
IDEAS), each added to the shipped weights with its weight fitted on the even half, other
half-lives, and the shipped score without answers lowering it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bench.common.stats import roc_auc
from bench.quality.quality import BREAKDOWN
from escalator.config import default_rules_dir
from escalator.scoring import load_lexicons, score_turn
from escalator.scoring.labels import intent_key, prompt_key
from escalator.tools.corpus import breakdown_turns

# The loop events fitted here, as the counter fact each one increments. "rejection" pushes
# only from the second rejection of a conversation on (loops.py), so its event is an
# increment of loop.rejections when the count was already 1 or more.
FITTED = ("bot_repeat", "oscillation", "intent_repeat", "not_understood", "rejection")
COUNTERS = {"bot_repeat": "loop.bot_repeats", "oscillation": "loop.oscillations",
            "intent_repeat": "loop.intent_repeats", "not_understood": "loop.not_understood",
            "rejection": "loop.rejections", "fallback": "loop.fallbacks",
            "answer": "loop.answers"}
# Events scored but not fitted: fallback is tied to not_understood while fitting (both mean
# "the bot did not understand") and keeps its hand-set weight in scoring.yaml; an answer
# undoes one not-understood turn (its weight is the not-understood weight, negated).
EVENTS = (*FITTED, "fallback", "answer")
HALF_LIVES = (3.0, 4.0, 5.0, 6.0)
PREFER_FADE = 0.01
# Hand-set floors, applied after the fit: on BETOLD a prompt id is a template (propose_date
# with a new date each time), so the fit gives the bot's side little or no weight; on bots
# whose prompt ids are questions, the same question again is the loop itself.
FLOORS = {"bot_repeat": 0.1, "oscillation": 0.1}
GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
# Candidate signals tried and not shipped (--ideas), each read from what a platform sends
# (prompt ids, intents and the intent lists of scoring.yaml), never from BETOLD's names.
IDEAS = {
    "every rejection (the first one too)": "rejection_first",
    "an answer to a prompt sent again lowers nothing (cancels the answer)": "answer_repeated",
    "bot re-proposes the same prompt right after a rejection": "reproposed",
    "bot sends a prompt again right after a rejection": "repeat_after_rejection",
    "rejection streak (2+ in a row)": "rejection_streak",
    "bot re-asks the same prompt after not understood": "reasked",
    "the same exchange again (prompt id, intent)": "exchange_repeat",
}
# A loop signal may only push the level up, and progress only down: a fit that wanted
# the opposite sign would be learning something other than going round in circles.
IDEA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
LOWERS: set[str] = set()

Events = list[tuple[int, ...]]


def dialogue_events(dialogue: dict[str, Any], lexicons: Any) -> Events:
    """The loop events of each customer turn (0/1 each), in EVENTS order."""
    memory: dict[str, Any] = {}
    before = dict.fromkeys(EVENTS, 0)
    events: Events = []
    for turn in breakdown_turns(dialogue):
        scored = score_turn(turn, memory, lexicons)
        memory = scored.memory
        # The loop counters are whole numbers (FactValue is the union of every fact's type).
        now = {name: int(cast(int, scored.facts[COUNTERS[name]])) for name in EVENTS}
        happened = {name: now[name] - before[name] for name in EVENTS}
        happened["rejection"] *= before["rejection"] > 0
        events.append(tuple(happened[name] for name in EVENTS))
        before = now
    return events


def idea_events(dialogue: dict[str, Any], lexicons: Any) -> Events:
    """The candidate events of IDEAS for each customer turn (0/1 each), in IDEAS order."""
    params = lexicons.params
    seen_prompts: set[str] = set()
    exchanges: set[tuple[str, str]] = set()
    previous: tuple[str | None, str] = (None, "")
    streak = 0
    events: Events = []
    for turn in breakdown_turns(dialogue):
        prompt = (prompt_key(turn.bot.prompt_id, params.prompt_variant)
                  if turn.bot.prompt_id else None)
        key = intent_key(turn.message.intent or "")
        kind = ("not_understood" if key in params.not_understood_intents
                else "answer" if key in params.answer_intents
                else "rejection" if key in params.rejection_intents else "request")
        same_prompt = prompt is not None and prompt == previous[0]
        streak = streak + 1 if kind == "rejection" else 0
        happened = {
            "rejection_first": int(kind == "rejection" and streak == 1 and not any(
                e[0] for e in events)),
            "answer_repeated": int(kind == "answer" and prompt in seen_prompts),
            "reproposed": int(same_prompt and previous[1] == "rejection"),
            "repeat_after_rejection": int(prompt in seen_prompts
                                          and previous[1] == "rejection"),
            "rejection_streak": int(streak >= 2),
            "reasked": int(same_prompt and previous[1] == "not_understood"),
            "exchange_repeat": int(prompt is not None and (prompt, key) in exchanges),
        }
        events.append(tuple(happened[name] for name in IDEAS.values()))
        if prompt is not None:
            seen_prompts.add(prompt)
            exchanges.add((prompt, key))
        previous = (prompt, kind)
    return events


def levels(dialogues: Sequence[Events], weights: Sequence[float],
           half_life: float, last: bool = False) -> list[float]:
    """The largest loop level each dialogue reaches with these weights (or its last one)."""
    decay = 0.5 ** (1 / half_life)
    result = []
    for events in dialogues:
        level = largest = 0.0
        for event in events:
            level = max(0.0, level * decay
                        + sum(w * e for w, e in zip(weights, event, strict=True)))
            largest = max(largest, level)
        result.append(level if last else largest)
    return result


def auc(dialogues: Sequence[Events], labels: Sequence[bool], weights: Sequence[float],
        half_life: float, last: bool = False) -> float:
    return roc_auc(levels(dialogues, weights, half_life, last), labels)


def with_tied(fitted: Sequence[float]) -> list[float]:
    """EVENTS weights from FITTED ones: fallback = not_understood, answer = -not_understood."""
    not_understood = fitted[FITTED.index("not_understood")]
    return [*fitted, not_understood, -not_understood]


def fit(dialogues: Sequence[Events], labels: Sequence[bool],
        last: bool = True) -> tuple[float, list[float], float]:
    """Coordinate search over the grid, per half-life: (half-life, weights, training AUC).

    The shortest half-life wins unless a longer one is clearly better (by PREFER_FADE
    training AUC): the faster the past fades, the less one early repeat haunts a long
    conversation.
    """
    fits = []
    for half_life in HALF_LIVES:
        weights = [0.5] * len(FITTED)
        score = auc(dialogues, labels, with_tied(weights), half_life, last)
        for _ in range(3):
            for i in range(len(FITTED)):
                for value in GRID:
                    trial = [*weights[:i], value, *weights[i + 1:]]
                    trial_score = auc(dialogues, labels, with_tied(trial), half_life, last)
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
    parser.add_argument("--reading", choices=("last", "largest"), default="last",
                        help="what the fit ranks: the level at the caller's last turn (the "
                             "headline, default) or the largest level of a dialogue")
    parser.add_argument("--ideas", action="store_true",
                        help="also measure the candidate signals of IDEAS (not shipped)")
    args = parser.parse_args(argv)
    lexicons = load_lexicons((args.rules or default_rules_dir()) / "lexicons")
    params = lexicons.params
    last = args.reading == "last"

    raw = json.loads((args.data / BREAKDOWN).read_text(encoding="utf-8"))
    dialogues = [dialogue_events(d, lexicons) for d in raw]
    labels = [d["LUHF"] == "luhf" for d in raw]
    halves = {"all": slice(None), "even (fitted on)": slice(0, None, 2),
              "odd (held out)": slice(1, None, 2)}

    def report(name: str, weights: Sequence[float], half_life: float,
               events: Sequence[Events] = dialogues) -> None:
        for reading in (True, False):
            parts = [f"{half}: {auc(events[s], labels[s], weights, half_life, reading):.3f}"
                     for half, s in halves.items()]
            label = "last turn" if reading else "largest"
            print(f"{name if reading else '':10s} {label:9s} AUC  " + "   ".join(parts))

    current = [params.bot_repeat_weight, params.oscillation_weight,
               params.intent_repeat_weight, params.not_understood_weight,
               params.rejection_weight, params.fallback_weight, -params.answer_weight]
    current_half_life = math.log(0.5) / math.log(params.loop_decay)
    report("current", current, current_half_life)

    half_life, weights, _ = fit(dialogues[0::2], labels[0::2], last)
    anchor = weights[FITTED.index("not_understood")]
    scale = params.fallback_weight / anchor if anchor else 1.0
    scaled = [round(w * scale, 2) for w in weights]
    tied = [params.fallback_weight, -params.fallback_weight]
    report("fitted", [*scaled, *tied], half_life)
    shipped = [max(w, FLOORS.get(name, 0.0)) for name, w in zip(FITTED, scaled, strict=True)]
    report("floored", [*shipped, *tied], half_life)
    print("\nloops:")
    print(f"  half_life_turns: {half_life:g}")
    print("  weights:")
    for name, value in zip(FITTED, shipped, strict=True):
        print(f"    {name}: {value:g}")
    print(f"    answer: {params.fallback_weight:g}")
    if args.ideas:
        measure_ideas(raw, dialogues, labels, current, current_half_life, lexicons, report,
                      last)
    return 0


def measure_ideas(raw: Sequence[dict[str, Any]], dialogues: Sequence[Events],
                  labels: Sequence[bool], current: Sequence[float], half_life: float,
                  lexicons: Any, report: Any, last: bool) -> None:
    """Each IDEAS signal added to the current weights, its weight fitted on the even half."""
    print("\nideas (each added to the current weights; weight fitted on the even half):")
    ideas = [idea_events(d, lexicons) for d in raw]
    joined = [[(*e, *i) for e, i in zip(events, extra, strict=True)]
              for events, extra in zip(dialogues, ideas, strict=True)]
    for n, name in enumerate(IDEAS):
        def weights(value: float, n: int = n) -> list[float]:
            extra = [0.0] * len(IDEAS)
            extra[n] = value
            return [*current, *extra]
        sign = -1.0 if IDEAS[name] in LOWERS else 1.0
        best = max((sign * v for v in IDEA_GRID),
                   key=lambda v: auc(joined[0::2], labels[0::2], weights(v), half_life, last))
        print(f"- {name}: weight {best + 0.0:g}")
        report("", weights(best), half_life, joined)
    print("- ... the answer one with its weight set to cancel an answer exactly")
    cancel = [0.0] * len(IDEAS)
    cancel[list(IDEAS.values()).index("answer_repeated")] = -current[EVENTS.index("answer")]
    report("", [*current, *cancel], half_life, joined)
    for hl in (2.0, 4.0, 6.0):
        print(f"- half-life {hl:g} turns instead of {half_life:g}")
        report("", current, hl)
    print("- answers lowering nothing (the shipped score before November 2026)")
    report("", [*current[:-1], 0.0], half_life)


if __name__ == "__main__":
    sys.exit(main())
