"""Replay at scale: `escalator replay` on a generated corpus, turns per second by --jobs.

    python -m bench.perf.replay_scale [--turns 1000000] [--jobs 1,2] [--corpus /tmp/corpus.jsonl]

Writes a corpus of --turns customer turns (conversations of 2-40 turns: texts, intents,
fallbacks, prompt ids, tiers, channels and context varied as a chatbot sends them; about
300 bytes a turn) unless --corpus already exists, then runs `escalator replay --json` on it
with each --jobs value, one after the other, and prints the wall time, turns per second,
the speed-up over the first --jobs value, the CPU per turn of the replay and its workers
(what the speed-up on idle cores follows: jobs x the one-job rate, less any growth in CPU
per turn), and the peak resident memory of the replay (the command and its workers,
sampled every 0.2 s). With --check, also checks that every run printed the same result.
--sample N first replays the first N conversations alone, to show that memory does not
grow with the corpus.

The corpus is written to the path given (default /tmp/escalator-replay-corpus.jsonl) and
kept for the next run; delete it yourself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from bench.perf import instructions

TEXTS = [
    *instructions.TEXTS,
    "Can I change the delivery address for my order?",
    "I want a refund, this is ridiculous",
    "Thanks, that helps",
    "Let me talk to a real person please",
    "Hola, mi pedido no ha llegado todavía",
    "Mein Paket ist beschädigt angekommen",
    "ok",
]
INTENTS = ["order_status", "refund", "change_address", "greet", "nlu_fallback", "deny",
           "confirm", "complaint"]


def write_corpus(path: Path, turns: int, seed: int = 5) -> int:
    """A corpus of about `turns` turns; the number of conversations written."""
    rng = random.Random(seed)
    written = conversations = 0
    with path.open("w", encoding="utf-8") as out:
        while written < turns:
            length = min(rng.randint(2, 40), turns - written)
            tier = rng.choice(["gold", "silver", "bronze", None])
            channel = rng.choice(["web", "app", "voice", "sms"])
            body = []
            for n in range(length):
                turn: dict[str, object] = {"turn_id": f"t{n + 1}"}
                if rng.random() < 0.8:
                    turn["message"] = {"text": rng.choice(TEXTS)}
                else:
                    turn["message"] = {"intent": rng.choice(INTENTS),
                                       "intent_confidence": round(rng.random(), 2)}
                turn["bot"] = {"prompt_id": f"p{rng.randint(0, 5)}",
                               "fallback": rng.random() < 0.1}
                turn["channel"] = channel
                if tier:
                    turn["customer"] = {"tier": tier}
                turn["context"] = {"agents_available": rng.randint(0, 4)}
                body.append(turn)
            out.write(json.dumps({"conversation_id": f"c{conversations}", "turns": body},
                                 separators=(",", ":")) + "\n")
            written += length
            conversations += 1
    return conversations


def run(corpus: Path, jobs: int) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds and peak RSS of the replay's process tree, and what it
    printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-m", "escalator", "replay", str(corpus), "--json",
               "--jobs", str(jobs)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise SystemExit(f"replay_scale: replay failed:\n{err.decode()[-2000:]}")
    return seconds, cpu, peak, out.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--corpus", type=Path,
                        default=Path("/tmp/escalator-replay-corpus.jsonl"))
    parser.add_argument("--sample", type=int, default=0,
                        help="also replay the first N conversations alone (memory)")
    parser.add_argument("--check", action="store_true",
                        help="check that every run printed the same result")
    args = parser.parse_args()
    if not args.corpus.exists():
        started = time.perf_counter()
        conversations = write_corpus(args.corpus, args.turns)
        print(f"wrote {args.corpus}: {conversations:,} conversations, {args.turns:,} turns, "
              f"{args.corpus.stat().st_size / 2**20:,.0f} MB in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    print(f"escalator replay --json on {os.cpu_count()} CPUs (shared with whatever else "
          "runs)\n", flush=True)
    if args.sample:
        sample = args.corpus.with_suffix(".sample.jsonl")
        with args.corpus.open() as source, sample.open("w") as out:
            for _, line in zip(range(args.sample), source, strict=False):
                out.write(line)
        seconds, cpu, peak, printed = run(sample, 1)
        turns = json.loads(printed)["turns"]
        print(f"  sample    {turns:>10,} turns  jobs 1  {seconds:8.1f} s  "
              f"{turns / seconds:8.0f} turns/s  CPU {cpu / turns * 1e6:5.0f} us/turn  "
              f"peak RSS {peak / 2**20:6.0f} MB", flush=True)
        sample.unlink()
    outputs: list[str] = []
    first_rate = None
    for jobs in (int(j) for j in args.jobs.split(",")):
        seconds, cpu, peak, printed = run(args.corpus, jobs)
        outputs.append(printed)
        turns = json.loads(printed)["turns"]
        rate = turns / seconds
        first_rate = first_rate or rate
        print(f"  corpus    {turns:>10,} turns  jobs {jobs}  {seconds:8.1f} s  "
              f"{rate:8.0f} turns/s  x{rate / first_rate:4.2f}  CPU "
              f"{cpu / turns * 1e6:5.0f} us/turn  peak RSS {peak / 2**20:6.0f} MB",
              flush=True)
    if args.check:
        same = all(o == outputs[0] for o in outputs)
        print(f"\n  every --jobs printed the same result: {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
