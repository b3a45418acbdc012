"""How well the scores agree with people, measured on real public conversations.

    python -m bench.quality.quality ../shared/data [--rules rules] [--json]

Every conversation is replayed turn by turn through the service's own decision pipeline
(`Pipeline.evaluate`: the same scoring and the same compiled rules, state carried from
turn to turn in memory, nothing stored), and the facts it produced are compared with the
human labels of each set:

- frustration: `frustration.score` (the lexicon score) and `frustration.fitted` (the
  fitted layer, issue 17) of each customer turn against the mean of the three
  annotators' 0-4 frustration ratings (dfrustration_dev.txt), Pearson and Spearman, on
  all dialogues and on each half (the fitted layer saw both: `escalator fit` reports
  its cross-validated r, which is the honest one);
- breakdown: `loop.score` and `breakdown.score` (the fitted layer) of a phone-bot
  dialogue against its LUHF label
  (BETOLD_valid.json: the caller forwarded to a person or hung up late), as ROC AUC,
  read at the caller's last turn (the headline: where the service acts, the turn after
  which the caller gave up or not) and as the dialogue's largest value; the caller's
  intents go in as `message.intent`, the bot's last prompt as `bot.prompt_id`, and a
  `did_not_understand` among the bot's messages since the caller last spoke as
  `bot.fallback`;
- satisfaction: 1 - `frustration.mean` after the customer's last turn against the mean
  S (satisfaction) rating of 19 annotators (stc3_train_en.json), Pearson and Spearman;
- decisions, for each set whose conversations have an outcome (BETOLD: LUHF or not;
  STC-3: the annotators' mean A, "task accomplished", above or below 0): the share of
  conversations that ended well and of those that ended badly that the rules hand to a
  person at some turn, and how many of the customer's turns were left after that first
  handoff (0: at the last one); what a contact centre pays for (people on calls the bot
  handled) against what it gains (people on calls that were going wrong);
- traffic: the share of twcc_dev.json conversations the rules would route to a person;
- cost: `score_turn` per turn, in-process, for a typical 20-word message, and the
  median over the real customer messages of 15-25 words.

Breakdown and decisions are also given on each half of the set: the even-numbered
conversations (the loop weights and the loop rules' thresholds were tuned on them with
bench/quality/fit_loops.py and bench/quality/fit_routing.py) and the odd-numbered ones,
held out.

The labels are read only to compare, never to score. Plain VADER (`compound`) is shown
beside the frustration and satisfaction numbers as the baseline to beat.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bench.common.stats import pearson, roc_auc, spearman
from escalator.config import default_rules_dir
from escalator.model import ROUTE, BotReply, Message, Turn
from escalator.policy import Policy, load_policy
from escalator.scoring import score_turn
from escalator.tools.corpus import (
    breakdown_turns,
    customer_texts,
    dfrustration_dialogues,
    traffic_texts,
)
from escalator.tools.transcripts import decide_turns

FRUSTRATION = "frustration/dfrustration_dev.txt"
BREAKDOWN = "breakdown/BETOLD_valid.json"
SATISFACTION = "satisfaction/stc3_train_en.json"
TRAFFIC = "traffic/twcc_dev.json"

# Even-numbered conversations: the half every fit and threshold was tuned on; odd: held out.
HALVES = {"all": slice(None), "even": slice(0, None, 2), "odd": slice(1, None, 2)}

# ------------------------------------------------------------------------------ replaying


@dataclass
class Replayer:
    """Replays transcripts through the service's pipeline (escalator.tools.transcripts)."""

    policy: Policy

    def run(self, conversation_id: str, turns: Iterable[Turn]) -> Iterator[Any]:
        """The decision of each turn, in order."""
        return decide_turns(self.policy, conversation_id, list(turns))


def text_turn(index: int, text: str, prompt_id: str | None = None) -> Turn:
    return Turn(turn_id=f"t-{index}", message=Message(text=text),
                bot=BotReply(prompt_id=prompt_id))


# ------------------------------------------------------------------------------ data sets

def frustration_dialogues(path: Path) -> list[list[tuple[str, float | None]]]:
    """Dialogues of (customer text, mean rating or None); support turns only separate them."""
    with path.open(encoding="utf-8") as lines:
        return list(dfrustration_dialogues(lines))


# ------------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class Ending:
    """How one conversation ended, and where the rules first handed it to a person."""

    index: int  # its place in the data set (even: tuned on, odd: held out)
    good: bool  # it ended well (by the set's outcome label)
    turns: int  # the customer's turns
    routed_at: int | None  # the turn of the first handoff, if any (1-based)
    rule: str | None  # the deciding rule of that handoff

    @property
    def left(self) -> int | None:
        """The customer's turns after the first handoff (0: it came at the last one)."""
        return None if self.routed_at is None else self.turns - self.routed_at


def in_half(index: int, half: str) -> bool:
    """The conversation at this place in its data set belongs to this half of HALVES."""
    return half == "all" or index % 2 == (half == "odd")


def ending(index: int, good: bool, decisions: Sequence[Any]) -> Ending:
    """A conversation's Ending from its decisions, in order."""
    first = next((d for d in decisions if d.decision == ROUTE), None)
    return Ending(index, good, len(decisions),
                  None if first is None else first.turn_index,
                  None if first is None else first.reasons[0].rule)


def routed_share(endings: Sequence[Ending]) -> dict[str, Any]:
    """How many of these conversations were handed to a person, when and by which rule."""
    routed = [e for e in endings if e.routed_at is not None]
    left = [e.left for e in routed if e.left is not None]
    rules = Counter(e.rule for e in routed if e.rule is not None)
    # None, not nan, where nothing was counted: --json prints strict JSON.
    return {"conversations": len(endings), "routed": len(routed),
            "share": len(routed) / len(endings) if endings else None,
            "turns_left_median": statistics.median(left) if left else None,
            "turns_left_mean": statistics.fmean(left) if left else None,
            "rules": dict(rules.most_common())}


def outcome_table(endings: Sequence[Ending]) -> dict[str, Any]:
    """Per half (all, even, odd): the good and the bad conversations routed, and the ratio."""
    table = {}
    for half in HALVES:
        chosen = [e for e in endings if in_half(e.index, half)]
        good = routed_share([e for e in chosen if e.good])
        bad = routed_share([e for e in chosen if not e.good])
        ratio = bad["share"] / good["share"] if good["share"] and bad["share"] is not None \
            else None
        table[half] = {"good": good, "bad": bad, "ratio": ratio}
    return table


# ------------------------------------------------------------------------------ measures


def measure_frustration(replayer: Replayer, path: Path) -> dict[str, Any]:
    vader = SentimentIntensityAnalyzer()
    ours, fitted, plain, human, numbers = [], [], [], [], []
    for n, dialogue in enumerate(frustration_dialogues(path)):
        turns = [text_turn(i, text) for i, (text, _) in enumerate(dialogue, 1)]
        for (text, rating), decision in zip(dialogue, replayer.run(f"f{n}", turns),
                                            strict=True):
            if rating is None:
                continue
            ours.append(decision.facts["frustration.score"])
            fitted.append(decision.facts["frustration.fitted"])
            plain.append(-vader.polarity_scores(text)["compound"])
            human.append(rating)
            numbers.append(n)

    def by_half(scores: Sequence[float]) -> dict[str, float]:
        return {half: pearson([s for s, n in zip(scores, numbers, strict=True)
                               if in_half(n, half)],
                              [h for h, n in zip(human, numbers, strict=True)
                               if in_half(n, half)]) for half in HALVES}

    return {"turns": len(human), "pearson": pearson(ours, human),
            "spearman": spearman(ours, human), "vader_pearson": pearson(plain, human),
            "vader_spearman": spearman(plain, human),
            "fitted_pearson": pearson(fitted, human), "fitted_spearman": spearman(fitted, human),
            "pearson_by_half": by_half(ours), "fitted_pearson_by_half": by_half(fitted)}


def measure_breakdown(replayer: Replayer, path: Path) -> dict[str, Any]:
    dialogues = json.loads(path.read_text(encoding="utf-8"))
    last, largest, luhf, prompt_repeats = [], [], [], []
    fitted_last, fitted_largest = [], []
    endings = []
    for n, dialogue in enumerate(dialogues):
        decisions = list(replayer.run(f"b{n}", breakdown_turns(dialogue)))
        loops = [d.scores.loop for d in decisions]
        last.append(loops[-1] if loops else 0.0)
        largest.append(max(loops, default=0.0))
        breakdown = [float(d.facts["breakdown.score"]) for d in decisions]
        fitted_last.append(breakdown[-1] if breakdown else 0.0)
        fitted_largest.append(max(breakdown, default=0.0))
        luhf.append(dialogue["LUHF"] == "luhf")
        endings.append(ending(n, not luhf[-1], decisions))
        prompts = Counter(u["intent"] for u in dialogue["utterances_annotations"]
                          if u["caller_name"] == "nlg")
        prompt_repeats.append(max(prompts.values(), default=1) - 1)

    def by_half(scores: Sequence[float]) -> dict[str, float]:
        return {half: roc_auc(scores[s], luhf[s]) for half, s in HALVES.items()}

    return {"dialogues": len(luhf), "auc_last": by_half(last),
            "auc_largest": by_half(largest), "baseline_auc": by_half(prompt_repeats),
            "fitted_auc_last": by_half(fitted_last),
            "fitted_auc_largest": by_half(fitted_largest),
            "decisions": outcome_table(endings)}


def measure_satisfaction(replayer: Replayer, path: Path) -> dict[str, Any]:
    vader = SentimentIntensityAnalyzer()
    ours, plain, human = [], [], []
    endings = []
    for n, dialogue in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        texts = customer_texts(dialogue)
        if not texts:
            continue
        decisions = list(replayer.run(f"s{n}", [text_turn(i, t) for i, t in
                                                 enumerate(texts, 1)]))
        ours.append(1 - float(decisions[-1].facts["frustration.mean"]))
        plain.append(statistics.fmean(vader.polarity_scores(t)["compound"] for t in texts))
        human.append(statistics.fmean(a["quality"]["S"] for a in dialogue["annotations"]))
        accomplished = statistics.fmean(a["quality"]["A"] for a in dialogue["annotations"])
        if accomplished:
            endings.append(ending(n, accomplished > 0, decisions))
    return {"dialogues": len(human), "pearson": pearson(ours, human),
            "spearman": spearman(ours, human), "vader_pearson": pearson(plain, human),
            "vader_spearman": spearman(plain, human), "decisions": outcome_table(endings)}


def measure_traffic(replayer: Replayer, path: Path) -> dict[str, Any]:
    conversations = json.loads(path.read_text(encoding="utf-8"))
    routed = 0
    turns = 0
    rules: Counter[str] = Counter()
    for n, conversation in enumerate(conversations):
        texts = traffic_texts(conversation)
        decisions = list(replayer.run(f"w{n}", [text_turn(i, t) for i, t in
                                                 enumerate(texts, 1)]))
        turns += len(decisions)
        first = next((d for d in decisions if d.decision == ROUTE), None)
        if first is not None:
            routed += 1
            rules[first.reasons[0].rule] += 1
    return {"conversations": len(conversations), "turns": turns,
            "escalation_rate": routed / len(conversations),
            "deciding_rules": dict(rules.most_common())}


TYPICAL = ("I already told you twice, the parcel never came and nobody answers my emails "
           "so where is my refund now?")


def measure_cost(policy: Policy, rounds: int = 5, calls: int = 2000) -> dict[str, Any]:
    """Median cost of score_turn on a typical 20-word message, with 19 turns of memory."""
    memory: dict[str, Any] = {}
    for i in range(19):
        turn = Turn(f"w{i}", Message(text=f"message number {i} about order {i * 7}"),
                    BotReply(prompt_id=f"p{i % 3}"))
        memory = score_turn(turn, memory, policy.lexicons).memory
    turn = Turn("t", Message(text=TYPICAL), BotReply(prompt_id="ask_order"))
    medians = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            score_turn(turn, memory, policy.lexicons)
        medians.append((time.perf_counter() - start) / calls)
    return {"words": len(TYPICAL.split()), "microseconds": statistics.median(medians) * 1e6}


def measure_cost_real(policy: Policy, data: Path, rounds: int = 20) -> dict[str, Any]:
    """Median cost of score_turn over the real customer messages of 15-25 words (the
    frustration and traffic sets), each timed at its best of `rounds` runs."""
    texts = [t for d in frustration_dialogues(data / FRUSTRATION) for t, _ in d]
    texts += [t for c in json.loads((data / TRAFFIC).read_text(encoding="utf-8"))
              for t in traffic_texts(c)]
    chosen = [t for t in texts if 15 <= len(t.split()) <= 25]
    memory: dict[str, Any] = {}
    for i in range(19):
        turn = Turn(f"w{i}", Message(text=f"message number {i} about order {i * 7}"),
                    BotReply(prompt_id=f"p{i % 3}"))
        memory = score_turn(turn, memory, policy.lexicons).memory
    costs = []
    for text in chosen:
        turn = Turn("t", Message(text=text), BotReply(prompt_id="ask_order"))
        best = math.inf
        for _ in range(rounds):
            start = time.perf_counter()
            score_turn(turn, memory, policy.lexicons)
            best = min(best, time.perf_counter() - start)
        costs.append(best)
    return {"messages": len(chosen), "median_microseconds": statistics.median(costs) * 1e6}


# ------------------------------------------------------------------------------ report


def measure(data: Path, rules: Path) -> dict[str, Any]:
    """Every measure, as one JSON-able dict."""
    policy = load_policy(rules)
    replayer = Replayer(policy)
    try:
        return {
            "ruleset": {"name": policy.ruleset.name, "version": policy.ruleset.version,
                        "digest": policy.ruleset.digest},
            "frustration": measure_frustration(replayer, data / FRUSTRATION),
            "breakdown": measure_breakdown(replayer, data / BREAKDOWN),
            "satisfaction": measure_satisfaction(replayer, data / SATISFACTION),
            "traffic": measure_traffic(replayer, data / TRAFFIC),
            "cost": measure_cost(policy),
            "cost_real": measure_cost_real(policy, data),
        }
    finally:
        policy.close()


OUTCOME_SETS = (
    ("breakdown", "BETOLD, intents only",
     "ended well: booked; badly: hung up late or forwarded (LUHF)"),
    ("satisfaction", "STC-3, text",
     "ended well: task accomplished (annotators' mean A > 0); badly: A < 0"),
)


def table(result: dict[str, Any]) -> str:
    f, b, s, t, c, r = (result[k] for k in ("frustration", "breakdown", "satisfaction",
                                             "traffic", "cost", "cost_real"))
    rows = [
        ("frustration vs people, Pearson", f"{f['pearson']:.3f}",
         f"{f['vader_pearson']:.3f}", f"{f['turns']} customer turns"),
        ("frustration vs people, Spearman", f"{f['spearman']:.3f}",
         f"{f['vader_spearman']:.3f}", ""),
        ("frustration.fitted vs people, Pearson", f"{f['fitted_pearson']:.3f}",
         f"{f['vader_pearson']:.3f}", "fitted on this set: escalator fit gives its CV r"),
        ("frustration.fitted vs people, Spearman", f"{f['fitted_spearman']:.3f}",
         f"{f['vader_spearman']:.3f}", ""),
        ("breakdown (LUHF) AUC, loop.score at last turn", f"{b['auc_last']['all']:.3f}",
         f"{b['baseline_auc']['all']:.3f}",
         f"{b['dialogues']} dialogues; baseline: prompt repeats"),
        ("breakdown (LUHF) AUC, largest loop.score", f"{b['auc_largest']['all']:.3f}",
         f"{b['baseline_auc']['all']:.3f}", ""),
        ("breakdown (LUHF) AUC, breakdown.score at last turn",
         f"{b['fitted_auc_last']['all']:.3f}", f"{b['baseline_auc']['all']:.3f}",
         "fitted on this set: escalator fit gives its CV AUC"),
        ("satisfaction vs people, Pearson", f"{s['pearson']:.3f}",
         f"{s['vader_pearson']:.3f}", f"{s['dialogues']} dialogues; 1 - frustration.mean"),
        ("satisfaction vs people, Spearman", f"{s['spearman']:.3f}",
         f"{s['vader_spearman']:.3f}", ""),
        ("twcc conversations routed to a person", f"{t['escalation_rate']:.1%}", "",
         f"{t['conversations']} conversations, {t['turns']} turns"),
        ("score_turn per turn", f"{c['microseconds']:.0f} us", "",
         f"{c['words']}-word message, 19 turns of memory"),
        ("score_turn per real 15-25 word message", f"{r['median_microseconds']:.0f} us", "",
         f"median of {r['messages']} customer messages, each best of 20"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"rule set {result['ruleset']['name']} {result['ruleset']['version']}",
             f"{'measure':<{width}}  {'escalator':>9}  {'VADER':>6}  notes"]
    lines += [f"{name:<{width}}  {ours:>9}  {base:>6}  {note}" for name, ours, base, note in rows]
    deciding = ", ".join(f"{rule} {n}" for rule, n in t["deciding_rules"].items())
    lines.append(f"twcc routes by deciding rule: {deciding or 'none'}")
    lines += ["", *halves_table(result)]
    return "\n".join(lines)


def halves_table(result: dict[str, Any]) -> list[str]:
    """Breakdown AUC and the decision-level outcomes, on all data and on each half."""
    b = result["breakdown"]
    rows: list[tuple[str, list[str]]] = []
    if "frustration" in result:
        f = result["frustration"]
        rows += [("frustration.score vs people, Pearson",
                  [f"{f['pearson_by_half'][h]:.3f}" for h in HALVES]),
                 ("frustration.fitted vs people, Pearson",
                  [f"{f['fitted_pearson_by_half'][h]:.3f}" for h in HALVES])]
    rows += [
        ("breakdown AUC, loop.score at last turn", [f"{b['auc_last'][h]:.3f}" for h in HALVES]),
        ("breakdown AUC, breakdown.score at last turn",
         [f"{b['fitted_auc_last'][h]:.3f}" for h in HALVES]),
        ("breakdown AUC, largest loop.score", [f"{b['auc_largest'][h]:.3f}" for h in HALVES]),
        ("breakdown AUC, baseline (prompt repeats)",
         [f"{b['baseline_auc'][h]:.3f}" for h in HALVES]),
    ]
    rules: list[str] = []
    for key, name, outcome in OUTCOME_SETS:
        decisions = result[key]["decisions"]
        whole = decisions["all"]
        rows += [
            (f"{name}. {outcome}", []),
            (f"  ended well ({whole['good']['conversations']}): routed to a person",
             [_share(decisions[h]["good"]["share"]) for h in HALVES]),
            (f"  ended badly ({whole['bad']['conversations']}): routed to a person",
             [_share(decisions[h]["bad"]["share"]) for h in HALVES]),
            ("  badly / well", ["-" if decisions[h]["ratio"] is None
                                else f"{decisions[h]['ratio']:.1f}x" for h in HALVES]),
            ("  turns left after the handoff, median well | badly",
             [f"{_turns(decisions[h]['good'])} | {_turns(decisions[h]['bad'])}"
              for h in HALVES]),
        ]
        for side, label in (("good", "well"), ("bad", "badly")):
            named = ", ".join(f"{rule} {n}" for rule, n in whole[side]["rules"].items())
            rules.append(f"{name}, ended {label}, routed by: {named or 'none'}")
    width = max(len(name) for name, values in rows if values)
    lines = [f"{'by half (information only: the fits saw both)':<{width}}  "
             + "  ".join(f"{h:>9}" for h in HALVES)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{v:>9}" for v in values) if values else name
              for name, values in rows]
    return lines + rules


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _turns(side: dict[str, Any]) -> str:
    median = side["turns_left_median"]
    return "-" if median is None else f"{median:g}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the data sets (../shared/data)")
    parser.add_argument("--rules", type=Path, default=None,
                        help="rule set folder (default: the packaged rules)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure(args.data, args.rules or default_rules_dir())
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
