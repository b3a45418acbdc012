"""The quality benchmark's own arithmetic and parsers, on small hand-made inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.quality import quality
from escalator.config import default_rules_dir
from escalator.policy import load_policy


def test_frustration_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text(
        "----------  [1, 2]  ----------\n"
        "USER: my order never came {3,2,n}\n"
        "SUPP: Sorry to hear that! ^AB\n"
        "USER: thanks {0,,1}\n"
        "\n"
        "----------  [3]  ----------\n"
        "USER: hello {,,}\n", encoding="utf-8")
    assert quality.frustration_dialogues(path) == [
        [("my order never came", 2.5), ("thanks", 0.5)],
        [("hello", None)],
    ]


def test_breakdown_dialogue_becomes_intent_turns() -> None:
    dialogue = {"LUHF": "luhf", "utterances_annotations": [
        {"caller_name": "nlg", "intent": "intro", "entities": []},
        {"caller_name": "nlg", "intent": "ask_date", "entities": []},
        {"caller_name": "nlu", "intent": "inform", "entities": []},
        {"caller_name": "nlg", "intent": "did_not_understand", "entities": []},
        {"caller_name": "nlg", "intent": "ask_date", "entities": []},
        {"caller_name": "nlu", "intent": "noise", "entities": []},
        {"caller_name": "nlg", "intent": "ask_time", "entities": []},
        {"caller_name": "nlu", "intent": "inform", "entities": []},
    ]}
    turns = quality.breakdown_turns(dialogue)
    assert [(t.message.intent, t.bot.prompt_id, t.bot.fallback) for t in turns] == [
        ("inform", "ask_date", False), ("noise", "ask_date", True),
        ("inform", "ask_time", False)]
    assert all(t.message.text is None for t in turns)


def test_traffic_and_satisfaction_keep_only_customer_messages() -> None:
    conversation = json.loads('{"dialogContent": [{"client": "a", "message": "hi"}, '
                              '{"agent": "b", "message": "hello"}, '
                              '{"client1": "c", "message": "me too"}]}')
    assert quality.traffic_texts(conversation) == ["hi", "me too"]
    dialogue = {"turns": [{"sender": "customer", "utterances": ["a", "b"]},
                          {"sender": "helpdesk", "utterances": ["c"]}]}
    assert quality.customer_texts(dialogue) == ["a b"]


# --- the decision-level table: conversations that ended well or badly, routed or not -----


def test_routed_shares_turns_left_and_halves_from_hand_made_endings() -> None:
    endings = [
        quality.Ending(0, good=True, turns=8, routed_at=None, rule=None),
        quality.Ending(1, good=True, turns=9, routed_at=7, rule="conversation-looping"),
        quality.Ending(2, good=False, turns=10, routed_at=9, rule="conversation-looping"),
        quality.Ending(3, good=False, turns=12, routed_at=12, rule="bot-repeating-prompt"),
        quality.Ending(4, good=False, turns=6, routed_at=None, rule=None),
        quality.Ending(5, good=True, turns=7, routed_at=None, rule=None),
    ]
    table = quality.outcome_table(endings)
    whole = table["all"]
    assert (whole["good"]["conversations"], whole["good"]["routed"]) == (3, 1)
    assert whole["good"]["share"] == pytest.approx(1 / 3)
    assert whole["bad"]["share"] == pytest.approx(2 / 3)
    assert whole["ratio"] == pytest.approx(2.0)
    # Turns left after the first handoff: 10 - 9 and 12 - 12 (routed at the last turn).
    assert whole["bad"]["turns_left_median"] == 0.5
    assert whole["bad"]["rules"] == {"conversation-looping": 1, "bot-repeating-prompt": 1}
    # Even places (0, 2, 4) and odd ones (1, 3, 5) are counted apart.
    assert table["even"]["good"]["share"] == 0.0 and table["even"]["bad"]["share"] == 0.5
    assert table["even"]["ratio"] is None  # nothing to divide by
    assert table["odd"]["good"]["share"] == 0.5 and table["odd"]["bad"]["share"] == 1.0
    assert table["even"]["good"]["turns_left_median"] is None
    json.dumps(table, allow_nan=False)  # --json stays strict JSON


def betold_dialogue(label: str, exchanges: list[tuple[str, str]]) -> dict[str, object]:
    """A BETOLD-shaped dialogue: the bot's prompt, then the caller's intent, per exchange."""
    utterances = []
    for prompt, intent in exchanges:
        utterances.append({"caller_name": "nlg", "intent": prompt, "entities": []})
        utterances.append({"caller_name": "nlu", "intent": intent, "entities": []})
    return {"LUHF": label, "utterances_annotations": utterances}


SMOOTH = [("intro", "user_initial_request"), ("ask_name", "inform"), ("propose_date", "negate"),
          ("propose_date", "confirm"), ("confirm_date_scheduled", "confirm")]
STUCK = [("intro", "user_initial_request"), ("ask_name", "noise"), ("ask_phone", "other"),
         ("ask_name", "inconclusive"), ("ask_date", "noise"), ("ask_time", "inform")]


@pytest.fixture(scope="module")
def replayer() -> Iterator[quality.Replayer]:
    policy = load_policy(default_rules_dir())
    yield quality.Replayer(policy)
    policy.close()


def test_breakdown_replays_through_the_default_rules_and_reads_both_measures(
        tmp_path: Path, replayer: quality.Replayer) -> None:
    path = tmp_path / "betold.json"
    path.write_text(json.dumps([
        betold_dialogue("not_luhf", SMOOTH), betold_dialogue("not_luhf", SMOOTH[:4]),
        betold_dialogue("luhf", STUCK), betold_dialogue("luhf", STUCK[:5]),
    ]), encoding="utf-8")
    result = quality.measure_breakdown(replayer, path)
    assert result["dialogues"] == 4
    for measure in ("auc_last", "auc_largest", "baseline_auc", "fitted_auc_last",
                    "fitted_auc_largest"):
        assert set(result[measure]) == {"all", "even", "odd"}
    assert result["auc_last"]["all"] == 1.0
    assert result["fitted_auc_last"]["all"] == 1.0  # the stuck calls' breakdown.score is higher
    decisions = result["decisions"]["all"]
    assert decisions["good"]["share"] == 0.0
    assert decisions["bad"]["share"] == 1.0
    assert set(decisions["bad"]["rules"]) == {"conversation-looping"}
    # The stuck calls are handed over at their 5th turn: 1 and 0 turns before the end.
    assert decisions["bad"]["turns_left_median"] == 0.5


def test_the_decision_table_is_printed_per_data_set_and_half(
        tmp_path: Path, replayer: quality.Replayer) -> None:
    betold = tmp_path / "betold.json"
    betold.write_text(json.dumps([
        betold_dialogue("not_luhf", SMOOTH), betold_dialogue("not_luhf", SMOOTH),
        betold_dialogue("luhf", STUCK), betold_dialogue("luhf", SMOOTH),
    ]), encoding="utf-8")
    stc3 = tmp_path / "stc3.json"

    def helpdesk(text: str, accomplished: int) -> dict[str, object]:
        return {"turns": [{"sender": "customer", "utterances": [text]},
                          {"sender": "helpdesk", "utterances": ["We are sorry."]}],
                "annotations": [{"quality": {"A": accomplished, "S": accomplished, "E": 0}}]}

    stc3.write_text(json.dumps([
        helpdesk("Thanks, that solved it", 1),
        helpdesk("I want to talk to a real person right now", -1),
        helpdesk("Where can I find my invoice?", 1),
        helpdesk("Where can I find my invoice?", 0),  # neither: left out
        helpdesk("Where can I find my invoice?", -2),
    ]), encoding="utf-8")
    result = {"breakdown": quality.measure_breakdown(replayer, betold),
              "satisfaction": quality.measure_satisfaction(replayer, stc3)}
    stc = result["satisfaction"]["decisions"]
    assert (stc["all"]["good"]["conversations"], stc["all"]["bad"]["conversations"]) == (2, 2)
    assert stc["all"]["bad"]["rules"] == {"explicit-human-request": 1}

    lines = quality.halves_table(result)
    assert lines[0].split()[-3:] == ["all", "even", "odd"]
    well = [line for line in lines if "ended well (2): routed to a person" in line]
    badly = [line for line in lines if "ended badly (2): routed to a person" in line]
    assert len(well) == len(badly) == 2  # one row each for BETOLD and STC-3
    assert well[0].split()[-3:] == ["0.0%", "0.0%", "0.0%"]
    assert badly[0].split()[-3:] == ["50.0%", "100.0%", "0.0%"]
    assert badly[1].split()[-3:] == ["50.0%", "0.0%", "100.0%"]
    assert any(line.startswith("STC-3, text, ended badly, routed by: explicit-human-request 1")
               for line in lines)
