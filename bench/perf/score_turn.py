"""Per-turn cost of score_turn; a timing script, not a test.

Run: python -m bench.perf.score_turn
"""

from __future__ import annotations

import statistics
import time

from bench.common.servers import ROOT
from escalator.model import BotReply, Message, Turn
from escalator.scoring import load_lexicons, score_turn

LEXICONS = ROOT / "rules" / "lexicons"
MESSAGES = {
    "20 words, no VADER word": "I already told you twice, the parcel never came and nobody "
                               "answers my emails so where is my refund now?",
    "20 words, VADER words": "This is terrible service, I am really angry that my order is "
                             "late again and nobody helps me at all!",
    # Not ASCII: these pay for normalising the text (NFKC, format characters, look-alikes).
    "20 words, Spanish accents": "Ya te lo dije dos veces, el paquete nunca llegó y nadie "
                                 "contesta mis correos, ¿dónde está mi reembolso ahora?",
    "20 words, Russian": "Я уже дважды говорил, посылка так и не пришла, и никто не "
                         "отвечает на мои письма, где мой возврат?",
    "20 words, look-alike letter": "I already told you twice, the parcel never came so I "
                                   "want to talk to a \u04bbuman agent right now please",
    "intent only": None,
}


def main() -> None:
    lexicons = load_lexicons(LEXICONS)
    # A memory as it looks after 19 turns, so repeat checks compare against full history.
    memory: dict[str, object] = {}
    for i in range(19):
        turn = Turn(f"w{i}", Message(text=f"message number {i} about order {i * 7}",
                                     intent="order_status"), BotReply(f"p{i % 5}", i % 3 == 0))
        memory = score_turn(turn, memory, lexicons).memory
    for name, text in MESSAGES.items():
        turn = Turn("t", Message(text=text, intent="order_status", intent_confidence=0.4),
                    BotReply("ask_order_number", True))
        runs = []
        for _ in range(7):
            count = 2000
            start = time.perf_counter()
            for _ in range(count):
                score_turn(turn, memory, lexicons)
            runs.append((time.perf_counter() - start) / count * 1e6)
        print(f"{name:28s} median {statistics.median(runs):6.1f} us  best {min(runs):6.1f} us")


if __name__ == "__main__":
    main()
