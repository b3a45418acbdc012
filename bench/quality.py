"""How well the scores agree with people, measured on real public conversations.

    python bench/quality.py ../shared/data [--rules rules] [--json]

Every conversation is replayed turn by turn through the service's own decision pipeline
(`Pipeline.evaluate`: the same scoring and the same compiled rules, state carried from
turn to turn in memory, nothing stored), and the facts it produced are compared with the
human labels of each set:

- frustration: `frustration.score` of each customer turn against the mean of the three
  annotators' 0-4 frustration ratings (dfrustration_dev.txt), Pearson and Spearman;
- breakdown: the largest `loop.score` of a phone-bot dialogue against its LUHF label
  (BETOLD_valid.json: the caller forwarded to a person or hung up late), as ROC AUC; the
  caller's intents go in as `message.intent`, the bot's last prompt as `bot.prompt_id`,
  and a `did_not_understand` among the bot's messages since the caller last spoke as
  `bot.fallback`;
- satisfaction: 1 - `frustration.mean` after the customer's last turn against the mean
  S (satisfaction) rating of 19 annotators (stc3_train_en.json), Pearson and Spearman;
- traffic: the share of twcc_dev.json conversations the rules would route to a person;
- cost: `score_turn` per turn, in-process, for a typical 20-word message, and the
  median over the real customer messages of 15-25 words.

The labels are read only to compare, never to score. Plain VADER (`compound`) is shown
beside the frustration and satisfaction numbers as the baseline to beat.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from escalator.config import default_rules_dir
from escalator.model import ROUTE, BotReply, Message, Turn
from escalator.policy import Policy, load_policy
from escalator.scoring import score_turn
from escalator.transcripts import decide_turns

FRUSTRATION = "frustration/dfrustration_dev.txt"
BREAKDOWN = "breakdown/BETOLD_valid.json"
SATISFACTION = "satisfaction/stc3_train_en.json"
TRAFFIC = "traffic/twcc_dev.json"

# ------------------------------------------------------------------------------ statistics


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson's r (nan when either side is constant)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the ranks."""
    return pearson(ranks(xs), ranks(ys))


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    r = ranks(scores)
    n_pos = sum(positive)
    n_neg = len(positive) - n_pos
    rank_sum = sum(rank for rank, p in zip(r, positive, strict=True) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# ------------------------------------------------------------------------------ replaying


@dataclass
class Replayer:
    """Replays transcripts through the service's pipeline (escalator.transcripts)."""

    policy: Policy

    def run(self, conversation_id: str, turns: Iterable[Turn]) -> Iterator[Any]:
        """The decision of each turn, in order."""
        return decide_turns(self.policy, conversation_id, list(turns))


def text_turn(index: int, text: str, prompt_id: str | None = None) -> Turn:
    return Turn(turn_id=f"t-{index}", message=Message(text=text),
                bot=BotReply(prompt_id=prompt_id))


# ------------------------------------------------------------------------------ data sets

_RATINGS = re.compile(r"\{([^{}]*)\}\s*$")


def frustration_dialogues(path: Path) -> list[list[tuple[str, float | None]]]:
    """Dialogues of (customer text, mean rating or None); support turns only separate them."""
    dialogues: list[list[tuple[str, float | None]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("----"):
            dialogues.append([])
        elif line.startswith("USER:") and dialogues:
            found = _RATINGS.search(line)
            text = line[5:found.start()] if found else line[5:]
            ratings = [float(v) for v in (found.group(1).split(",") if found else [])
                       if v.strip() not in ("", "n")]
            mean = statistics.fmean(ratings) if ratings else None
            dialogues[-1].append((text.strip(), mean))
    return [d for d in dialogues if d]


def breakdown_turns(dialogue: dict[str, Any]) -> list[Turn]:
    """A BETOLD dialogue as the turns a bot platform would send: intents and prompt ids."""
    turns: list[Turn] = []
    prompt: str | None = None
    fallback = False
    for utterance in dialogue["utterances_annotations"]:
        if utterance["caller_name"] == "nlg":
            prompt = utterance["intent"]
            # The bot often says "did not understand" and then asks again in a second
            # message: the reply the caller answers was still a fallback.
            fallback = fallback or prompt == "did_not_understand"
            continue
        turns.append(Turn(
            turn_id=f"t-{len(turns) + 1}",
            message=Message(intent=utterance["intent"]),
            bot=BotReply(prompt_id=prompt, fallback=fallback),
        ))
        fallback = False
    return turns


def customer_texts(dialogue: dict[str, Any]) -> list[str]:
    """The customer's messages of an STC-3 dialogue."""
    return [" ".join(turn["utterances"]) for turn in dialogue["turns"]
            if turn["sender"] == "customer"]


def traffic_texts(conversation: dict[str, Any]) -> list[str]:
    """The customer's messages of a twcc conversation (agents' replies left out)."""
    return [m["message"] for m in conversation["dialogContent"] if "agent" not in m]


# ------------------------------------------------------------------------------ measures


def measure_frustration(replayer: Replayer, path: Path) -> dict[str, Any]:
    vader = SentimentIntensityAnalyzer()
    ours, plain, human = [], [], []
    for n, dialogue in enumerate(frustration_dialogues(path)):
        turns = [text_turn(i, text) for i, (text, _) in enumerate(dialogue, 1)]
        for (text, rating), decision in zip(dialogue, replayer.run(f"f{n}", turns),
                                            strict=True):
            if rating is None:
                continue
            ours.append(decision.facts["frustration.score"])
            plain.append(-vader.polarity_scores(text)["compound"])
            human.append(rating)
    return {"turns": len(human), "pearson": pearson(ours, human),
            "spearman": spearman(ours, human), "vader_pearson": pearson(plain, human),
            "vader_spearman": spearman(plain, human)}


def measure_breakdown(replayer: Replayer, path: Path) -> dict[str, Any]:
    dialogues = json.loads(path.read_text(encoding="utf-8"))
    largest, luhf, prompt_repeats = [], [], []
    for n, dialogue in enumerate(dialogues):
        turns = breakdown_turns(dialogue)
        loops = [d.scores.loop for d in replayer.run(f"b{n}", turns)]
        largest.append(max(loops, default=0.0))
        luhf.append(dialogue["LUHF"] == "luhf")
        prompts = Counter(u["intent"] for u in dialogue["utterances_annotations"]
                          if u["caller_name"] == "nlg")
        prompt_repeats.append(max(prompts.values(), default=1) - 1)
    return {"dialogues": len(luhf), "auc": roc_auc(largest, luhf),
            "baseline_auc": roc_auc(prompt_repeats, luhf)}


def measure_satisfaction(replayer: Replayer, path: Path) -> dict[str, Any]:
    vader = SentimentIntensityAnalyzer()
    ours, plain, human = [], [], []
    for n, dialogue in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        texts = customer_texts(dialogue)
        if not texts:
            continue
        decisions = list(replayer.run(f"s{n}", [text_turn(i, t) for i, t in
                                                 enumerate(texts, 1)]))
        ours.append(1 - float(decisions[-1].facts["frustration.mean"]))
        plain.append(statistics.fmean(vader.polarity_scores(t)["compound"] for t in texts))
        human.append(statistics.fmean(a["quality"]["S"] for a in dialogue["annotations"]))
    return {"dialogues": len(human), "pearson": pearson(ours, human),
            "spearman": spearman(ours, human), "vader_pearson": pearson(plain, human),
            "vader_spearman": spearman(plain, human)}


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
        memory = score_turn(turn, memory, i + 1, policy.lexicons).memory
    turn = Turn("t", Message(text=TYPICAL), BotReply(prompt_id="ask_order"))
    medians = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            score_turn(turn, memory, 20, policy.lexicons)
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
        memory = score_turn(turn, memory, i + 1, policy.lexicons).memory
    costs = []
    for text in chosen:
        turn = Turn("t", Message(text=text), BotReply(prompt_id="ask_order"))
        best = math.inf
        for _ in range(rounds):
            start = time.perf_counter()
            score_turn(turn, memory, 20, policy.lexicons)
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


def table(result: dict[str, Any]) -> str:
    f, b, s, t, c, r = (result[k] for k in ("frustration", "breakdown", "satisfaction",
                                             "traffic", "cost", "cost_real"))
    rows = [
        ("frustration vs people, Pearson", f"{f['pearson']:.3f}",
         f"{f['vader_pearson']:.3f}", f"{f['turns']} customer turns"),
        ("frustration vs people, Spearman", f"{f['spearman']:.3f}",
         f"{f['vader_spearman']:.3f}", ""),
        ("breakdown (LUHF) AUC, largest loop.score", f"{b['auc']:.3f}",
         f"{b['baseline_auc']:.3f}", f"{b['dialogues']} dialogues; baseline: prompt repeats"),
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
    return "\n".join(lines)


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
