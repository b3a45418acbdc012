"""Conversation data sets converted into replay corpora (JSON lines), read as a stream.

    escalator corpus convert --from twcc path/to/twcc_dev.json -o twcc.jsonl
    escalator replay twcc.jsonl --against path/to/old/rules

Formats (`--from`), each read one conversation at a time, so memory stays flat however
long the file is:

- `twcc`: a JSON list of conversations as IBM's Twitter customer-care set writes them
  (`dialogContent`: messages, the agent's marked with an `agent` key);
- `dfrustration`: the text format of the dfrustration set (a line starting with `----`
  begins a dialogue, `USER:` lines are the customer's, ratings in `{a,b,c}` at the end);
- `stc3`: a JSON list of NTCIR STC-3 helpdesk dialogues (`turns` with a `sender`);
- `betold`: a JSON list of BETOLD phone-bot dialogues (intents and prompt ids, no text).

Only the customer's side becomes turns; labels and the agent's words are dropped. The
readers of one conversation (`traffic_texts`, `customer_texts`, `breakdown_turns`,
`dfrustration_dialogues`) are also what the quality benchmark replays, so a corpus and
the benchmark see the same turns.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from escalator.model import BotReply, Message, Turn
from escalator.tools.transcripts import TranscriptError, parse_transcript

MAX_TEXT = 8000  # the turns API's limit on a message's text

# Stable codes of what can be wrong with an input file (the message may change).
CODES = {
    "file_unreadable": "the input cannot be read: it does not exist, is a folder, or is "
                       "not UTF-8 text",
    "syntax": "the input is not written in the format's syntax: not JSON, or not a JSON "
              "list, for the JSON formats",
    "schema": "a conversation lacks what the format has (a key missing or holding the "
              "wrong kind of value), or would not make a valid transcript",
    "empty": "the input holds no conversation with a customer turn",
}


class CorpusInputError(ValueError):
    """An input file could not be converted: a stable code, where, and what to do."""

    def __init__(self, code: str, source: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(f"{source}: {message}")
        self.code = code
        self.source = source


# ------------------------------------------------------------------ one conversation


_RATINGS = re.compile(r"\{([^{}]*)\}\s*$")


def dfrustration_dialogues(lines: Iterable[str]) -> Iterator[list[tuple[str, float | None]]]:
    """Dialogues of (customer text, mean rating or None); support turns only separate them.
    Dialogues without a customer line are skipped."""
    dialogue: list[tuple[str, float | None]] | None = None
    for line in lines:
        if line.startswith("----"):
            if dialogue:
                yield dialogue
            dialogue = []
        elif line.startswith("USER:") and dialogue is not None:
            found = _RATINGS.search(line)
            text = line[5:found.start()] if found else line[5:]
            ratings = [float(v) for v in (found.group(1).split(",") if found else [])
                       if v.strip() not in ("", "n")]
            mean = statistics.fmean(ratings) if ratings else None
            dialogue.append((text.strip(), mean))
    if dialogue:
        yield dialogue


def breakdown_turns(dialogue: dict[str, Any]) -> list[Turn]:
    """A BETOLD dialogue as the turns a bot platform would send: intents and prompt ids."""
    turns: list[Turn] = []
    prompt: str | None = None
    fallback = False
    for utterance in dialogue["utterances_annotations"]:
        if utterance["caller_name"] == "nlg":
            prompt = utterance["intent"]
            # The bot often says "did not understand" and then asks again in a second
            # message: the reply the caller answers was still a fallback.
            fallback = fallback or prompt == "did_not_understand"
            continue
        turns.append(Turn(
            turn_id=f"t-{len(turns) + 1}",
            message=Message(intent=utterance["intent"]),
            bot=BotReply(prompt_id=prompt, fallback=fallback),
        ))
        fallback = False
    return turns


def customer_texts(dialogue: dict[str, Any]) -> list[str]:
    """The customer's messages of an STC-3 dialogue."""
    return [" ".join(turn["utterances"]) for turn in dialogue["turns"]
            if turn["sender"] == "customer"]


def traffic_texts(conversation: dict[str, Any]) -> list[str]:
    """The customer's messages of a twcc conversation (agents' replies left out)."""
    return [m["message"] for m in conversation["dialogContent"] if "agent" not in m]


# ------------------------------------------------------------------ the formats' shapes


class _Record(Schema):
    """What a conversation of a format must hold; keys the converter does not read are
    let through unchecked (data sets carry labels and metadata)."""

    class Meta:
        unknown = EXCLUDE


class _TwccMessage(_Record):
    message = fields.String(required=True)


class _TwccConversation(_Record):
    # The format's own (camelCase) names.
    dialogHeader = fields.Dict(load_default=dict)
    dialogContent = fields.List(fields.Nested(_TwccMessage), required=True)


class _Stc3Turn(_Record):
    sender = fields.String(required=True)
    utterances = fields.List(fields.String(), required=True)


class _Stc3Dialogue(_Record):
    id = fields.Raw(required=True)
    turns = fields.List(fields.Nested(_Stc3Turn), required=True)


class _BetoldUtterance(_Record):
    caller_name = fields.String(required=True)
    intent = fields.String(required=True)


class _BetoldDialogue(_Record):
    utterances_annotations = fields.List(fields.Nested(_BetoldUtterance), required=True)


# ------------------------------------------------------------------ conversion


def _text_turns(texts: list[str]) -> list[dict[str, Any]]:
    return [{"turn_id": f"t-{i}", "message": {"text": text[:MAX_TEXT]}}
            for i, text in enumerate(texts, 1) if text.strip()]


def _twcc(n: int, conversation: dict[str, Any]) -> dict[str, Any]:
    session = conversation.get("dialogHeader", {}).get("sessionID") or f"{n}"
    return {"conversation_id": f"twcc-{session}"[:128],
            "turns": _text_turns(traffic_texts(conversation))}


def _stc3(n: int, dialogue: dict[str, Any]) -> dict[str, Any]:
    return {"conversation_id": f"stc3-{dialogue['id']}",
            "turns": _text_turns(customer_texts(dialogue))}


def _betold(n: int, dialogue: dict[str, Any]) -> dict[str, Any]:
    turns = []
    for i, turn in enumerate(breakdown_turns(dialogue), 1):
        bot: dict[str, Any] = {"fallback": turn.bot.fallback}
        if turn.bot.prompt_id:
            bot["prompt_id"] = turn.bot.prompt_id
        turns.append({"turn_id": f"t-{i}", "message": {"intent": turn.message.intent},
                      "bot": bot})
    return {"conversation_id": f"betold-{n}", "turns": turns}


# The JSON formats: the shape of one conversation, and how it becomes a transcript.
_JSON_FORMATS: dict[str, tuple[Schema, Callable[[int, dict[str, Any]], dict[str, Any]]]] = {
    "twcc": (_TwccConversation(), _twcc),
    "stc3": (_Stc3Dialogue(), _stc3),
    "betold": (_BetoldDialogue(), _betold),
}
FORMATS = ("betold", "dfrustration", "stc3", "twcc")


def _json_list(stream: IO[bytes], source: str) -> Iterator[Any]:
    """The items of a JSON list, one at a time."""
    events = ijson.parse(stream, use_float=True)
    try:
        first = next(events, None)
        if first is None or first[1] != "start_array":
            raise CorpusInputError("syntax", source, "not a JSON list of conversations "
                                                     "(the file must start with '[')")
        yield from ijson.items(itertools.chain([first], events), "item")
    except ijson.JSONError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise CorpusInputError("syntax", source, f"not valid JSON ({detail})") from exc


def _dfrustration(stream: IO[bytes], source: str) -> Iterator[dict[str, Any]]:
    lines = (raw.decode("utf-8") for raw in stream)
    for n, dialogue in enumerate(dfrustration_dialogues(lines)):
        yield {"conversation_id": f"dfrustration-{n}",
               "turns": _text_turns([text for text, _ in dialogue])}


def _from_json(form: str, stream: IO[bytes], source: str) -> Iterator[dict[str, Any]]:
    schema, convert_one = _JSON_FORMATS[form]
    for n, item in enumerate(_json_list(stream, source)):
        try:
            schema.load(item)
        except ValidationError as exc:
            raise CorpusInputError(
                "schema", source, f"conversation {n + 1} is not a {form} conversation: "
                f"{json.dumps(exc.messages, sort_keys=True)}") from exc
        yield convert_one(n, item)


def convert(form: str, stream: IO[bytes], source: str) -> Iterator[dict[str, Any]]:
    """The transcripts of the conversations in STREAM (a file in format FORM), in order,
    each valid for `escalator replay`; conversations without a customer turn are left out.
    Raises CorpusInputError, naming SOURCE, on the first thing that is wrong."""
    if form not in FORMATS:
        raise ValueError(f"unknown corpus format {form!r}")
    read = _dfrustration(stream, source) if form == "dfrustration" \
        else _from_json(form, stream, source)
    found = False
    try:
        for transcript in read:
            if not transcript["turns"]:
                continue
            try:
                parse_transcript(transcript)
            except TranscriptError as exc:
                details = f" {json.dumps(exc.details)}" if exc.details else ""
                raise CorpusInputError("schema", source, f"conversation "
                                       f"{transcript['conversation_id']}: {exc}{details}"
                                       ) from exc
            found = True
            yield transcript
    except UnicodeDecodeError as exc:
        raise CorpusInputError("file_unreadable", source,
                               f"not UTF-8 text (byte {exc.start} of a line)") from exc
    if not found:
        raise CorpusInputError("empty", source, f"no conversation with a customer turn in "
                                                f"this {form} file")


def write_corpus(transcripts: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """Write each transcript as one JSON line; how many were written."""
    written = 0
    for transcript in transcripts:
        out.write(json.dumps(transcript, ensure_ascii=False) + "\n")
        written += 1
    return written
