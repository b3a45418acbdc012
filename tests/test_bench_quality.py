"""The quality benchmark's own arithmetic and parsers, on small hand-made inputs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
import quality  # bench/ is not a package


def test_pearson_and_spearman_on_known_values() -> None:
    assert quality.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert quality.pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert quality.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # Monotone but not linear: Spearman is 1, Pearson is not.
    assert quality.spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert quality.pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 0.9
    assert math.isnan(quality.pearson([1, 1, 1], [1, 2, 3]))


def test_ranks_share_ties() -> None:
    assert quality.ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]


def test_roc_auc_counts_pairs_and_half_ties() -> None:
    assert quality.roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert quality.roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert quality.roc_auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    # One positive above one of two negatives, tied with the other: (1 + 0.5) / 2.
    assert quality.roc_auc([0.2, 0.5, 0.5], [False, False, True]) == 0.75


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
