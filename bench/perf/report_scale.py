"""How fast `escalator report` reads a large decision log, and how much memory it takes.

    python -m bench.perf.report_scale generate --decisions 1000000 --out /tmp/report-1m.jsonl
    python -m bench.perf.report_scale measure /tmp/report-1m.jsonl [--format json] [--parser json]
    python -m bench.perf.report_scale measure /tmp/report-3m.jsonl /tmp/report-3m.jsonl \
        /tmp/report-3m.jsonl /tmp/report-1m.jsonl   # 10 million records in one run

`generate` writes a month of synthetic decision records shaped as the service writes them
(ids, outcome, handoff with its brief, rules, rule set, segment, 32 facts, and a shadow
rule set's verdict on every decision) with feedback records on `--feedback` of them (5%
by default), each written a few thousand records after its decision, as agents answer
later. Values are random (frustration, loops, segments, which rule decided), drawn so
that every section of the report has something to count; no text anywhere. Write it
outside the project (it is about 1.5 KB a decision).

`measure` runs `escalator report` on a file in a child process and prints its wall
time, records per second and peak resident memory (the child's ru_maxrss), as one JSON
line. Memory flat in the log's length shows as the same peak for 1M and 3M decisions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

DAY = 86400
START = 1_793_491_200  # 2026-11-01T00:00:00Z
CHANNELS = ("web", "app", "voice", "sms", "whatsapp")
LANGUAGES = ("en", "en", "en", "es", "de", "fr", "pt")
TIERS = ("standard", "standard", "standard", "silver", "gold", "platinum")
RULESET = {"name": "default", "version": "2026.11.5", "digest": "sha256:" + "ab" * 32}
SHADOW = {"name": "default", "version": "2026.11.5-candidate", "digest": "sha256:" + "cd" * 32}


def _facts(rng: random.Random, turn: int, channel: str, language: str,
           tier: str) -> dict[str, Any]:
    score = min(1.0, max(0.0, rng.betavariate(2, 4) + (0.3 if rng.random() < 0.08 else 0)))
    mean = min(1.0, max(0.0, score * 0.7 + rng.random() * 0.25))
    repeats = rng.choice((0, 0, 0, 0, 1, 1, 2, 3))
    return {
        "message.chars": rng.randint(5, 400), "message.language": language,
        "sentiment.score": round(rng.uniform(-1, 1), 4),
        "sentiment.mean": round(rng.uniform(-1, 1), 4),
        "sentiment.trend": round(rng.uniform(-1, 0.5), 4),
        "sentiment.negative_streak": rng.choice((0, 0, 1, 2, 3)),
        "frustration.score": round(score, 4), "frustration.mean": round(mean, 4),
        "frustration.cues": rng.choice(([], [], ["waiting"], ["repetition", "shouting"])),
        # The fitted score the default rules read: the lexicon score, as far as a generated
        # log needs (the same draw keeps the generator's output otherwise unchanged).
        "frustration.fitted": round(score, 4),
        "complexity.score": round(rng.random() * 0.9, 4),
        "complexity.questions": rng.randint(0, 3), "complexity.issues": rng.randint(1, 2),
        "complexity.topics": rng.choice(([], [], ["cancellation"], ["fraud"])),
        "intent.low_confidence_streak": rng.choice((0, 0, 0, 1, 3)),
        "loop.score": round(rng.random() ** 2, 4), "loop.repeats": repeats,
        "loop.fallback_streak": rng.choice((0, 0, 0, 1, 3)), "loop.fallbacks": rng.randint(0, 3),
        "loop.bot_repeats": rng.randint(0, 9), "loop.intent_repeats": rng.randint(0, 2),
        "loop.oscillations": 0, "loop.not_understood": rng.randint(0, 2),
        "loop.rejections": rng.randint(0, 1), "loop.answers": rng.randint(0, 3),
        "loop.reasks": rng.choice((0, 0, 0, 1, 2)), "requested_human": rng.random() < 0.04,
        "turn_index": turn, "conversation.escalated": False, "conversation.escalations": 0,
        "conversation.minutes": round(turn * rng.uniform(0.2, 2.0), 2),
        "customer.tier": tier, "channel": channel,
    }


def _decide(facts: dict[str, Any], spike: float) -> list[str]:
    """A simplified default policy (the report reads rules and outcomes, not how)."""
    rules = []
    if facts["requested_human"]:
        rules.append("explicit-human-request")
    if facts["loop.fallback_streak"] >= 3:
        rules.append("bot-fallback-cap")
    if facts["loop.repeats"] >= 2:
        rules.append("customer-repeating")
    if facts["customer.tier"] in ("gold", "platinum") and facts["frustration.fitted"] >= 0.75:
        rules.append("valued-customer-frustrated")
    if facts["frustration.mean"] >= 0.65 and facts["turn_index"] >= 3:
        rules.append("sustained-frustration")
    if facts["frustration.fitted"] >= spike:
        rules.append("frustration-spike")
    return rules


def generate(decisions: int, feedback_share: float, out: Path, seed: int) -> None:
    rng = random.Random(seed)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    late: deque[tuple[int, str]] = deque()
    step = 30 * DAY / max(decisions, 1)
    with out.open("w", encoding="ascii") as stream:
        for n in range(decisions):
            at = START + n * step
            channel, language, tier = (rng.choice(CHANNELS), rng.choice(LANGUAGES),
                                       rng.choice(TIERS))
            turn = rng.randint(1, 8)
            facts = _facts(rng, turn, channel, language, tier)
            rules = _decide(facts, 0.85)
            shadow_rules = _decide(facts, 0.80)
            outcome = "route_to_human" if rules else "keep_with_bot"
            shadow_outcome = "route_to_human" if shadow_rules else "keep_with_bot"
            decision_id = uuid.UUID(int=rng.getrandbits(128)).hex
            handoff = None if not rules else {"queue": "support", "urgency": "high", "brief": {
                "why": {"decisive": "The customer is frustrated.", "rule": rules[0],
                        "others": rules[1:]},
                "language": language, "intents": [], "topics": facts["complexity.topics"],
                "conversation": {"turns": turn, "minutes": facts["conversation.minutes"],
                                 "fallbacks": facts["loop.fallbacks"],
                                 "repeats": facts["loop.repeats"],
                                 "frustration": {"now": facts["frustration.score"],
                                                 "mean": facts["frustration.mean"],
                                                 "trend": facts["sentiment.trend"],
                                                 "recent": [facts["frustration.score"]]}},
                "asked_for_person": facts["requested_human"], "tier": tier,
                "channel": channel}}
            record = {
                "kind": "decision", "decision_id": decision_id, "time": round(at, 3),
                "conversation_id": f"c-{n // 4}", "turn_id": f"t-{turn}", "turn_index": turn,
                "decision": outcome, "handoff": handoff, "rules": rules, "ruleset": RULESET,
                "degraded": False,
                "segment": {"channel": channel, "language": language, "tier": tier,
                            "segment": None},
                "facts": facts,
                "shadow": {"ruleset": SHADOW, "decision": shadow_outcome, "rules": shadow_rules,
                           "agrees": shadow_outcome == outcome},
            }
            stream.write(dumps(record) + "\n")
            if rng.random() < feedback_share:
                if outcome == "route_to_human":
                    needed = rng.random() < 0.35 + 0.6 * facts["frustration.score"]
                    label = "handoff_needed" if needed else "handoff_not_needed"
                else:
                    missed = rng.random() < 0.6 * facts["frustration.mean"] ** 2
                    label = "should_have_escalated" if missed else "resolved_by_bot"
                feedback = {"kind": "feedback", "time": round(at + 600, 3),
                            "feedback_id": uuid.uuid4().hex, "decision_id": decision_id,
                            "conversation_id": record["conversation_id"], "label": label,
                            "source": rng.choice(("agent", "agent", "survey")), "reasons": [],
                            "decision": outcome, "rules": rules}
                late.append((n + rng.randint(1, 5000), dumps(feedback)))
            while late and late[0][0] <= n:
                stream.write(late.popleft()[1] + "\n")
        for _, line in late:
            stream.write(line + "\n")


# The report with the standard library's json, whatever is installed (for the ratio).
WITH_JSON = """import json, sys
from pathlib import Path
from escalator.config import default_rules_dir
from escalator.tools import report
rules = Path(sys.argv[2]) if len(sys.argv) > 2 else default_rules_dir()
report.build([sys.argv[1]], report.load_rules(rules), loads=json.loads).result()
"""


def measure(paths: list[Path], fmt: str, rules: Path | None, parser: str) -> dict[str, Any]:
    if parser == "json":
        if len(paths) != 1:
            raise SystemExit("--parser json reads one log")
        command = [sys.executable, "-c", WITH_JSON, str(paths[0])]
        command += [str(rules)] if rules is not None else []
    else:
        command = [sys.executable, "-m", "escalator", "report", *map(str, paths), "--format",
                   fmt, "--out", os.devnull]
        command += ["--rules", str(rules)] if rules is not None else []
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"escalator report failed ({status})")
    lines = 0
    for path in paths:
        with path.open("rb") as stream:
            lines += sum(1 for _ in stream)
    return {"files": [str(p) for p in paths], "parser": parser, "lines": lines,
            "bytes": sum(p.stat().st_size for p in paths),
            "seconds": round(seconds, 1), "records_per_second": round(lines / seconds),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a synthetic decision log")
    gen.add_argument("--decisions", type=int, default=1_000_000)
    gen.add_argument("--feedback", type=float, default=0.05)
    gen.add_argument("--seed", type=int, default=15)
    gen.add_argument("--out", type=Path, required=True)
    run = sub.add_parser("measure", help="time escalator report on a log")
    run.add_argument("logs", type=Path, nargs="+",
                     help="one log, or several read in one run (a larger log without "
                          "writing one: the same file given three times is three times "
                          "as many records)")
    run.add_argument("--format", default="json", choices=("text", "json", "html"))
    run.add_argument("--rules", type=Path)
    run.add_argument("--parser", default="installed", choices=("installed", "json"),
                     help="json: the standard library's, even when orjson is installed")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.decisions, args.feedback, args.out, args.seed)
    else:
        print(json.dumps(measure(args.logs, args.format, args.rules, args.parser)))


if __name__ == "__main__":
    main()
