"""Large rule sets: what 50, 200 and 500 rules cost per turn and per reload.

    python -m bench.perf.large_rulesets [--sizes 50,200,500] [--files 6] [--seed 7] [--keep DIR]

For each size, writes a rules folder: the default rules (rules/, with their lexicons and
floor) plus that many generated rules spread over --files files, realistic in shape:

- every fact of the catalogue that rules can test, with the operators its type takes:
  numbers and integers with lt/lte/gt/gte/eq/ne at thresholds inside their ranges,
  labels (complexity.topics, frustration.cues) with `contains`, strings (language,
  tier, segment, channel, intent) with eq/ne/in/not_in, booleans with `is`, and a few
  context values (context.agents_available, context.business_hours, context.region);
- conditions of one to four parts under `all`, with `any` groups of two or three and
  `not` around a comparison or an `any`, no fact twice in a rule;
- priorities 1-95 (the floor's 100 and 110 stay on top), route_to_human with a queue and
  an urgency, or keep_with_bot.

Then, in this process:

- reload: `load_policy` of the folder (parse, check, compile: what a worker does on a
  change), the median of --loads loads, and the same with the lexicons reused (what the
  reloader does when only rule files changed);
- evaluation: the compiled set's `evaluate` on the facts of 1,200 realistic turns (the
  turns of bench/perf/instructions.py scored by the default rules' pipeline, with varied tiers,
  channels, languages and context values), thread CPU per evaluation (mean, p99) and the
  rules matched per turn;
- the engine's shape: engine rules (alternatives), comparisons, engine rulesets (the
  compiler shards at 64 comparisons per ruleset: durable-rules' evaluation stack) and fact
  properties (at most 254).

Targets (issue 16): the 500-rule set under 1 ms per evaluation and under 5 s to reload.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
TOPICS = ["legal", "fraud", "bereavement", "vulnerability", "safety", "cancellation",
          "complaint", "data_privacy"]
CUES = ["repetition", "waiting", "threat_to_leave", "public_complaint", "profanity",
        "insult", "sarcasm"]
STRINGS: dict[str, list[str]] = {
    "message.language": ["en", "es", "de", "fr", "pt", "it", "nl"],
    "customer.tier": ["gold", "platinum", "silver", "bronze", "vip"],
    "customer.segment": ["consumer", "business", "enterprise", "student"],
    "channel": ["web", "app", "voice", "sms", "whatsapp", "email"],
    "message.intent": ["order_status", "refund", "cancel_order", "change_address",
                       "billing_question", "complaint", "nlu_fallback", "greet"],
    "context.region": ["eu", "us", "apac", "latam"],
}
BOOLEANS = ["requested_human", "conversation.escalated", "context.business_hours"]
LABELS = {"complexity.topics": TOPICS, "frustration.cues": CUES}
QUEUES = ["support", "billing", "retention", "priority", "specialists"]
URGENCIES = ["low", "normal", "high", "urgent"]


def numeric_facts() -> dict[str, tuple[float, float, bool]]:
    """Number facts the rules may test: (low, high, integer?) from the catalogue."""
    from escalator.ruleset.catalogue import FACTS

    found: dict[str, tuple[float, float, bool]] = {}
    for name, spec in FACTS.items():
        if spec.type not in ("number", "integer"):
            continue
        integer = spec.type == "integer"
        low = spec.minimum if spec.minimum is not None else 0
        high = spec.maximum if spec.maximum is not None else (12 if integer else 60)
        found[name] = (low, high, integer)
    found["context.agents_available"] = (0, 20, True)
    return found


class Generator:
    """Random rules over the catalogue's facts (seeded: the same folder every run)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.numbers = numeric_facts()

    def leaf(self, used: set[str], trigger: bool = False) -> dict[str, Any]:
        """One comparison on a fact not yet used in the rule. A trigger is selective, as
        the first comparison of a real escalation rule is (a score in its upper tail, a
        count past a few, a topic or cue present, a request for a person); the others
        scope it (a tier, a channel, a language, a range) or exclude cases."""
        rng = self.rng
        while True:
            kinds = ["number", "labels", "boolean"] if trigger else ["number", "string",
                                                                      "boolean", "labels"]
            kind = rng.choices(kinds, [6, 3, 1] if trigger else [4, 4, 1, 1])[0]
            fact = rng.choice({"number": list(self.numbers), "string": list(STRINGS),
                               "boolean": BOOLEANS, "labels": list(LABELS)}[kind])
            if fact not in used:
                used.add(fact)
                break
        if kind == "number":
            low, high, integer = self.numbers[fact]
            if integer:
                # Thresholds strictly inside the range: "lt 0" on a count can never hold,
                # and the loader refuses such a rule.
                top = int(min(high, low + 12))
                if trigger or rng.random() < 0.6:
                    op, value = rng.choice(["gte", "gt"]), rng.randint(int(low) + 2, top - 1)
                else:
                    op = rng.choice(["lte", "lt", "eq", "ne"])
                    value = rng.randint(int(low) + 1, top - 1)
                return {"fact": fact, op: value}
            span = high - low
            if trigger or rng.random() < 0.5:  # the upper or lower tail
                if rng.random() < 0.7:
                    return {"fact": fact, rng.choice(["gte", "gt"]):
                            round(rng.uniform(low + 0.7 * span, high - 0.02 * span), 2)}
                return {"fact": fact, rng.choice(["lte", "lt"]):
                        round(rng.uniform(low + 0.02 * span, low + 0.3 * span), 2)}
            return {"fact": fact, rng.choice(["gte", "lte", "gt", "lt"]):
                    round(rng.uniform(low + 0.1 * span, high - 0.1 * span), 2)}
        if kind == "string":
            values = STRINGS[fact]
            op = rng.choice(["eq", "eq", "in", "not_in", "ne"])
            if op in ("in", "not_in"):
                return {"fact": fact, op: rng.sample(values, rng.randint(2, 3))}
            return {"fact": fact, op: rng.choice(values)}
        if kind == "boolean":
            return {"fact": fact, "is": trigger or rng.random() < 0.6}
        return {"fact": fact, "contains": rng.choice(LABELS[fact])}

    def condition(self) -> dict[str, Any]:
        """A rule's condition; at most 8 ways for it to be true once any, in and not are
        written out (the compiler caps it at 256, and the rule set at 5,000 comparisons:
        real rules are small, the default ones 1-3 comparisons)."""
        while True:
            condition = self._condition()
            if _ways(condition) <= 8:
                return condition

    def _condition(self) -> dict[str, Any]:
        rng = self.rng
        used: set[str] = set()
        parts: list[dict[str, Any]] = [self.leaf(used, trigger=True)]
        for _ in range(rng.choices([0, 1, 2, 3], [3, 5, 3, 1])[0]):
            shape = rng.choices(["leaf", "any", "not", "not-any"], [16, 3, 2, 1])[0]
            if shape == "leaf":
                parts.append(self.leaf(used))
            elif shape == "any":
                parts.append({"any": [self.leaf(used), self.leaf(used)]})
            elif shape == "not":
                parts.append({"not": self.leaf(used)})
            else:
                parts.append({"not": {"any": [self.leaf(used), self.leaf(used)]}})
        return {"all": parts}

    def rule(self, file: str, number: int) -> dict[str, Any]:
        rng = self.rng
        rule: dict[str, Any] = {
            "id": f"{file}-{number:03d}",
            "description": f"Generated rule {number} of {file} (bench/perf/large_rulesets.py).",
            "priority": rng.randint(1, 95),
            "when": self.condition(),
        }
        if rng.random() < 0.75:
            rule["then"] = {"decision": "route_to_human", "queue": rng.choice(QUEUES),
                            "urgency": rng.choice(URGENCIES)}
        else:
            rule["then"] = {"decision": "keep_with_bot"}
        return rule


def _ways(condition: dict[str, Any]) -> int:
    """About how many alternatives the compiler expands a condition into (an upper bound)."""
    if "all" in condition:
        ways = 1
        for item in condition["all"]:
            ways *= _ways(item)
        return ways
    if "any" in condition:
        return sum(_ways(item) for item in condition["any"])
    if "not" in condition:
        return 3 * _ways(condition["not"])
    if "in" in condition:
        return len(condition["in"])
    return 3 if ("ne" in condition or "not_in" in condition) else 1


def write_folder(folder: Path, size: int, files: int, seed: int) -> None:
    """The default rules plus `size` generated ones in `files` files."""
    shutil.copytree(RULES, folder, ignore=shutil.ignore_patterns("tests", "__init__.py",
                                                                 "__pycache__"))
    generator = Generator(seed + size)
    per_file = [size // files + (1 if n < size % files else 0) for n in range(files)]
    for n, count in enumerate(per_file):
        name = f"generated-{n + 1}"
        rules = [generator.rule(name, k + 1) for k in range(count)]
        header = f"# {count} rules generated by bench/perf/large_rulesets.py (seed {seed}).\n"
        (folder / f"{name}.yaml").write_text(
            header + yaml.safe_dump({"rules": rules}, sort_keys=False, width=100))


def realistic_facts() -> list[dict[str, Any]]:
    """The facts of 1,200 turns (60 conversations of 20), scored by the default rules."""
    from bench.perf.instructions import requests
    from escalator.model import ConversationState, Turn
    from escalator.pipeline import Pipeline
    from escalator.policy import PolicyHolder, load_policy
    from escalator.turnschema import turn_schema

    rng = random.Random(11)
    policy = load_policy(RULES)
    pipeline = Pipeline(PolicyHolder(policy), None)
    schema = turn_schema()
    states: dict[str, ConversationState] = {}
    facts: list[dict[str, Any]] = []
    import json

    for _, path, body in requests(1200, "turns"):
        payload = json.loads(body)
        payload["customer"] = {"tier": rng.choice(STRINGS["customer.tier"]),
                               "segment": rng.choice(STRINGS["customer.segment"])}
        payload["channel"] = rng.choice(STRINGS["channel"])
        payload["context"] = {"agents_available": rng.randint(0, 6),
                              "business_hours": rng.random() < 0.7,
                              "region": rng.choice(STRINGS["context.region"])}
        if rng.random() < 0.3:
            payload["message"]["intent"] = rng.choice(STRINGS["message.intent"])
            payload["message"]["intent_confidence"] = round(rng.random(), 2)
        turn: Turn = schema.load(payload)
        conversation = path.split("/")[3]
        result = pipeline.evaluate(conversation, turn,
                                   states.get(conversation, ConversationState()), policy)
        states[conversation] = result.state
        facts.append(dict(result.decision.facts))
    policy.engine.close()
    return facts


def comparisons(ruleset: Any) -> tuple[int, int]:
    """Engine rules (alternatives) and comparisons the rule set compiles into."""
    from escalator.ruleset import compiler

    keys = compiler._Keys()
    alternatives = tests = 0
    for rule in ruleset.rules:
        for atoms in compiler._expand(compiler._compile(rule.when, keys)):
            alternatives += 1
            tests += len(atoms)
    return alternatives, tests


def measure(folder: Path, facts: list[dict[str, Any]], loads: int) -> dict[str, Any]:
    from escalator.policy import load_policy

    full, rules_only = [], []
    policy = None
    for _ in range(loads):
        started = time.perf_counter()
        loaded = load_policy(folder)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = load_policy(folder, loaded.lexicons)
        rules_only.append(time.perf_counter() - started)
        if policy is not None:
            policy.engine.close()
        loaded.engine.close()
        policy = again
    assert policy is not None
    engine = policy.engine
    for sample in facts[:50]:  # warm
        engine.evaluate(sample)
    times, matched = [], 0
    clock = time.thread_time_ns
    for sample in facts:
        started = clock()
        evaluation = engine.evaluate(sample)
        times.append(clock() - started)
        matched += len(evaluation.matches)
    times.sort()
    shape = {
        "rules": len(policy.ruleset.rules),
        "comparisons": comparisons(policy.ruleset),
        "engine_rulesets": len(engine._handles),
        "reload_full_s": statistics.median(full),
        "reload_rules_s": statistics.median(rules_only),
        "eval_mean_us": sum(times) / len(times) / 1000,
        "eval_p99_us": times[int(len(times) * 0.99)] / 1000,
        "matched": matched / len(facts),
    }
    engine.close()
    return shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--loads", type=int, default=3, help="loads per size (median)")
    parser.add_argument("--keep", type=Path, help="write the folders here and keep them")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = args.keep or Path(tempfile.mkdtemp(prefix="escalator-large-rules-"))
    facts = realistic_facts()
    rows = [("default rules", RULES)]
    try:
        for size in sizes:
            folder = base / f"rules-{size}"
            if folder.exists():
                shutil.rmtree(folder)
            write_folder(folder, size, args.files, args.seed)
            rows.append((f"default + {size} generated", folder))
        print(f"rules cost per evaluation and per reload ({len(facts)} turns' facts; "
              f"thread CPU per evaluation; reload wall time, median of {args.loads})\n")
        print("| rule set | rules | engine rules / comparisons | engine rulesets (shards) "
              "| evaluation mean | p99 | rules matched per turn | reload (full) "
              "| reload (rules only) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, folder in rows:
            found = measure(folder, facts, args.loads)
            print(f"| {name} | {found['rules']} | {found['comparisons'][0]:,} / "
                  f"{found['comparisons'][1]:,} | {found['engine_rulesets']} "
                  f"| {found['eval_mean_us']:.0f} µs | {found['eval_p99_us']:.0f} µs "
                  f"| {found['matched']:.1f} | {found['reload_full_s']:.2f} s "
                  f"| {found['reload_rules_s']:.2f} s |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
