"""Text handling the scorers share: words, phrase matching, signatures, language letters.

The expected values were produced by the implementation before the speed-ups of
November 2026; signatures in particular must not change, or stored memories would stop
recognising repeats.
"""

from __future__ import annotations

from escalator.scoring.text import (
    Pattern,
    PhraseIndex,
    detect_language,
    fold,
    pack_signature,
    pattern_words,
    short_hash,
    signature,
    similarity,
    split_words,
    unpack_signature,
    word_hash,
)


def test_words_clauses_sentences_and_questions() -> None:
    words = split_words(fold("Where is it?? I paid. Ça coûte, trop!\nok"))
    assert words.words == ("where", "is", "it", "i", "paid", "ca", "coute", "trop", "ok")
    assert words.clauses == (0, 0, 0, 1, 1, 2, 2, 3, 4)
    assert words.sentences == (0, 0, 0, 1, 1, 2, 2, 2, 3)
    assert words.sentence_starts == (0, 3, 5, 8)
    assert words.questions == frozenset({0})


def test_words_of_any_script_and_no_words() -> None:
    assert split_words(fold("Größe: 42 — 日本語_テスト")).words == (
        "grosse", "42", "日本語", "テスト")
    empty = split_words("?! ...")
    assert empty.words == () and empty.sentence_starts == () and empty.questions == {0}


def test_phrases_match_plain_numbers_prefixes_and_overlaps_in_word_order() -> None:
    phrases = [("refund", "topic", "money"), ("money back", "topic", "money"),
               ("for # days", "cue", "waiting"), ("# days", "cue", "days"),
               ("cancel*", "topic", "cancel"), ("talk to", "ask", ""),
               ("talk to a human", "request", ""), ("not cancel*", "cue", "x"),
               ("refund", "topic", "money")]  # a duplicate is indexed once
    index = PhraseIndex(Pattern(pattern_words(p), kind, label) for p, kind, label in phrases)
    text = ("I want my money back, waited for 12 days to talk to a human, cancelling "
            "not cancelled refund")
    found = [(m.start, m.end, m.kind, m.label)
             for m in index.find(split_words(fold(text)).words)]
    assert found == [(3, 5, "topic", "money"), (6, 9, "cue", "waiting"),
                     (7, 9, "cue", "days"), (10, 12, "ask", ""), (10, 14, "request", ""),
                     (14, 15, "topic", "cancel"), (15, 17, "cue", "x"),
                     (16, 17, "topic", "cancel"), (17, 18, "topic", "money")]
    assert index.size == 8
    # A phrase running past the last word, a number that is not one, a list of words.
    assert index.find(["talk"]) == []
    assert index.find(["for", "twelve", "days"]) == []
    assert [m.label for m in index.find(["for", "3", "days"])] == ["waiting", "days"]


def test_signatures_keep_their_values() -> None:
    assert [word_hash(w, 16) for w in ("refund", "parcel", "pésimo")] == [29098, 11245, 29421]
    assert word_hash("refund", 32) == 1907006344
    sketch = signature(["refund", "parcel", "never", "came", "refund"], 8, 16)
    assert sketch == (8470, 11245, 29098, 36124)
    assert pack_signature(sketch, 16) == "IRYr7XGqjRw"
    assert unpack_signature("IRYr7XGqjRw", 16) == sketch
    assert unpack_signature(pack_signature((1, 2**32 - 1), 32), 32) == (1, 2**32 - 1)
    assert short_hash("ask_order") == "fz_dLA"


def test_similarity_of_sketches() -> None:
    assert similarity((1, 2, 3, 4), (3, 4, 5, 6), 4) == 0.5  # union cut to the 4 smallest
    assert similarity((1, 2, 3, 4), (3, 4, 5, 6), 8) == 2 / 6
    assert similarity((1, 2), (5, 6), 8) == 0.0
    assert similarity((), (5, 6), 8) == 0.0


def test_typical_letters_vote_for_their_language() -> None:
    letters = {"es": frozenset("ñ¿¡"), "de": frozenset("äöüß")}
    # One vote per language however many of its letters appear.
    assert detect_language(["manana"], "¿mañana?", {}, letters, 1, 1) == "es"
    assert detect_language(["manana"], "¿mañana?", {}, letters, 2, 1) == "und"
    assert detect_language([], "schön", {}, letters, 1, 1) == "de"
    assert detect_language([], "¿schön?", {}, letters, 1, 1) == "und"  # a tie
    assert detect_language([], "plain text", {}, letters, 1, 0) == "und"
