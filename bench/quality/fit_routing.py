"""Tune the default loop rules' thresholds on BETOLD: calls that ended well vs badly routed.

    python -m bench.quality.fit_routing ../shared/data [--rules rules]

Run by hand when the loop score or the loop rules change, never by the service. The
thresholds it chooses go into rules/loops.yaml by hand (then bump the version, rerun
bench.quality.quality, and copy the rules to k8s/base/rules).

What is measured: a contact centre pays for a person on every call the rules route, so
the cost is the share of calls that *ended well* (the caller booked) that are routed at
some turn, and the gain is the share of calls that ended badly (late hang-up or forward,
BETOLD's LUHF label) routed. Every dialogue is replayed once through the service's own
pipeline (bench/quality/quality.py's mapping: intents and prompt ids only) to get each turn's
facts; each candidate rule set is the rules folder with two numbers replaced, compiled
by the service's own compiler, and evaluated on those facts turn by turn up to its first
handoff (facts do not depend on the rules until a handoff).

The two numbers:
- conversation-looping's `loop.score` threshold T (turn_index >= 3 is kept as shipped);
- bot-repeating-prompt's `loop.bot_repeats` threshold N (its other condition, two
  re-asks after an answer, is hand-set and kept).

How they are chosen, on the even-numbered dialogues only (the odd ones are held out):
1. T, with N off (no conversation reaches it): the T that routes the most bad calls
   while routing at most TARGET of the good ones with 95% confidence (the upper Wilson
   bound of the good share, not the share itself: a point chosen right at the limit on
   one half lands above it on the other about half of the time) and routing at least
   RATIO times as large a share of the bad calls as of the good ones.
2. N, with that T: the lowest N that keeps both conditions. BETOLD's prompt ids are
   templates (propose_date again with a new date is a negotiation, not a loop), so
   BETOLD can only say what the rule costs; on bots whose prompt ids are questions the
   same question again is the loop itself, so the rule should fire as early as the
   budget allows.
The trade-off curve (both halves, for each T at the chosen N) is printed too.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.stats import wilson_upper
from bench.quality.quality import BREAKDOWN, HALVES, Replayer, in_half
from escalator.config import default_rules_dir
from escalator.model import ROUTE, FactValue
from escalator.policy import load_policy
from escalator.tools.corpus import breakdown_turns

TARGET = 0.10  # at most this share of the calls that ended well may be routed
RATIO = 2.5  # the bad calls' routed share must be at least this many times the good's
Z = 1.645  # one-sided 95%
THRESHOLDS = tuple(round(0.5 + 0.025 * i, 3) for i in range(19))  # 0.5 .. 0.95
REPEATS = (2, 3, 4, 5, 6, 7, 8)
OFF = 1000  # a bot_repeats threshold no conversation reaches: the rule never fires

LOOP_SCORE = re.compile(r"(\{fact: loop\.score, gte: )([0-9.]+)(\})")
BOT_REPEATS = re.compile(r"(\{fact: loop\.bot_repeats, gte: )([0-9]+)(\})")

Turns = list[dict[str, FactValue]]


@dataclass(frozen=True)
class Point:
    """The routed shares of one candidate (T, N) on each half."""

    threshold: float
    repeats: int
    good: Mapping[str, float]
    bad: Mapping[str, float]
    left: Mapping[str, float]  # median customer turns left after a bad call's handoff
    good_counts: Mapping[str, tuple[int, int]]  # the good calls: (routed, all)

    def acceptable(self, half: str = "even") -> bool:
        """At most TARGET of the good calls with 95% confidence, RATIO times that of the bad."""
        routed, total = self.good_counts[half]
        return (wilson_upper(routed, total, Z) <= TARGET
                and self.bad[half] >= RATIO * self.good[half])


def replayed_facts(rules: Path, data: Path) -> tuple[list[Turns], list[bool]]:
    """Each BETOLD dialogue's per-turn facts (as the pipeline builds them) and LUHF label."""
    raw = json.loads((data / BREAKDOWN).read_text(encoding="utf-8"))
    policy = load_policy(rules)
    try:
        replayer = Replayer(policy)
        dialogues = [[dict(d.facts) for d in replayer.run(f"b{n}", breakdown_turns(dialogue))]
                     for n, dialogue in enumerate(raw)]
    finally:
        policy.close()
    return dialogues, [d["LUHF"] == "luhf" for d in raw]


def candidate(rules: Path, folder: Path, threshold: float, repeats: int) -> Path:
    """A copy of the rules folder with the two loop thresholds replaced."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(rules, folder)
    loops = folder / "loops.yaml"
    text = loops.read_text(encoding="utf-8")
    text, found_t = LOOP_SCORE.subn(lambda m: f"{m[1]}{threshold:g}{m[3]}", text)
    text, found_n = BOT_REPEATS.subn(lambda m: f"{m[1]}{repeats}{m[3]}", text)
    if (found_t, found_n) != (1, 1):
        raise SystemExit("loops.yaml: expected one loop.score and one loop.bot_repeats "
                         "condition to replace")
    loops.write_text(text, encoding="utf-8")
    return folder


def first_handoffs(folder: Path, dialogues: Sequence[Turns]) -> list[int | None]:
    """The 0-based turn of each dialogue's first handoff under the rules in `folder`."""
    policy = load_policy(folder)
    try:
        found: list[int | None] = []
        for turns in dialogues:
            first = None
            for i, facts in enumerate(turns):
                # Before its first handoff a conversation is not escalated.
                if policy.engine.evaluate({**facts, "conversation.escalated": False}
                                          ).decision == ROUTE:
                    first = i
                    break
            found.append(first)
        return found
    finally:
        policy.close()


def measure(threshold: float, repeats: int, firsts: Sequence[int | None],
            dialogues: Sequence[Turns], luhf: Sequence[bool]) -> Point:
    good: dict[str, float] = {}
    bad: dict[str, float] = {}
    left: dict[str, float] = {}
    counts: dict[str, tuple[int, int]] = {}
    for half in HALVES:
        chosen = [n for n in range(len(luhf)) if in_half(n, half)]
        for outcome, shares in ((False, good), (True, bad)):
            members = [n for n in chosen if luhf[n] == outcome]
            routed = [n for n in members if firsts[n] is not None]
            shares[half] = len(routed) / len(members)
            if not outcome:
                counts[half] = (len(routed), len(members))
            else:
                gaps = sorted(len(dialogues[n]) - 1 - (firsts[n] or 0) for n in routed)
                left[half] = _median(gaps)
    return Point(threshold, repeats, good, bad, left, counts)


def _median(values: Sequence[int]) -> float:
    if not values:
        return math.nan
    middle = len(values) // 2
    return float(values[middle]) if len(values) % 2 else (values[middle - 1]
                                                          + values[middle]) / 2


HEADER = (f"  {'T':<5}  {'N':>3}   " + "   ".join(f"{h + ': well badly':>18}" for h in HALVES)
          + "   well <=  left")


def line(point: Point) -> str:
    """One candidate: routed shares and ratio per half, the even half's bound, turns left."""
    repeats = "off" if point.repeats == OFF else str(point.repeats)
    parts = [f"{point.threshold:<5g}  {repeats:>3}"]
    parts += [f"{point.good[h]:5.1%} {point.bad[h]:6.1%} {_ratio(point, h):>5}" for h in HALVES]
    routed, total = point.good_counts["even"]
    left = "-" if math.isnan(point.left["all"]) else f"{point.left['all']:g}"
    parts.append(f"{wilson_upper(routed, total, Z):7.1%}  {left:>4}")
    return "   ".join(parts) + ("  ok" if point.acceptable() else "")


def _ratio(point: Point, half: str) -> str:
    return f"{point.bad[half] / point.good[half]:.1f}x" if point.good[half] else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the data sets (../shared/data)")
    parser.add_argument("--rules", type=Path, default=None,
                        help="rule set folder to start from (default: packaged)")
    args = parser.parse_args(argv)
    rules = args.rules or default_rules_dir()
    dialogues, luhf = replayed_facts(rules, args.data)
    text = (rules / "loops.yaml").read_text(encoding="utf-8")
    shipped_t, shipped_n = (float(LOOP_SCORE.search(text)[2]),  # type: ignore[index]
                            int(BOT_REPEATS.search(text)[2]))  # type: ignore[index]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        cache: dict[tuple[float, int], Point] = {}

        def point(threshold: float, repeats: int) -> Point:
            if (threshold, repeats) not in cache:
                firsts = first_handoffs(candidate(rules, folder, threshold, repeats), dialogues)
                cache[threshold, repeats] = measure(threshold, repeats, firsts, dialogues, luhf)
            return cache[threshold, repeats]

        print(f"{len(luhf)} dialogues, {luhf.count(False)} ended well, {luhf.count(True)} "
              "badly. Per half: the share of each routed to a person and badly/well;\n"
              "'well <=': the upper 95% bound of the even half's well share; 'left': median "
              "customer turns\nleft after a bad call's handoff (all); 'ok': acceptable on "
              "the even half.\n")
        print(HEADER)
        print("shipped:")
        print("  " + line(point(shipped_t, shipped_n)))

        print(f"\n1. conversation-looping's T = {THRESHOLDS[0]:g}..{THRESHOLDS[-1]:g}, "
              "bot-repeating-prompt's N off:")
        alone = [point(t, OFF) for t in THRESHOLDS]
        for p in alone:
            print("  " + line(p))
        fine = [p for p in alone if p.acceptable()]
        if not fine:
            print(f"no T routes at most {TARGET:.0%} of the good calls (95% bound) with a "
                  f"{RATIO}x ratio: the curve above is the trade-off to choose from")
            return 1
        best = max(fine, key=lambda p: (p.bad["even"], -p.good["even"]))
        print(f"   chosen: T {best.threshold:g}")

        print(f"\n2. bot-repeating-prompt at T {best.threshold:g}, N = "
              f"{REPEATS[0]}..{REPEATS[-1]}:")
        with_repeats = [point(best.threshold, n) for n in REPEATS]
        for p in with_repeats:
            print("  " + line(p))
        chosen = next((p for p in with_repeats if p.acceptable()), None)
        repeats = chosen.repeats if chosen is not None else OFF
        print(f"   chosen: N {repeats if chosen is not None else 'off'}")

        print(f"\n3. the trade-off curve at N {repeats if chosen is not None else 'off'}:")
        for t in THRESHOLDS:
            print("  " + line(point(t, repeats)))

        final = point(best.threshold, repeats)
        print("\nchosen, for rules/loops.yaml:")
        print(f"  conversation-looping: {{fact: loop.score, gte: {best.threshold:g}}}")
        print(f"  bot-repeating-prompt: {{fact: loop.bot_repeats, gte: {repeats}}}")
        print("  " + line(final))
        held_out = ("meets" if final.good["odd"] <= TARGET
                    and final.bad["odd"] >= RATIO * final.good["odd"] else "MISSES")
        print(f"  held-out half {held_out} the target (well <= {TARGET:.0%}, "
              f"badly >= {RATIO}x well)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
