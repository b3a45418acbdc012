"""Quick in-process cost of one decision, and Redis memory of a 20-turn conversation.

    python -m bench.perf.decide [--redis-url redis://127.0.0.1:6379/15] [--conversations 200]

Runs the service's own Pipeline (scoring, durable-rules, the Redis state store) on
20-turn conversations and prints the median cost per turn of each stage, measured in the
same run, plus `MEMORY USAGE` of one conversation's keys, and what the handoff brief costs:
its memory on every turn, building it on every routed turn (15 of the 20 here) and the
bytes it adds to a routed answer. Without --redis-url an embedded Redis is started. Keys
it writes are deleted at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from escalator import brief
from escalator.config import default_rules_dir
from escalator.model import ROUTE, ConversationState, Turn, compact_json
from escalator.pipeline import Pipeline
from escalator.policy import Policy, PolicyHolder, load_policy
from escalator.scoring import score_turn
from escalator.state.embedded import start_embedded
from escalator.state.store import StateStore, conversation_key
from escalator.turnschema import TurnSchema

TEXTS = [
    "Hi, I ordered a pair of running shoes last week and they still have not arrived yet",
    "The order number is 48213, can you tell me where my parcel is right now please",
    "It says delivered but I was home all day and nobody came to the door at all",
    "I already told you, the parcel never came and I have been waiting for two weeks",
    "Can you send a replacement or give me a refund, I need them before my race",
    "Why do I have to repeat myself, this is the third time I explain the same thing!!",
    "OK thanks, please send the replacement to the same address as the first order",
    "Will I get an email with the tracking number once the new parcel is shipped out",
    "Great, and how long does the delivery usually take to arrive in my area today",
    "Thank you for your help, have a nice day and I hope it arrives this time",
]


def turns(n: int) -> list[dict[str, object]]:
    return [{"turn_id": f"t-{i}", "message": {"text": TEXTS[i % len(TEXTS)],
                                              "intent": "order_status",
                                              "intent_confidence": 0.8},
             "bot": {"prompt_id": f"p{i % 4}", "fallback": i % 7 == 3},
             "customer": {"tier": "gold"}, "channel": "web",
             "context": {"agents_available": 2}} for i in range(1, n + 1)]


def brief_cost(pipeline: Pipeline, policy: Policy, conversation: list[Turn],
               rounds: int = 200) -> tuple[list[float], list[float], float]:
    """Seconds brief.remember takes per turn and brief.build per routed turn (each over
    `rounds` repeats of the conversation's turns), and the median bytes the brief adds
    to a routed answer's JSON."""
    state = ConversationState()
    routed = []
    for turn in conversation:
        before = state
        result = pipeline.evaluate("bench-brief", turn, state, policy)
        state = result.state
        routed.append((before, turn, result))
    params = policy.lexicons.params
    remembering, building, added = [], [], []
    for before, turn, result in routed:
        facts, decision = result.decision.facts, result.decision
        for _ in range(rounds):
            t0 = time.perf_counter()
            brief.remember(before.seen, turn, facts, decision.turn_index, params)
            remembering.append(time.perf_counter() - t0)
        if decision.decision != ROUTE or decision.handoff is None:
            continue
        for _ in range(rounds):
            t0 = time.perf_counter()
            brief.build(decision.reasons, facts, result.state.seen, turn)
            building.append(time.perf_counter() - t0)
        added.append(len(compact_json({"brief": decision.handoff.brief})) - 2 + 1)
    return remembering, building, statistics.median(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url")
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args()

    embedded = None
    url = args.redis_url
    if url is None:
        embedded = start_embedded(Path(tempfile.mkdtemp(prefix="escalator-bench-")))
        url = embedded.url
    store = StateStore.from_url(url, timeout_seconds=1.0)
    policy = load_policy(default_rules_dir())
    pipeline = Pipeline(PolicyHolder(policy), store)
    schema = TurnSchema()
    conversation = [schema.load(t) for t in turns(20)]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    cids: list[str] = []

    decide, score, rules = [], [], []
    for c in range(args.conversations):
        cid = f"{prefix}-{c}"
        cids.append(cid)
        state = ConversationState()
        for turn in conversation:
            t0 = time.perf_counter()
            scored = score_turn(turn, state.scoring, policy.lexicons)
            t1 = time.perf_counter()
            policy.engine.evaluate(scored.facts)
            t2 = time.perf_counter()
            pipeline.decide(cid, turn)
            t3 = time.perf_counter()
            state = state.evolve(turn_index=state.turn_index + 1, scoring=scored.memory)
            score.append(t1 - t0)
            rules.append(t2 - t1)
            decide.append(t3 - t2)

    remembering, building, added = brief_cost(pipeline, policy, conversation)

    raw = redis.Redis.from_url(url)
    pings = []
    for _ in range(2000):
        t0 = time.perf_counter()
        raw.ping()
        pings.append(time.perf_counter() - t0)
    # Every key a conversation may have (only the first exists in the current format).
    memory = raw.memory_usage(conversation_key(cids[0]), samples=0) or 0
    for cid in cids:
        raw.delete(conversation_key(cid))

    def us(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1e6:8.1f} us"

    print(f"turns measured        {len(decide)} ({args.conversations} conversations x 20)")
    print(f"score_turn            {us(score)}   (median per turn)")
    print(f"rules evaluate        {us(rules)}")
    print(f"Pipeline.decide       {us(decide)}   (load + score + rules + commit, Redis {url})")
    print(f"  p99                 {statistics.quantiles(decide, n=100)[98] * 1e6:8.1f} us")
    print(f"Redis PING            {us(pings)}   (one round trip, for scale)")
    print(f"decide / PING         {statistics.median(decide) / statistics.median(pings):8.1f} x")
    print(f"Redis MEMORY USAGE    {memory} bytes for one 20-turn conversation (all keys)")
    print(f"brief memory          {us(remembering)}   (brief.remember, every turn)")
    print(f"brief                 {us(building)}   (brief.build, every routed turn)")
    print(f"brief bytes           {added:8.0f}      (median JSON a routed answer gains)")
    store.close()
    policy.close()
    if embedded is not None:
        embedded.shutdown()


if __name__ == "__main__":
    main()
