"""The fitted layers: frustration.fitted and breakdown.score are the sums their weights files
say, their contributions explain them, and a broken weights file is refused with its line."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml

from escalator.errors import PolicyError
from escalator.model import Turn
from escalator.scoring import Lexicons, ScoredTurn, load_lexicons, score_turn
from escalator.scoring.fitted import BREAKDOWN_FEATURES, FRUSTRATION_FEATURES

LEXICONS_DIR = Path(__file__).resolve().parents[2] / "rules" / "lexicons"
Converse = Callable[[Iterable[Turn | str]], list[ScoredTurn]]
MakeTurn = Callable[..., Turn]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "lexicons"
    shutil.copytree(LEXICONS_DIR, target)
    return target


def weights(name: str) -> dict[str, object]:
    loaded = yaml.safe_load((LEXICONS_DIR / f"fitted_{name}.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def by_hand(name: str, values: tuple[float, ...]) -> tuple[float, list[tuple[str, float]]]:
    """The score and every term, computed from the weights file as its comment says."""
    model = weights(name)
    features = model["features"]
    assert isinstance(features, dict)
    order = list(FRUSTRATION_FEATURES if name == "frustration" else BREAKDOWN_FEATURES)
    terms = [(feature, term["weight"] * (values[order.index(feature)] - term["center"]))
             for feature, term in features.items()]
    log_odds = float(model["intercept"]) + sum(part for _, part in terms)  # type: ignore[arg-type]
    return 1 / (1 + math.exp(-log_odds)), terms


def shown(contributions: tuple[str, ...]) -> list[tuple[str, float]]:
    return [(item.rsplit(" ", 1)[0], float(item.rsplit(" ", 1)[1])) for item in contributions]


def test_each_fitted_score_is_the_sum_its_file_writes_and_shows_its_largest_terms(
        converse: Converse, turn: MakeTurn) -> None:
    results = converse(["my parcel never came", "I ALREADY TOLD YOU, where is my refund???",
                        turn("no", intent="deny", prompt="propose_date"),
                        turn(None, intent="nlu_fallback", prompt="propose_date",
                             fallback=True)])
    for result in results:
        for name, fact in (("frustration", "frustration.fitted"),
                           ("breakdown", "breakdown.score")):
            values = (result.frustration_features if name == "frustration"
                      else result.breakdown_features)
            if not values:  # no text: frustration.fitted reports 0 with nothing to show
                assert result.facts[fact] == 0.0
                assert result.facts["frustration.contributions"] == ()
                continue
            score, terms = by_hand(name, values)
            assert result.facts[fact] == round(score, 4)
            largest = sorted((t for t in terms if abs(t[1]) > 0.01), key=lambda t: -abs(t[1]))
            listed = shown(result.facts[f"{name}.contributions"])  # type: ignore[arg-type]
            assert [n for n, _ in listed] == [n for n, _ in largest[:3]]
            assert all(abs(v - p) <= 0.005 + 1e-9 for (_, v), (_, p) in
                       zip(listed, largest, strict=False))


def test_frustration_fitted_adds_the_conversation_to_the_lexicon_evidence(
        converse: Converse) -> None:
    calm_first = converse(["where is my parcel"])[0]
    calm_after_anger = converse(["THIS IS A DISGRACE, worst service ever!!!",
                                 "where is my parcel"])[1]
    # The same words score the same in the lexicon, higher fitted after an angry message.
    assert calm_first.facts["frustration.score"] == calm_after_anger.facts["frustration.score"]
    assert calm_after_anger.facts["frustration.fitted"] > calm_first.facts["frustration.fitted"]
    assert any(item.startswith("previous +")
               for item in calm_after_anger.facts["frustration.contributions"])  # type: ignore[union-attr]


def test_breakdown_rises_with_bot_failures_and_falls_with_an_answer(
        converse: Converse, turn: MakeTurn) -> None:
    failing = converse([turn(None, intent="book", prompt="ask_date"),
                        turn(None, intent="nlu_fallback", prompt="ask_date", fallback=True),
                        turn(None, intent="nlu_fallback", prompt="ask_date", fallback=True)])
    scores = [r.facts["breakdown.score"] for r in failing]
    assert scores[0] < scores[1] < scores[2]
    answered = converse([turn(None, intent="book", prompt="ask_date"),
                         turn(None, intent="inform", prompt="ask_date")])
    assert answered[1].facts["breakdown.score"] < answered[0].facts["breakdown.score"]
    assert "answer_now" in answered[1].facts["breakdown.contributions"][0]  # type: ignore[index]


def test_a_policy_owner_weight_change_moves_the_score(folder: Path) -> None:
    from escalator.model import Message

    def fitted(lexicons: Lexicons) -> float:
        result = score_turn(Turn("t", Message(text="where is my parcel?")), {}, lexicons)
        return float(result.facts["frustration.fitted"])  # type: ignore[arg-type]

    before = fitted(load_lexicons(folder))
    path = folder / "fitted_frustration.yaml"
    path.write_text("\n".join("intercept: 1.5" if line.startswith("intercept:") else line
                              for line in path.read_text().splitlines()) + "\n")
    assert fitted(load_lexicons(folder)) > before


def refused(folder: Path) -> list[tuple[str, int | None, str, str]]:
    with pytest.raises(PolicyError) as caught:
        load_lexicons(folder)
    return [(p.file, p.line, p.code, p.message) for p in caught.value.problems]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_broken_weights_file_is_refused_with_its_line_and_code(folder: Path) -> None:
    frustration = folder / "fitted_frustration.yaml"
    breakdown = folder / "fitted_breakdown.yaml"
    frustration.write_text(frustration.read_text().replace("  previous:", "  previuos:"))
    breakdown.write_text(breakdown.read_text().replace("model: breakdown", "model: loops")
                         .replace("intercept: ", "intercept: 9", 1))
    problems = refused(folder)
    assert (str(frustration), line_of(frustration, "previuos:"), "schema") == problems[0][:3]
    assert "'features.previuos'" in problems[0][3] and "did you mean 'previous'" in problems[0][3]
    codes = {(file, line, code) for file, line, code, _ in problems}
    assert (str(breakdown), line_of(breakdown, "model: loops"), "schema") in codes
    assert (str(breakdown), line_of(breakdown, "intercept: 9"), "schema") in codes
    assert len(problems) == 3


def test_a_missing_weights_file_is_refused(folder: Path) -> None:
    (folder / "fitted_breakdown.yaml").unlink()
    problems = refused(folder)
    assert [(Path(f).name, code) for f, _, code, _ in problems] == [
        ("fitted_breakdown.yaml", "file_missing")]


def test_the_lexicons_load_without_the_weights_for_refitting(folder: Path) -> None:
    (folder / "fitted_breakdown.yaml").write_text("model: [broken\n")
    (folder / "fitted_frustration.yaml").unlink()
    lexicons = load_lexicons(folder, fitted=False)
    from escalator.model import Message
    result = score_turn(Turn("t", Message(text="hello")), {}, lexicons)
    assert result.facts["frustration.fitted"] == 0.5 == result.facts["breakdown.score"]
    assert result.frustration_features and result.breakdown_features


def test_remembered_breakdown_results_are_bounded_and_the_same(lexicons: Lexicons) -> None:
    from escalator.scoring import fitted

    model = lexicons.breakdown_model
    values = fitted.breakdown_values(0.5, 1, 1, 0, 0, 0, 0, 0, 0, 0, True, False, False)
    assert model.remembered(values) == model.apply(values)
    for level in range(fitted.REMEMBER_AT_MOST + 10):
        model.remembered(fitted.breakdown_values(level / 1000, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 False, False, False))
    assert 0 < len(model._seen) <= fitted.REMEMBER_AT_MOST


@pytest.mark.parametrize("stored", [
    {"v": 1, "n": 3, "fs": float("inf"), "fw": float("inf"), "ll": float("inf"),
     "fe": float("inf")},
    {"v": 1, "n": 3, "fs": 1e308, "fw": 1e-308, "ll": 1e308, "fe": -1e308},
    {"v": 1, "n": 3, "fs": float("-inf"), "fw": 1.0, "ll": float("nan"), "fe": "x"},
])
def test_a_memory_out_of_all_range_still_gives_fact_numbers(
        stored: dict[str, object], lexicons: Lexicons) -> None:
    from escalator.model import Message
    result = score_turn(Turn("t", Message(text="hello there")), stored, lexicons)
    for fact in ("frustration.fitted", "breakdown.score"):
        value = result.facts[fact]
        assert isinstance(value, float) and 0.0 <= value <= 1.0, (fact, value)
    for fact in ("frustration.contributions", "breakdown.contributions"):
        assert all(len(item) < 40 for item in result.facts[fact]), result.facts[fact]  # type: ignore[union-attr]


def test_a_rule_on_contributions_is_refused_naming_the_score_to_test(tmp_path: Path) -> None:
    from escalator.policy import check_policy
    from escalator.studio.forms import fact_choices

    folder = copy_rules_with(tmp_path, "{fact: frustration.contributions, contains: previous}")
    check = check_policy(folder)
    assert check.policy is None
    assert [(p.code, p.line) for p in check.problems] == [("type_mismatch", 7)]
    assert "test 'frustration.fitted' instead" in check.problems[0].message
    assert "frustration.contributions" not in {name for name, _, _ in fact_choices()}
    assert "frustration.fitted" in {name for name, _, _ in fact_choices()}


def copy_rules_with(tmp_path: Path, condition: str) -> Path:
    """The default rule set with one more rule testing `condition` (its line: 7 of extra.yaml)."""
    from support.rulesets import copy_rules

    folder = copy_rules(tmp_path / "rules")
    (folder / "extra.yaml").write_text(
        "rules:\n  - id: extra\n    description: x\n    priority: 1\n    when:\n      all:\n"
        f"        - {condition}\n    then: {{decision: keep_with_bot}}\n", encoding="utf-8")
    return folder
