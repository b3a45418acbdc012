"""requested_human and language detection measured on the labelled cases, per language.

The cases are in request_cases.yaml (tuned on) and request_cases_heldout.yaml (not).
Run with -s to see the per-language table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from escalator.scoring import ScoredTurn

HERE = Path(__file__).resolve().parent
TUNED = HERE / "request_cases.yaml"
HELD_OUT = HERE / "request_cases_heldout.yaml"
LANGUAGES = ("en", "es", "de", "fr", "pt")


@dataclass(frozen=True)
class Case:
    text: str
    language: str
    asks: bool


@dataclass(frozen=True)
class Tally:
    """Confusion counts of requested_human and language detection for one language."""

    true_pos: int
    false_pos: int
    false_neg: int
    detected_right: int
    detected_und: int
    total: int

    @property
    def precision(self) -> float:
        flagged = self.true_pos + self.false_pos
        return self.true_pos / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        asks = self.true_pos + self.false_neg
        return self.true_pos / asks if asks else 1.0


def load_cases(path: Path) -> list[Case]:
    """Every case of a cases file, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Case(text, language, key == "asks")
            for language, groups in data.items()
            for key in ("asks", "not_asks")
            for text in groups.get(key, [])]


def tally(cases: list[Case],
          score: Callable[..., ScoredTurn]) -> tuple[dict[str, Tally], list[str]]:
    """Per-language tallies (plus "all"), and a line for every wrong requested_human."""
    counts: dict[str, list[int]] = {}
    wrong: list[str] = []
    for case in cases:
        facts = score(case.text).facts  # no language sent: the detector decides
        got = facts["requested_human"] is True
        detected = facts["message.language"]
        for key in (case.language, "all"):
            c = counts.setdefault(key, [0] * 6)
            c[0] += got and case.asks
            c[1] += got and not case.asks
            c[2] += case.asks and not got
            c[3] += detected == case.language
            c[4] += detected == "und"
            c[5] += 1
        if got != case.asks:
            wrong.append(f"{case.language} expected {case.asks}: {case.text}")
    return {key: Tally(*c) for key, c in counts.items()}, wrong


def table(tallies: dict[str, Tally]) -> str:
    """The per-language numbers as a small text table."""
    lines = ["lang  precision  recall  language right  und"]
    for key, t in tallies.items():
        lines.append(f"{key:5s} {t.precision:9.3f} {t.recall:7.3f} "
                     f"{t.detected_right / t.total:14.3f} {t.detected_und / t.total:4.3f}")
    return "\n".join(lines)


def test_the_tuning_set_has_at_least_twenty_asks_and_twenty_non_asks_per_language() -> None:
    cases = load_cases(TUNED)
    for language in LANGUAGES:
        mine = [c for c in cases if c.language == language]
        assert sum(c.asks for c in mine) >= 20, language
        assert sum(not c.asks for c in mine) >= 20, language


def test_requests_are_found_with_high_precision_and_recall_in_every_language(
        score: Callable[..., ScoredTurn]) -> None:
    tallies, wrong = tally(load_cases(TUNED), score)
    print("\nrequest_cases.yaml (tuned on)\n" + table(tallies))
    for key, t in tallies.items():
        assert t.precision >= 0.98, (key, wrong)
        assert t.recall >= 0.95, (key, wrong)


def test_held_out_requests_stay_above_a_floor(score: Callable[..., ScoredTurn]) -> None:
    # A floor against regressions, not a target. Round 1 (33 cases) measured recall 0.58
    # and was then moved into the tuning set; this round 2 file (62 cases) measured
    # precision 1.00, recall 0.84 (26 of 31 asks) the first and only time it was run
    # before being committed. Misses are left in on purpose: see the commit report.
    tallies, wrong = tally(load_cases(HELD_OUT), score)
    print("\nrequest_cases_heldout.yaml (never tuned on)\n" + table(tallies))
    assert tallies["all"].precision >= 0.95, wrong
    assert tallies["all"].recall >= 0.8, wrong


def test_the_held_out_set_has_at_least_five_asks_and_five_non_asks_per_language() -> None:
    cases = load_cases(HELD_OUT)
    for language in LANGUAGES:
        mine = [c for c in cases if c.language == language]
        assert sum(c.asks for c in mine) >= 5, language
        assert sum(not c.asks for c in mine) >= 5, language


def test_the_detector_names_the_language_of_most_cases_and_rarely_a_wrong_one(
        score: Callable[..., ScoredTurn]) -> None:
    tallies, _ = tally(load_cases(TUNED), score)
    for language in LANGUAGES:
        t = tallies[language]
        assert t.detected_right / t.total >= 0.85, language
        # A wrong guess is worse than "und": at most one per language.
        assert t.total - t.detected_right - t.detected_und <= 1, language


@pytest.mark.parametrize("path", [TUNED, HELD_OUT])
def test_every_case_is_labelled_with_a_known_language(path: Path) -> None:
    assert {c.language for c in load_cases(path)} == set(LANGUAGES)
