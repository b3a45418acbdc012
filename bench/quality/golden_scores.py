"""Every fact and memory score_turn produces on the data sets, as one digest.

    python -m bench.quality.golden_scores ../shared/data [--lexicons rules/lexicons] \
        [--json out.json]

A check for changes that must not change results (speed-ups, refactors): run it before
and after, and the digests must be equal. Every customer message of the four data sets
(frustration, traffic, satisfaction text turns, BETOLD intent turns) is scored as its
conversation, with the memory of each turn carried into the next, and the facts and
memory of every turn are written as JSON: floats as repr() (exact), keys sorted. The
data stay where they are; --json writes the full record for a diff when digests differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.quality import quality
from escalator.config import default_rules_dir
from escalator.model import Turn
from escalator.scoring import Lexicons, load_lexicons, score_turn, sentiment
from escalator.tools.corpus import breakdown_turns, customer_texts, traffic_texts


def conversations(data: Path) -> Iterator[tuple[str, list[Turn]]]:
    """(name, turns) of every conversation of the four data sets, parsed as quality.py does."""
    for n, dialogue in enumerate(quality.frustration_dialogues(data / quality.FRUSTRATION)):
        yield f"f{n}", [quality.text_turn(i, t) for i, (t, _) in enumerate(dialogue, 1)]
    for n, conversation in enumerate(
            json.loads((data / quality.TRAFFIC).read_text(encoding="utf-8"))):
        texts = traffic_texts(conversation)
        yield f"w{n}", [quality.text_turn(i, t) for i, t in enumerate(texts, 1)]
    for n, dialogue in enumerate(
            json.loads((data / quality.SATISFACTION).read_text(encoding="utf-8"))):
        texts = customer_texts(dialogue)
        yield f"s{n}", [quality.text_turn(i, t) for i, t in enumerate(texts, 1)]
    for n, dialogue in enumerate(
            json.loads((data / quality.BREAKDOWN).read_text(encoding="utf-8"))):
        yield f"b{n}", breakdown_turns(dialogue)


def records(data: Path, lexicons: Lexicons) -> Iterator[dict[str, Any]]:
    """One record per turn: conversation, turn number, scores, facts and memory.

    The unrounded VADER compound of each text is recorded too (facts and memory round
    to 4 decimals), so a change to the sentiment path must keep VADER's exact value.
    """
    for name, turns in conversations(data):
        memory: dict[str, Any] = {}
        for index, turn in enumerate(turns, 1):
            scored = score_turn(turn, memory, lexicons)
            memory = scored.memory
            text = turn.message.text
            yield {"c": name, "t": index, "scores": asdict(scored.scores),
                   "facts": scored.facts, "memory": memory,
                   "compound": sentiment.compound(text, lexicons) if text else None}


def _exact(value: Any) -> Any:
    """JSON-able with floats as their repr (json would too; this makes it explicit)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of the data sets (../shared/data)")
    parser.add_argument("--lexicons", type=Path, default=None,
                        help="lexicon folder (default: the packaged rules/lexicons)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every record, one JSON line per turn")
    args = parser.parse_args(argv)
    lexicons = load_lexicons(args.lexicons or default_rules_dir() / "lexicons")
    digest = hashlib.sha256()
    count = 0
    out = args.json.open("w", encoding="utf-8") if args.json else None
    try:
        for record in records(args.data, lexicons):
            line = json.dumps(_exact(record), sort_keys=True, ensure_ascii=True)
            digest.update(line.encode("ascii") + b"\n")
            count += 1
            if out is not None:
                out.write(line + "\n")
    finally:
        if out is not None:
            out.close()
    print(f"{count} turns  sha256 {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
