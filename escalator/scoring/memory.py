"""What scoring remembers between turns (ConversationState.scoring), and its compact format.

Stored as JSON in Redis for every conversation, so the keys are short and every list is
bounded. It never holds customer text: only counts, decayed sums, the last few
sentiment scores, and one-way tags and signatures.

    key  meaning
    v    format version (1)
    n    turns scored so far
    ss   sentiment: decayed sum of turn scores     sw  ... and of weights
    sr   sentiment: last few turn scores (for the trend), oldest first
    ns   sentiment: negative streak
    fs   frustration: decayed sum of turn scores   fw  ... and of weights
    fe   frustration: the last scored message's evidence (log-odds; the fitted layer's
         "previous")
    lc   intent: low-confidence streak
    sb   bits per word hash in sg (a change of setting discards old signatures)
    sg   signatures of the last few signed customer messages (packed bottom-k MinHash)
    rp   repeats so far
    fk   fallback streak                           fb  fallbacks so far
    pr   tags of the last few bot prompt ids       br  bot repeats so far
    it   tags of the last few intents              ir  intent repeats so far
    os   oscillations so far (the bot back at the prompt before last: A B A)
    nu   turns the NLU did not understand so far   rj  rejections so far
    an   answers so far (the customer gave what the bot asked for)
    la   1 when the last turn was an answer        ra  re-asks so far (the same prompt
                                                        again right after an answer)
    ll   loop level: decayed sum of loop events (loop.score = 1 - exp(-ll))

pr holds the prompts in the order they were last sent (a prompt sent again moves to the
end), which is what both repeats and oscillations are read from. Keys added later (os,
nu, rj, an, la, ra, fe) read as 0 from a memory written before them.

Tags are 32-bit BLAKE2b hashes (6 base64 characters): a prompt id or intent can be 128
characters long, and only equality is ever needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VERSION = 1


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    return 0.0


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _numbers(raw: Mapping[str, Any], key: str) -> tuple[float, ...]:
    value = raw.get(key)
    if isinstance(value, list):
        return tuple(float(item) for item in value
                     if isinstance(item, int | float) and not isinstance(item, bool)
                     and -1.0 <= item <= 1.0)
    return ()


@dataclass(frozen=True)
class Memory:
    """The scoring memory of one conversation (see the module docstring for the keys)."""

    turns: int = 0
    sentiment_sum: float = 0.0
    sentiment_weight: float = 0.0
    sentiment_recent: tuple[float, ...] = ()
    negative_streak: int = 0
    frustration_sum: float = 0.0
    frustration_weight: float = 0.0
    frustration_last: float = 0.0
    low_confidence_streak: int = 0
    signature_bits: int = 0
    signatures: tuple[str, ...] = ()
    repeats: int = 0
    fallback_streak: int = 0
    fallbacks: int = 0
    prompts: tuple[str, ...] = ()
    bot_repeats: int = 0
    intents: tuple[str, ...] = ()
    intent_repeats: int = 0
    oscillations: int = 0
    not_understood: int = 0
    rejections: int = 0
    answers: int = 0
    last_answer: int = 0
    reasks: int = 0
    loop_level: float = 0.0

    def evolve(self, **changes: Any) -> Memory:
        """A copy with some fields changed (several per turn: must be cheap).

        dataclasses.replace() re-runs __init__ and costs ~5 us on this 25-field class;
        copying the instance dict costs well under 1 us. Field names are not checked
        here: callers are this package's own scorers, and mypy checks the types.
        """
        copy = object.__new__(Memory)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    @classmethod
    def _of(cls, **fields: Any) -> Memory:
        """A memory with these field values, built without __init__ (once per turn: see
        evolve; fields not given read as their defaults, which are class attributes)."""
        memory = object.__new__(cls)
        memory.__dict__.update(fields)
        return memory

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Memory:
        """Read a stored memory; missing or malformed keys (older versions) read as defaults."""
        if not isinstance(raw, Mapping):
            return cls()
        return cls._of(
            turns=_count(raw, "n"),
            sentiment_sum=_number(raw, "ss"),
            sentiment_weight=max(0.0, _number(raw, "sw")),
            sentiment_recent=_numbers(raw, "sr"),
            negative_streak=_count(raw, "ns"),
            frustration_sum=_number(raw, "fs"),
            frustration_weight=max(0.0, _number(raw, "fw")),
            # Bounded: evidence is a few units of log-odds; a stored value is never trusted.
            frustration_last=max(-50.0, min(50.0, _number(raw, "fe"))),
            low_confidence_streak=_count(raw, "lc"),
            signature_bits=_count(raw, "sb"),
            signatures=_strings(raw, "sg"),
            repeats=_count(raw, "rp"),
            fallback_streak=_count(raw, "fk"),
            fallbacks=_count(raw, "fb"),
            prompts=_strings(raw, "pr"),
            bot_repeats=_count(raw, "br"),
            intents=_strings(raw, "it"),
            intent_repeats=_count(raw, "ir"),
            oscillations=_count(raw, "os"),
            not_understood=_count(raw, "nu"),
            rejections=_count(raw, "rj"),
            answers=_count(raw, "an"),
            last_answer=min(1, _count(raw, "la")),
            reasks=_count(raw, "ra"),
            loop_level=max(0.0, _number(raw, "ll")),
        )

    def after_release(self) -> Memory:
        """The memory a conversation handed back to the bot starts again from: only the
        count of turns scored is kept.

        Every other field is history that rules read and that a person has since dealt
        with: the loop counters, streaks, signatures, prompt and intent tags and the loop
        level (kept, the same repeats and prompts re-fire the loop rules on the next turn),
        and the decayed sentiment and frustration means and the recent scores of the trend
        (kept, a calm turn right after the release still averages above
        sustained-frustration's threshold). Fields added later start again too, unless
        listed here.
        """
        return Memory(turns=self.turns)

    def to_json(self) -> dict[str, Any]:
        """The compact JSON form; floats rounded, empty values left out."""
        full: dict[str, Any] = {
            "v": VERSION,
            "n": self.turns,
            "ss": round(self.sentiment_sum, 4),
            "sw": round(self.sentiment_weight, 4),
            "sr": [round(x, 4) for x in self.sentiment_recent],
            "ns": self.negative_streak,
            "fs": round(self.frustration_sum, 4),
            "fw": round(self.frustration_weight, 4),
            "fe": round(self.frustration_last, 4),
            "lc": self.low_confidence_streak,
            "sb": self.signature_bits,
            "sg": list(self.signatures),
            "rp": self.repeats,
            "fk": self.fallback_streak,
            "fb": self.fallbacks,
            "pr": list(self.prompts),
            "br": self.bot_repeats,
            "it": list(self.intents),
            "ir": self.intent_repeats,
            "os": self.oscillations,
            "nu": self.not_understood,
            "rj": self.rejections,
            "an": self.answers,
            "la": self.last_answer,
            "ra": self.reasks,
            "ll": round(self.loop_level, 4),
        }
        return {key: value for key, value in full.items() if value or key == "v"}


def remember(recent: tuple[str, ...], item: str, keep: int) -> tuple[str, ...]:
    """`recent` with `item` moved or added to the end, keeping the last `keep`."""
    kept = (*(x for x in recent if x != item), item)
    return kept[-keep:]
