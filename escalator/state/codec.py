"""How a conversation is stored: the one value per conversation, format 3.

The value is a Redis string: `3:<version>:` and then, raw-deflated with a preset dictionary
(_ZDICT), three or fewer lines of compact JSON:

1. `{"turns": [...], "state": {...}}`: the last 16 decided turns, newest first, each as
   `<signature of its id>.<signature of its content>` (turn_signature and
   Turn.content_signature; values written before content was signed have the first part
   only), and the fields of ConversationState that differ from a fresh one (the others
   decode to their defaults; a field of another shape makes the value unreadable);
2. and 3. the decision bodies of the last 2 turns, newest first, compact JSON as the API
   answered them.

`<version>` counts the writes of the conversation (1 after its first turn): the store
commits a new value only if the version is still the one its turn loaded. A retry of one
of the last 2 turns is answered with its stored decision; a retry of an older remembered
turn is refused; a remembered id sent with other content is refused too (see
escalator.state.store). Only numbers, labels and one-way signatures are stored: no
customer text, and turn ids only as signatures.

One deflate stream over the state and both decisions compresses far better than fields
compressed one by one: ~1.4 KB per 20-turn conversation under bench/perf/load.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from escalator.model import ConversationState, compact_json

_FRESH = ConversationState()
_STATE_FIELDS = tuple(ConversationState.__dataclass_fields__)


def turn_signature(turn_id: str) -> str:
    """The one-way signature a turn id is remembered by (64 bits: collisions among the 16
    remembered ids of a conversation are ~1e-17 likely)."""
    return hashlib.blake2b(turn_id.encode(), digest_size=8).hexdigest()


_FORMAT_3 = re.compile(rb"3:(\d+):")
# Preset dictionary of format 3: what deflate may refer to without having seen it in the value.
# A decision body is ~1.2 KB of JSON, most of it vocabulary every body shares, which deflating
# one value at a time cannot exploit. In order, the later parts nearest (cheapest to refer
# to): the fact names and phrases many bodies share and the skeleton every body has; what a
# conversation with a person repeats every turn (the sticky handoff's reason and its English
# message, ~80 bytes less per decision); the scorers' memory and the skeleton of the first
# line. Frozen: stored values need it to inflate. To change it, add a format 4 and keep this
# one (so it still says handoff_priority, handoff_urgency's old name).
_ZDICT = (
    b'"frustration.cues":["repetition","waiting","threat_to_leave","public_complaint",'
    b'"profanity","insult","shouting","exclamation","sarcasm","broken_promise"],'
    b'"complexity.topics":["legal","fraud","bereavement","vulnerability","safety",'
    b'"cancellation","complaint"],"context.agents_available":3,"context.business_hours":true,'
    b'"customer.tier":"gold","customer.segment":"consumer","channel":"web","channel":"app",'
    b'"channel":"voice","channel":"sms","message.language":"en","message.intent":"order_status",'
    b'"conversation.minutes":0.0,"conversation.escalated":false,"requested_human":false,'
    b'"requested_human":true,"intent.low_confidence_streak":0,"intent.confidence":0.,'
    b'"loop.intent_repeats":0,"loop.bot_repeats":0,"loop.fallbacks":0,"loop.fallback_streak":0,'
    b'"loop.repeats":0,"loop.score":0.,"complexity.issues":1,"complexity.questions":0,'
    b'"complexity.score":0.,"frustration.mean":0.,"frustration.score":0.,'
    b'"sentiment.negative_streak":0,"sentiment.trend":-0.,"sentiment.mean":-0.,'
    b'"sentiment.score":-0.,"message.chars":0,"turn_index":1,'
    b'"description":"The customer asked for a person."'
    b'"description":"The customer has been frustrated for several turns."'
    b'"description":"The customer has repeated the same request 3 times."'
    b'"customer_message":"Of course. I\'m connecting you with a member of our team now."},'
    b'"reasons":[],"reasons":[{"rule":"explicit-human-request","priority":100,'
    b'"decision":"route_to_human","description":"The customer'
    b'{"decision":"keep_with_bot","decision_id":"","conversation_id":"","turn_id":"t-000'
    b'","turn_index":1,"handoff":null,"handoff":{"queue":"support","priority":"high",'
    b'"priority":"normal","customer_message":"I\'m connecting you with a member of our team now."'
    b'},"reasons":[{"rule":"","priority":80,"decision":"route_to_human","description":"The '
    b'customer has"}],"scores":{"sentiment":-0.,"frustration":0.,"complexity":0.,"loop":0.},'
    b'"facts":{"turn_index":1,"message.chars":,"message.language":"en","sentiment.score":-0.'
    b'},"ruleset":{"name":"default","version":"2026.","digest":"sha256:'
    b'"},"degraded":false,"replayed":false}'
    b'"reasons":[{"rule":"handoff-in-progress","priority":1000,"decision":"route_to_human",'
    b'"description":"The conversation was handed to a person at turn 1 and stays with them '
    b'until an agent releases it."},'
    b'"customer_message":"You\'re in the queue for a member of our team; they\'ll be with you '
    b'as soon as they can."}'
    b'"scoring":{"v":1,"n":1,"ss":0.,"sw":1.,"sr":[0.0,-0.],"fs":0.,"fw":1.,"lc":1,"sb":16,'
    b'"sg":[""],"rp":1,"fb":1,"pr":[""],"br":1,"it":[""],"ir":1,"os":1,"nu":1,"rj":1,"ll":0.}'
    b'{"turns":["","",""],"state":{"turn_index":1,"started_at":17,"updated_at":17,'
    b'"escalated":true,"escalated_turn":1,"handoff_queue":"support",'
    b'"handoff_priority":"normal",'
)


def pack_decision(decision: Mapping[str, Any]) -> bytes:
    """A decision body as it is stored: compact JSON on one line."""
    # JSON escapes control characters in strings, so it never holds a raw newline.
    return compact_json(decision)


def pack_conversation(version: int, state: ConversationState, turns: Sequence[str],
                      decisions: Sequence[bytes]) -> bytes:
    """The stored value (format 3) of a conversation: version, state, turn signatures and
    stored decisions (newest first)."""
    changed = {name: value for name in _STATE_FIELDS
               if (value := getattr(state, name)) != getattr(_FRESH, name)}
    first = compact_json({"turns": list(turns), "state": changed})
    # Raw deflate (negative wbits): no zlib header or checksum. Level 6: level 9 saves
    # nothing measurable on values this small and costs more per turn.
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zdict=_ZDICT)
    body = deflate.compress(b"\n".join((first, *decisions))) + deflate.flush()
    return b"3:%d:" % version + body


@dataclass(frozen=True)
class Stored:
    """A conversation as stored."""

    version: int
    state: ConversationState
    turns: tuple[str, ...]  # signatures of the remembered turn ids, newest first
    decisions: tuple[bytes, ...]  # the stored decisions of the last turns, newest first


def unpack_conversation(value: bytes) -> Stored:
    """Inverse of pack_conversation (ValueError or zlib.error if value is not one)."""
    header = _FORMAT_3.match(value)
    if header is None:
        raise ValueError("not a stored conversation (format 3)")
    inflate = zlib.decompressobj(-15, zdict=_ZDICT)
    first, *decisions = (inflate.decompress(value[header.end():]) + inflate.flush()).split(b"\n")
    head = json.loads(first)
    turns = head["turns"]
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise TypeError("the remembered turns are not a list of signatures")
    return Stored(int(header.group(1)), checked_state(head["state"]), tuple(turns),
                  tuple(decisions))


def _count_or_none(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _time_or_none(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def _label_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= 64)


# What each stored state field may hold: a value of another shape (a hand-edited or foreign
# value that happens to be valid JSON) is refused here rather than failing a turn later.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "turn_index": lambda value: type(value) is int and value >= 0,
    "started_at": _time_or_none,
    "updated_at": _time_or_none,
    "escalated": lambda value: type(value) is bool,
    "escalated_turn": _count_or_none,
    "handoff_queue": _label_or_none,
    "handoff_urgency": _label_or_none,
    "escalations": lambda value: type(value) is int and value >= 0,
    "scoring": lambda value: isinstance(value, dict),
    "seen": lambda value: isinstance(value, dict),
    "decided": lambda value: isinstance(value, list) and all(
        isinstance(entry, list) and len(entry) == 4 for entry in value),
}


# What handoff_urgency was called before it was told apart from a rule's priority: values
# stored then are read under the new name.
_OLD_URGENCY = "handoff_priority"


def _renamed_urgency(fields: dict[str, Any]) -> dict[str, Any]:
    renamed = {name: value for name, value in fields.items() if name != _OLD_URGENCY}
    renamed.setdefault("handoff_urgency", fields[_OLD_URGENCY])
    return renamed


def checked_state(fields: Any) -> ConversationState:
    """A ConversationState from stored fields (TypeError if one has the wrong shape); unknown
    fields are ignored, so a newer version's state still loads."""
    if not isinstance(fields, dict):
        raise TypeError("the state is not an object")
    if _OLD_URGENCY in fields:
        fields = _renamed_urgency(fields)
    known = {name: value for name, value in fields.items() if name in _FIELD_CHECKS}
    for name, value in known.items():
        if not _FIELD_CHECKS[name](value):
            raise TypeError(f"the state field {name!r} has the wrong type")
    if "decided" in known:
        known["decided"] = tuple(known["decided"])
    return ConversationState(**known)


def unreadable_reason(exc: Exception) -> str:
    """A bounded label for why a stored value could not be decoded (a metric label)."""
    if isinstance(exc, zlib.error):
        return "deflate"
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "json"
    if isinstance(exc, KeyError | TypeError | AttributeError | IndexError):
        return "fields"
    return "format"


def unpack_decision(stored: bytes) -> dict[str, Any]:
    """A decision body from its stored form, pack_decision's (what a retry is answered with)."""
    decision = json.loads(stored)
    if not isinstance(decision, dict):
        raise ValueError("a stored decision is not a JSON object")
    return decision


def find_turn(turns: Sequence[str], turn_id: str) -> tuple[int | None, str | None]:
    """Where a turn id is among the remembered turns (None: not there), and the signature
    of the content it was decided with (None: stored before content was signed)."""
    signature = turn_signature(turn_id)
    for position, entry in enumerate(turns):
        found, _, content = entry.partition(".")
        if found == signature:
            return position, content or None
    return None, None


def remembered_turn(turn_id: str, content: str | None) -> str:
    """How a decided turn is remembered: its id's signature, and its content's if given."""
    if content is None:
        return turn_signature(turn_id)
    _check_content(content)
    return f"{turn_signature(turn_id)}.{content}"


def claimed_version(value: bytes) -> int:
    """The version the header of a stored value claims (0 if it has none)."""
    header = _FORMAT_3.match(value)
    return int(header.group(1)) if header else 0


_CONTENT_SIGNATURE = re.compile(r"[0-9a-f]{1,32}")


def _check_content(content: str) -> None:
    if not _CONTENT_SIGNATURE.fullmatch(content):
        raise ValueError(f"a content signature is up to 32 lower-case hex digits: {content!r}")
