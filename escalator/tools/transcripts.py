"""Transcripts: whole conversations decided turn by turn without touching any state store.

Dry runs (`POST /v1/evaluate`, `escalator evaluate`), rule tests and replays all go
through `decide_transcript`, which calls the service's own `Pipeline.evaluate` with the
state carried from turn to turn in memory: the same scoring and rules as a live turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from escalator.model import ConversationState, Decision, Turn
from escalator.pipeline import Pipeline
from escalator.policy import Policy, PolicyHolder
from escalator.turnschema import turn_schema, valid_id

DEFAULT_CONVERSATION_ID = "dry-run"
MAX_TURNS = 500


class TranscriptError(ValueError):
    """A transcript could not be read; `details` maps turn numbers to field errors."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


@dataclass(frozen=True)
class Transcript:
    """A conversation to decide: its id and its customer turns, in order."""

    conversation_id: str
    turns: tuple[Turn, ...]


def parse_turns(raw_turns: Any, *, max_context_keys: int | None = None) -> tuple[Turn, ...]:
    """Turn requests as the API takes them; a missing turn_id becomes t-<n>."""
    if not isinstance(raw_turns, list) or not raw_turns:
        raise TranscriptError("A transcript needs a non-empty list of turns.")
    if len(raw_turns) > MAX_TURNS:
        raise TranscriptError(f"A transcript has at most {MAX_TURNS} turns.")
    schema = turn_schema(max_context_keys) if max_context_keys is not None else turn_schema()
    turns: list[Turn] = []
    errors: dict[str, Any] = {}
    for number, raw in enumerate(raw_turns, 1):
        if not isinstance(raw, dict):
            errors[str(number)] = ["Each turn must be an object, as the turns API takes it."]
            continue
        try:
            turns.append(schema.load({"turn_id": f"t-{number}", **raw}))
        except ValidationError as exc:
            errors[str(number)] = exc.messages_dict
    if errors:
        raise TranscriptError("Some turns are not valid.", {"turns": errors})
    return tuple(turns)


def parse_transcript(raw: Any, *, max_context_keys: int | None = None) -> Transcript:
    """A transcript from JSON: a list of turns, or {"conversation_id": ..., "turns": [...]}."""
    if isinstance(raw, list):
        return Transcript(DEFAULT_CONVERSATION_ID, parse_turns(raw,
                                                               max_context_keys=max_context_keys))
    if not isinstance(raw, dict):
        raise TranscriptError("A transcript is a list of turns or an object with 'turns'.")
    unknown = set(raw) - {"conversation_id", "turns"}
    if unknown:
        raise TranscriptError("Unknown fields in the transcript.",
                              {name: ["Unknown field."] for name in sorted(unknown)})
    conversation_id = raw.get("conversation_id", DEFAULT_CONVERSATION_ID)
    if not isinstance(conversation_id, str) or not valid_id(conversation_id):
        raise TranscriptError("Invalid conversation id.",
                              {"conversation_id": ["must be 1-128 characters of "
                                                   "A-Z a-z 0-9 . _ : @ -"]})
    return Transcript(conversation_id, parse_turns(raw.get("turns"),
                                                   max_context_keys=max_context_keys))


def decide_turns(policy: Policy, conversation_id: str,
                 turns: Sequence[Turn]) -> Iterator[Decision]:
    """Each turn's decision, as the service would make it, with no state store involved."""
    pipeline = Pipeline(PolicyHolder(policy), None)
    state = ConversationState()
    for turn in turns:
        result = pipeline.evaluate(conversation_id, turn, state, policy)
        state = result.state
        yield result.decision


def decide_transcript(policy: Policy, transcript: Transcript) -> list[Decision]:
    """Every turn's decision of a transcript."""
    return list(decide_turns(policy, transcript.conversation_id, transcript.turns))
