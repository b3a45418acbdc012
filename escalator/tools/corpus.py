"""Convert the public data sets in ../shared/data into replay corpora (JSON lines).

    python bench/convert.py ../shared/data twcc > /tmp/twcc.jsonl
    escalator replay /tmp/twcc.jsonl --against path/to/old/rules

Sets: twcc (Twitter customer care, text), frustration (dfrustration dialogues, text),
satisfaction (STC-3 helpdesk dialogues, text) and breakdown (BETOLD phone-bot dialogues:
intents and prompt ids only). Only the customer's side becomes turns; labels are dropped.
The corpora are written where you ask, never into the project.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import quality  # bench/quality.py: the same parsers the quality benchmark uses


def _text_turns(texts: list[str]) -> list[dict[str, Any]]:
    return [{"turn_id": f"t-{i}", "message": {"text": text[:8000]}}
            for i, text in enumerate(texts, 1) if text.strip()]


def twcc(data: Path) -> Iterator[dict[str, Any]]:
    for n, conversation in enumerate(json.loads((data / quality.TRAFFIC).read_text())):
        session = conversation.get("dialogHeader", {}).get("sessionID") or f"{n}"
        yield {"conversation_id": f"twcc-{session}"[:128],
               "turns": _text_turns(quality.traffic_texts(conversation))}


def frustration(data: Path) -> Iterator[dict[str, Any]]:
    for n, dialogue in enumerate(quality.frustration_dialogues(data / quality.FRUSTRATION)):
        yield {"conversation_id": f"dfrustration-{n}",
               "turns": _text_turns([text for text, _ in dialogue])}


def satisfaction(data: Path) -> Iterator[dict[str, Any]]:
    for dialogue in json.loads((data / quality.SATISFACTION).read_text()):
        yield {"conversation_id": f"stc3-{dialogue['id']}",
               "turns": _text_turns(quality.customer_texts(dialogue))}


def breakdown(data: Path) -> Iterator[dict[str, Any]]:
    for n, dialogue in enumerate(json.loads((data / quality.BREAKDOWN).read_text())):
        turns = []
        for i, turn in enumerate(quality.breakdown_turns(dialogue), 1):
            bot: dict[str, Any] = {"fallback": turn.bot.fallback}
            if turn.bot.prompt_id:
                bot["prompt_id"] = turn.bot.prompt_id
            turns.append({"turn_id": f"t-{i}", "message": {"intent": turn.message.intent},
                          "bot": bot})
        yield {"conversation_id": f"betold-{n}", "turns": turns}


SETS = {"twcc": twcc, "frustration": frustration, "satisfaction": satisfaction,
        "breakdown": breakdown}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data folder (../shared/data)")
    parser.add_argument("set", choices=sorted(SETS))
    args = parser.parse_args()
    written = 0
    for transcript in SETS[args.set](args.data):
        if transcript["turns"]:
            sys.stdout.write(json.dumps(transcript, ensure_ascii=False) + "\n")
            written += 1
    print(f"{written} conversations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
