"""`escalator corpus convert`: the shipped example converts into a corpus that replays, each
format keeps only the customer's side, and a bad input is refused with a stable code and
changes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from escalator.cli import corpus as corpus_cli
from escalator.cli import main
from escalator.tools import corpus
from escalator.tools.transcripts import parse_transcript

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "corpus" / "twcc_chats.json"


def convert(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["corpus", "convert", *args], input=stdin)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_example_becomes_the_customers_turns_of_each_chat(tmp_path: Path) -> None:
    out = tmp_path / "chats.jsonl"
    result = convert("--from", "twcc", str(EXAMPLE), "-o", str(out))
    assert result.exit_code == 0, result.output
    transcripts = lines(out.read_text(encoding="utf-8"))
    raw = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    # chat-104 holds only the agent's message: no customer turn, so no transcript.
    assert [t["conversation_id"] for t in transcripts] == [
        "twcc-chat-101", "twcc-chat-102", "twcc-chat-103", "twcc-chat-105"]
    for transcript in transcripts:
        session = transcript["conversation_id"].removeprefix("twcc-")
        chat = next(c for c in raw if c["dialogHeader"]["sessionID"] == session)
        customer = [m["message"] for m in chat["dialogContent"] if "client" in m]
        assert [t["message"]["text"] for t in transcript["turns"]] == customer
        assert [t["turn_id"] for t in transcript["turns"]] == [
            f"t-{i}" for i in range(1, len(customer) + 1)]
        parse_transcript(transcript)  # what escalator replay reads
    assert "the app keeps logging me out" in out.read_text(encoding="utf-8")
    assert "update the app" not in out.read_text(encoding="utf-8")  # the agent's words
    assert "4 conversations written" in result.output


def test_the_converted_example_replays(tmp_path: Path) -> None:
    out = tmp_path / "chats.jsonl"
    assert convert("--from", "twcc", str(EXAMPLE), "-o", str(out)).exit_code == 0
    replayed = CliRunner().invoke(main, ["replay", str(out), "--json"])
    assert replayed.exit_code == 0, replayed.output
    summary = json.loads(replayed.output[replayed.output.index("{"):])
    assert summary["conversations"] == 4


def test_standard_input_and_output_and_the_text_format() -> None:
    text = ("--------------------  [1, 2]  --------------------\n"
            "USER: my parcel never came {3,2,n}\n"
            "SUPP: Sorry to hear that! ^AB\n"
            "USER: thanks {0,,1}\n"
            "--------------------  [3]  --------------------\n"
            "SUPP: Anything else? ^CD\n"
            "--------------------  [4]  --------------------\n"
            "USER: hello\n")
    result = convert("--from", "dfrustration", "-", stdin=text.encode())
    assert result.exit_code == 0, result.output
    # The ratings are labels: dropped. The dialogue with no customer line is skipped.
    assert lines(result.stdout) == [
        {"conversation_id": "dfrustration-0",
         "turns": [{"turn_id": "t-1", "message": {"text": "my parcel never came"}},
                   {"turn_id": "t-2", "message": {"text": "thanks"}}]},
        {"conversation_id": "dfrustration-1",
         "turns": [{"turn_id": "t-1", "message": {"text": "hello"}}]},
    ]


def test_stc3_keeps_the_customer_and_betold_the_intents_and_prompts() -> None:
    stc3 = [{"id": "d7", "annotations": [{"quality": {"A": 1, "S": 1, "E": 0}}],
             "turns": [{"sender": "customer", "utterances": ["My phone", "will not charge."]},
                       {"sender": "helpdesk", "utterances": ["Try another cable."]},
                       {"sender": "customer", "utterances": ["Did that already."]}]}]
    out = lines(convert("--from", "stc3", "-", stdin=json.dumps(stc3).encode()).stdout)
    assert out == [{"conversation_id": "stc3-d7", "turns": [
        {"turn_id": "t-1", "message": {"text": "My phone will not charge."}},
        {"turn_id": "t-2", "message": {"text": "Did that already."}}]}]

    betold = [{"LUHF": "luhf", "utterances_annotations": [
        {"caller_name": "nlg", "intent": "ask_date", "entities": []},
        {"caller_name": "nlu", "intent": "inform", "entities": []},
        {"caller_name": "nlg", "intent": "did_not_understand", "entities": []},
        {"caller_name": "nlg", "intent": "ask_date", "entities": []},
        {"caller_name": "nlu", "intent": "noise", "entities": []}]}]
    out = lines(convert("--from", "betold", "-", stdin=json.dumps(betold).encode()).stdout)
    assert out == [{"conversation_id": "betold-0", "turns": [
        {"turn_id": "t-1", "message": {"intent": "inform"},
         "bot": {"fallback": False, "prompt_id": "ask_date"}},
        {"turn_id": "t-2", "message": {"intent": "noise"},
         "bot": {"fallback": True, "prompt_id": "ask_date"}}]}]
    assert "luhf" not in json.dumps(out)  # the label stays behind


BAD_INPUTS = [
    ("not JSON", "twcc", b'[{"dialogContent": [', "syntax"),
    ("an object, not a list", "twcc", b'{"dialogContent": []}', "syntax"),
    ("a conversation without its messages", "twcc",
     b'[{"dialogContent": [{"client": "a", "message": "hi"}]}, {"dialogHeader": {}}]', "schema"),
    ("a message that is not text", "twcc", b'[{"dialogContent": [{"message": 7}]}]', "schema"),
    ("an STC-3 turn without a sender", "stc3",
     b'[{"id": 1, "turns": [{"utterances": ["hi"]}]}]', "schema"),
    ("an empty list", "betold", b"[]", "empty"),
    ("a JSON file read as the text format", "dfrustration", b'[{"turns": []}]', "empty"),
    ("text that is not UTF-8", "dfrustration", b"----\nUSER: caf\xe9 {1,1,1}\n",
     "file_unreadable"),
]


@pytest.mark.parametrize(("form", "content", "code"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_input_names_its_code_and_leaves_the_output_alone(
        tmp_path: Path, form: str, content: bytes, code: str) -> None:
    source = tmp_path / "input"
    source.write_bytes(content)
    out = tmp_path / "corpus.jsonl"
    out.write_text("the corpus from before\n", encoding="utf-8")
    result = convert("--from", form, str(source), "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error[{code}]: {source}: ")
    assert "Traceback" not in result.output
    assert out.read_text(encoding="utf-8") == "the corpus from before\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "input"]


def test_a_schema_error_says_which_conversation_and_what_is_missing(tmp_path: Path) -> None:
    source = tmp_path / "chats.json"
    source.write_text(json.dumps([{"dialogContent": [{"client": "a", "message": "hi"}]},
                                  {"dialogContent": [{"client": "b"}]}]), encoding="utf-8")
    result = convert("--from", "twcc", str(source))
    assert result.exit_code == 1
    assert "error[schema]" in result.stderr
    assert "conversation 2 is not a twcc conversation" in result.stderr
    assert "message" in result.stderr and "Missing data" in result.stderr


def test_a_missing_input_is_unreadable(tmp_path: Path) -> None:
    result = convert("--from", "twcc", str(tmp_path / "nothing.json"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error[file_unreadable]: ")


def test_every_code_is_documented_for_policy_owners() -> None:
    page = (ROOT / "docs" / "policy" / "corpus.md").read_text(encoding="utf-8")
    for code in corpus.CODES:
        assert f"`{code}`" in page, code
    for form in corpus.FORMATS:
        assert f"`{form}`" in page, form


def test_the_command_offers_the_formats_the_converter_reads() -> None:
    assert corpus_cli.FORMATS == corpus.FORMATS


class CountingStream(io.RawIOBase):
    """A file that records how far it has been read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.position:self.position + len(buffer)]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("form", ["twcc", "dfrustration"])
def test_conversations_come_out_before_the_input_is_read_to_its_end(form: str) -> None:
    # About 4 MB: the first transcript must come out after reading only the start of it.
    if form == "twcc":
        chat = {"dialogContent": [{"client": "c", "message": "where is my parcel? " * 10}]}
        data = json.dumps([chat] * 20_000).encode()
    else:
        data = ("----\nUSER: where is my parcel? {1,2,1}\n" * 100_000).encode()
    stream = CountingStream(data)
    transcripts = corpus.convert(form, io.BufferedReader(stream), "big")
    first = next(transcripts)
    assert first["turns"][0]["message"]["text"].startswith("where is my parcel?")
    assert stream.position < len(data) / 10
    assert sum(1 for _ in transcripts) + 1 == (20_000 if form == "twcc" else 100_000)
    assert stream.position == len(data)


def walkthrough() -> list[tuple[str, list[str]]]:
    """(command, the lines shown after it) of docs/policy/corpus.md's walkthrough."""
    page = (ROOT / "docs" / "policy" / "corpus.md").read_text(encoding="utf-8")
    section = page[page.index("## Walkthrough"):]
    block = section[section.index("```text\n") + 8:]
    block = block[:block.index("\n```\n")]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_walkthrough_shows_what_its_commands_print(tmp_path: Path) -> None:
    (convert_line, converted), (replay_line, replayed) = walkthrough()
    args = convert_line.split()[1:]
    assert args[:4] == ["corpus", "convert", "--from", "twcc"]
    assert (ROOT / args[4]).is_file()
    out = tmp_path / "chats.jsonl"
    result = CliRunner().invoke(main, [*args[:4], str(ROOT / args[4]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert converted == [result.stderr.strip().replace(str(out), args[-1])]
    assert replay_line == f"escalator replay {args[-1]}"
    shown = CliRunner().invoke(main, ["replay", str(out)]).stdout.splitlines()
    assert replayed[-1] == "  ..."
    assert shown[:len(replayed) - 1] == replayed[:-1]
