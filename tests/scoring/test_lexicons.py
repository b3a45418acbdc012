"""Loading the vocabularies: the shipped ones load, and broken ones are refused with their lines."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from escalator.errors import PolicyError
from escalator.scoring import Lexicons, ScoredTurn, load_lexicons

LEXICONS_DIR = Path(__file__).resolve().parents[2] / "rules" / "lexicons"
FIVE = {"en", "es", "de", "fr", "pt"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped vocabularies to break."""
    target = tmp_path / "lexicons"
    shutil.copytree(LEXICONS_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_number(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def refused(folder: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_lexicons(folder)
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_vocabularies_cover_five_languages(lexicons: Lexicons) -> None:
    assert set(lexicons.languages) >= FIVE
    import yaml

    requests = yaml.safe_load((LEXICONS_DIR / "requests.yaml").read_text())
    assert set(requests["languages"]) >= FIVE
    cues = yaml.safe_load((LEXICONS_DIR / "frustration.yaml").read_text())["cues"]
    for cue in ("repetition", "waiting", "threat_to_leave", "public_complaint", "profanity",
                "insult", "sarcasm", "broken_promise"):
        assert set(cues[cue]) >= FIVE, cue
    topics = yaml.safe_load((LEXICONS_DIR / "topics.yaml").read_text())["topics"]
    for topic in ("legal", "fraud", "bereavement", "vulnerability", "safety", "cancellation",
                  "complaint", "data_privacy"):
        assert set(topics[topic]) >= FIVE, topic


def test_an_unknown_key_is_refused_with_its_line(folder: Path) -> None:
    scoring = folder / "scoring.yaml"
    edit(scoring, "  trend_window: 5\n", "  trend_window: 5\n  trend_windw: 6\n")
    problems = refused(folder)
    assert len(problems) == 1
    assert "unknown key 'sentiment.trend_windw' (did you mean 'trend_window'?)" in problems[0]
    assert problems[0].startswith(f"{scoring}:{line_number(scoring, 'trend_windw: 6')}:")


def test_every_problem_of_every_file_is_listed(folder: Path) -> None:
    edit(folder / "scoring.yaml", "negative_threshold: -0.05", "negative_threshold: -3")
    edit(folder / "languages.yaml", 'stop_words: [the, a, an, and, or, but,',
         'stop_words: [the, a, an, and, or, but, yes,')
    edit(folder / "topics.yaml", '"sue*"', '"su*"')
    problems = refused(folder)
    assert len(problems) == 3
    assert any("scoring.yaml" in p and "negative_threshold" in p for p in problems)
    assert any("languages.yaml" in p and 'put the word in quotes, e.g. "no"' in p
               for p in problems)
    assert any("topics.yaml" in p and "at least 3 letters before the '*'" in p for p in problems)


def test_a_cue_without_a_weight_and_a_weight_without_a_cue_are_refused(folder: Path) -> None:
    edit(folder / "scoring.yaml", "    sarcasm: 0.8 ", "    sarcasam: 0.8 ")
    problems = refused(folder)
    assert any("frustration.yaml" in p and "cues.sarcasm: no weight" in p for p in problems)
    assert any("scoring.yaml" in p and "cue_weights.sarcasam: no phrases" in p
               for p in problems)


def test_an_undeclared_language_is_refused(folder: Path) -> None:
    edit(folder / "requests.yaml", "languages:\n  en:\n",
         "languages:\n  it:\n    asks: [parlare]\n  en:\n")
    problems = refused(folder)
    assert any("requests.yaml" in p and "'it' is not declared" in p for p in problems)


def test_a_yaml_syntax_error_and_a_missing_file_are_reported(folder: Path) -> None:
    (folder / "sentiment.yaml").unlink()
    (folder / "topics.yaml").write_text("topics: [unclosed\n", encoding="utf-8")
    problems = refused(folder)
    assert any("sentiment.yaml" in p and "file is missing" in p for p in problems)
    assert any("topics.yaml:1" in p and "the '[' opened on this line is not closed" in p
               for p in problems)


def test_a_policy_owner_edit_changes_scoring(folder: Path) -> None:
    from escalator.model import Message, Turn
    from escalator.scoring import score_turn

    def frustration(lexicons: Lexicons) -> ScoredTurn:
        return score_turn(Turn("t", Message(text="this is bananas")), {}, lexicons)

    assert frustration(load_lexicons(folder)).facts["frustration.cues"] == ()
    edit(folder / "frustration.yaml", "    en: [useless,", "    en: [bananas, useless,")
    assert frustration(load_lexicons(folder)).facts["frustration.cues"] == ("insult",)


def test_answers_lower_the_loop_score_only_as_much_as_the_owner_says(folder: Path) -> None:
    from escalator.model import BotReply, Message, Turn
    from escalator.scoring import score_turn

    def last_loop(lexicons: Lexicons) -> float:
        memory: dict[str, object] = {}
        for n, intent in enumerate(["nlu_fallback", "nlu_fallback", "inform"]):
            turn = Turn(f"t{n}", Message(intent=intent), BotReply(prompt_id=f"ask_{n}"))
            scored = score_turn(turn, memory, lexicons)
            memory = scored.memory
        return scored.scores.loop

    shipped = last_loop(load_lexicons(folder))
    edit(folder / "scoring.yaml", "    answer: 0.4", "    answer: 0")
    unchanged = last_loop(load_lexicons(folder))
    # A vocabulary written before answers lowered the score leaves it out: 0, as before.
    edit(folder / "scoring.yaml", "    answer: 0", "")
    assert last_loop(load_lexicons(folder)) == unchanged > shipped
    edit(folder / "scoring.yaml", "    rejection: 0.29", "    rejection: 0.29\n    answer: -1")
    assert any("answer" in p and "scoring.yaml" in p for p in refused(folder))


@pytest.mark.parametrize(("text", "language"), [
    ("Where is my parcel? I have been waiting for two weeks", "en"),
    ("¿Dónde está mi pedido? Llevo dos semanas esperando", "es"),
    ("Wo ist mein Paket? Ich warte schon seit zwei Wochen", "de"),
    ("Où est mon colis ? J'attends depuis deux semaines", "fr"),
    ("Onde está a minha encomenda? Estou esperando há duas semanas", "pt"),
    ("12345", "und"),
    ("ok", "und"),
])
def test_language_is_detected_from_stop_words_or_undetermined(
        score: Callable[..., ScoredTurn], text: str, language: str) -> None:
    assert score(text).facts["message.language"] == language


def test_the_callers_language_wins_over_detection(score: Callable[..., ScoredTurn]) -> None:
    assert score("Where is my parcel?", language="pt-BR").facts["message.language"] == "pt"


def test_a_label_or_language_ending_in_a_newline_is_refused(folder: Path) -> None:
    # Python's $ also matches before a final newline: these passed a ^...$ check.
    edit(folder / "scoring.yaml", "    sarcasm: 0.8 ", '    "sarcasm\\n": 0.8 ')
    edit(folder / "requests.yaml", "languages:\n  en:\n", 'languages:\n  "en\\n":\n')
    problems = refused(folder)
    assert any("scoring.yaml" in p and "labels are lower-case letters" in p for p in problems)
    assert any("requests.yaml" in p and "language codes are ISO 639-1 codes" in p
               for p in problems)
