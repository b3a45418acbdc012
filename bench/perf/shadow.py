"""What a shadow rule set costs a turn: CPU per decided turn with and without one.

    python -m bench.perf.shadow [--redis-url redis://127.0.0.1:6379/15] [--rounds 7]
                                [--conversations 20] [--shadow-rules DIR]
    python -m bench.perf.shadow --instructions --redis-url redis://127.0.0.1:6379/15

Runs the service's own Pipeline (scoring, durable-rules, the Redis state store, a decision
log to /dev/null) on 20-turn conversations, alternating conversations without and with a
shadow rule set (default: a copy of the default rules, the cost of a candidate as large as the
live set), and prints the process CPU (user + system) per turn of each, the median of the
rounds, and the shadow's share. Conversations alternate so that other load on the machine
disturbs both alike; the ratio within one run is the number to report. Also prints the
median time of Shadow.judged alone. Without --redis-url an embedded Redis is started;
keys it writes are deleted at the end.

With --instructions, the same is counted in instructions instead (valgrind's callgrind,
PYTHONHASHSEED=0: repeatable on a shared machine, where CPU seconds drift by a fifth from
run to run): four measured processes, without and with the shadow, each with no measured
turns (start-up and a 20-turn warm-up) and with --turns turns, and the difference per
turn. Takes a few minutes; needs valgrind and --redis-url.

For the share of a whole served turn (HTTP, gunicorn, JSON), run bench.perf.load twice,
without and with --shadow-rules, and compare the workers' CPU per request.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.perf.decide import turns  # the same 20 turns as bench.perf.decide
from escalator.config import default_rules_dir
from escalator.decisionlog import FileLog
from escalator.model import Turn
from escalator.pipeline import Pipeline
from escalator.policy import PolicyHolder, load_policy
from escalator.shadow import Shadow
from escalator.state.embedded import start_embedded
from escalator.state.store import StateStore, conversation_key
from escalator.turnschema import TurnSchema


def run_round(plain: Pipeline, shadowed: Pipeline, conversation: list[Turn], prefix: str,
              count: int, cids: list[str]) -> tuple[float, float]:
    """CPU seconds per turn without and with the shadow, over `count` conversations each,
    one of each in turn (so that a burst of other load falls on both alike)."""
    spent = [0.0, 0.0]
    for c in range(count):
        for arm, pipeline in enumerate((plain, shadowed)):
            cid = f"{prefix}-{arm}-{c}"
            cids.append(cid)
            started = time.process_time()
            for turn in conversation:
                pipeline.decide(cid, turn)
            spent[arm] += time.process_time() - started
    turns_decided = count * len(conversation)
    return spent[0] / turns_decided, spent[1] / turns_decided


def child(url: str, shadow_rules: Path | None, count: int) -> None:
    """The measured process: a pipeline (with a shadow if given), 20 warm-up turns, then
    `count` turns; its keys deleted by the parent's prefix."""
    store = StateStore.from_url(url, timeout_seconds=1.0)
    pipeline = Pipeline(PolicyHolder(load_policy(default_rules_dir())), store,
                        decision_log=FileLog("/dev/null"),
                        shadow=Shadow(shadow_rules) if shadow_rules else None)
    schema = TurnSchema()
    conversation = [schema.load(t) for t in turns(20)]
    prefix = "bench-shadow-instr"
    for turn in conversation:
        pipeline.decide(f"{prefix}-warm", turn)
    for n in range(count):
        pipeline.decide(f"{prefix}-{n // 20}", conversation[n % 20])


def instructions(url: str, shadow_rules: Path, count: int) -> None:
    """Print the instructions per turn without and with the shadow (see the docstring)."""
    import os
    import re
    import subprocess

    def measured(shadow: Path | None, n: int) -> int:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                   sys.executable, "-m", "bench.perf.shadow", "--child", "--redis-url", url,
                   "--turns", str(n)] + (["--shadow-rules", str(shadow)] if shadow else [])
        run = subprocess.run(command, capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
        found = re.search(r"Collected : (\d+)", run.stderr)
        raw = redis.Redis.from_url(url)
        keys = list(raw.scan_iter(match="escalator:{bench-shadow-instr-*"))
        if keys:
            raw.delete(*keys)
        raw.close()
        if run.returncode != 0 or found is None:
            raise SystemExit(f"shadow: the measured run failed:\n{run.stderr[-3000:]}")
        return int(found.group(1))

    plain = (measured(None, count) - measured(None, 0)) / count
    shadowed = (measured(shadow_rules, count) - measured(shadow_rules, 0)) / count
    print(f"instructions per turn (callgrind, PYTHONHASHSEED=0, {count} turns after a "
          "20-turn warm-up; the pipeline with a decision log to /dev/null)")
    print(f"  no shadow      {plain:>12,.0f}")
    print(f"  with shadow    {shadowed:>12,.0f}")
    print(f"  shadow's share {100 * (shadowed - plain) / plain:>11.1f} % (target: < 15%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--shadow-rules", type=Path,
                        help="the shadow rule set (default: a copy of the default rules)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead (needs --redis-url)")
    parser.add_argument("--turns", type=int, default=200,
                        help="measured turns per process with --instructions (default 200)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.redis_url, args.shadow_rules, args.turns)
        return
    if args.instructions:
        if args.redis_url is None or shutil.which("valgrind") is None:
            raise SystemExit("shadow: --instructions needs valgrind and --redis-url")
        rules = args.shadow_rules
        if rules is None:
            rules = Path(tempfile.mkdtemp(prefix="escalator-shadow-bench-")) / "shadow"
            shutil.copytree(default_rules_dir(), rules, ignore=shutil.ignore_patterns(
                "__pycache__", "__init__.py", "tests"))
        instructions(args.redis_url, rules, args.turns)
        return

    folder = Path(tempfile.mkdtemp(prefix="escalator-shadow-bench-"))
    embedded = None
    url = args.redis_url
    if url is None:
        embedded = start_embedded(folder / "redis")
        url = embedded.url
    shadow_rules = args.shadow_rules
    if shadow_rules is None:
        shadow_rules = folder / "shadow"
        shutil.copytree(default_rules_dir(), shadow_rules,
                        ignore=shutil.ignore_patterns("__pycache__", "__init__.py", "tests"))
    store = StateStore.from_url(url, timeout_seconds=1.0)
    log = FileLog("/dev/null")
    plain = Pipeline(PolicyHolder(load_policy(default_rules_dir())), store, decision_log=log)
    shadow = Shadow(shadow_rules)
    shadowed = Pipeline(PolicyHolder(load_policy(default_rules_dir())), store,
                        decision_log=log, shadow=shadow)
    schema = TurnSchema()
    conversation = [schema.load(t) for t in turns(20)]
    prefix = f"bench-shadow-{uuid.uuid4().hex[:8]}"
    cids: list[str] = []
    try:
        run_round(plain, shadowed, conversation, f"{prefix}-warm", 5, cids)
        without, with_shadow = [], []
        for r in range(args.rounds):
            plain_cpu, shadow_cpu = run_round(plain, shadowed, conversation, f"{prefix}-{r}",
                                              args.conversations, cids)
            without.append(plain_cpu)
            with_shadow.append(shadow_cpu)
        # The verdict alone, on decisions already made.
        decisions = [plain.decide(f"{prefix}-judged", turn) for turn in conversation]
        cids.append(f"{prefix}-judged")
        judged = []
        for _ in range(200):
            for decision in decisions:
                t0 = time.perf_counter()
                shadow.judged(decision)
                judged.append(time.perf_counter() - t0)
    finally:
        raw = redis.Redis.from_url(url)
        for start in range(0, len(cids), 500):
            raw.delete(*(conversation_key(c) for c in cids[start:start + 500]))
        raw.close()
        shadow.close()
        store.close()
        if embedded is not None:
            embedded.shutdown()
        shutil.rmtree(folder, ignore_errors=True)

    base, shadowed_cpu = statistics.median(without), statistics.median(with_shadow)
    turns_per_round = args.conversations * len(conversation)
    print(f"turns per round        {turns_per_round} ({args.conversations} conversations x "
          f"{len(conversation)}), {args.rounds} rounds, alternating")
    print(f"CPU per turn, no shadow   {base * 1e6:8.1f} us  (rounds: "
          + " ".join(f"{v * 1e6:.0f}" for v in without) + ")")
    print(f"CPU per turn, with shadow {shadowed_cpu * 1e6:8.1f} us  (rounds: "
          + " ".join(f"{v * 1e6:.0f}" for v in with_shadow) + ")")
    print(f"shadow's share            {100 * (shadowed_cpu - base) / base:8.1f} % of a "
          "decided turn's CPU (target: < 15%)")
    print(f"Shadow.judged alone       {statistics.median(judged) * 1e6:8.1f} us (median)")


if __name__ == "__main__":
    main()
