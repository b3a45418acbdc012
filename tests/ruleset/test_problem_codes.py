"""Every problem has a stable code from one registry: each code is what its mistake gives,
in the rule files, the folder, the lexicons and the rule tests alike."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from escalator.config import default_rules_dir
from escalator.errors import PROBLEM_CODES, PolicyError, Problem
from escalator.policy import vocabulary_of
from escalator.ruleset.loader import load_ruleset
from escalator.ruleset.previous import Identity, compare
from escalator.ruleset.vocabulary import Vocabulary
from escalator.scoring import load_lexicons
from escalator.tools.ruletests import load_rule_tests

WriteRules = Callable[..., Path]

# Codes no test can bring about on purpose, and why.
UNREACHED = {
    # The compiler's own limits refuse everything the engine is known to refuse.
    "engine_refused",
    # Needs a writer changing the folder during each of five reads in a row.
    "folder_changing",
}


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return vocabulary_of(load_lexicons(default_rules_dir() / "lexicons"))


def found(load: Callable[[], object]) -> list[Problem]:
    """The problems and warnings a load reports (it may load, with warnings only)."""
    try:
        loaded = load()
    except PolicyError as exc:
        return [*exc.problems, *exc.warnings]
    return list(getattr(loaded, "warnings", ()))


def rule(when: str, then: str = "{decision: keep_with_bot}", rule_id: str = "mine") -> str:
    return (f"- id: {rule_id}\n  description: d\n  priority: 10\n  when: {when}\n"
            f"  then: {then}\n")


# code -> the mistake (rules under `rules:` of a file beside the floor rules) and the
# file the problem is in.
RULE_FILE_CASES: dict[str, tuple[str, str]] = {
    "schema": ("- id: mine\n  priority: 10\n  when: {fact: turn_index, gte: 1}\n"
               "  then: {decision: keep_with_bot}\n", "rules.yaml"),
    "duplicate": (rule("{fact: turn_index, gte: 1}", rule_id="fallback-cap"), "rules.yaml"),
    "no_effect": (rule("{fact: turn_index, gte: 1}", "{decision: keep_with_bot, queue: x}"),
                  "rules.yaml"),
    "unknown_fact": (rule("{fact: frustration.meen, gte: 0.5}"), "rules.yaml"),
    "unknown_operator": (rule("{fact: frustration.mean, gte_: 0.5}"), "rules.yaml"),
    "type_mismatch": (rule("{fact: turn_index, gte: three}"), "rules.yaml"),
    "never_true": (rule("{fact: frustration.score, gte: 1.5}"), "rules.yaml"),
    "always_true": (rule("{fact: frustration.score, gte: -1}"), "rules.yaml"),
    "unknown_label": (rule("{fact: complexity.topics, contains: cancelation}"), "rules.yaml"),
    "budget": (rule("{fact: turn_index, in: [" + ", ".join(map(str, range(101))) + "]}"),
               "rules.yaml"),
    "old_name": (rule("{fact: turn_index, gte: 9}", "{decision: route_to_human, priority: high}"),
                 "rules.yaml"),
    "missing_language": (rule("{fact: turn_index, gte: 9}", "{decision: route_to_human, "
                              "customer_message: {en: Hello, es: Hola}}"), "rules.yaml"),
    "unknown_channel": (rule("{fact: channel, eq: webchat}"), "rules.yaml"),
    "undetected_language": (rule("{fact: message.language, eq: zu}"), "rules.yaml"),
}


@pytest.mark.parametrize("code", sorted(RULE_FILE_CASES))
def test_a_mistake_in_a_rule_file_has_its_code(write_rules: WriteRules, vocabulary: Vocabulary,
                                               code: str) -> None:
    rules, file = RULE_FILE_CASES[code]
    folder = write_rules(rules)
    problems = found(lambda: load_ruleset(folder, vocabulary))
    assert code in {p.code for p in problems}, [str(p) for p in problems]
    (problem,) = [p for p in problems if p.code == code][:1]
    assert problem.file == file and problem.line is not None
    assert problem.severity == PROBLEM_CODES[code][0]


def test_a_rule_set_without_the_floor_is_refused_with_code_floor(
        write_rules: WriteRules) -> None:
    folder = write_rules(rule("{fact: turn_index, gte: 1}"), floor=False)
    codes = {p.code for p in found(lambda: load_ruleset(folder))}
    assert codes == {"floor"}


@pytest.mark.parametrize(("code", "make"), [
    ("file_missing", lambda folder: None),
    ("file_name", lambda folder: (folder / "extra.yml").write_text("rules: []\n")),
    ("file_unreadable", lambda folder: (folder / "linked.yaml").symlink_to("/etc/hostname")),
    ("yaml_syntax", lambda folder: (folder / "broken.yaml").write_text("rules: [open\n")),
])
def test_a_file_that_cannot_be_read_has_its_code(tmp_path: Path, code: str,
                                                 make: Callable[[Path], object]) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    make(folder)
    assert code in {p.code for p in found(lambda: load_ruleset(folder))}


@pytest.mark.parametrize(("code", "file", "old", "new"), [
    ("phrase", "topics.yaml", '"sue*"', '"su*"'),
    ("lexicon_mismatch", "scoring.yaml", "    sarcasm: 0.8 ", "    sarcasam: 0.8 "),
])
def test_a_lexicon_mistake_has_its_code(tmp_path: Path, code: str, file: str, old: str,
                                        new: str) -> None:
    lexicons = tmp_path / "lexicons"
    shutil.copytree(default_rules_dir() / "lexicons", lexicons)
    text = (lexicons / file).read_text(encoding="utf-8")
    assert old in text
    (lexicons / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    problems = found(lambda: load_lexicons(lexicons))
    assert problems and {p.code for p in problems} == {code}, [str(p) for p in problems]


@pytest.mark.parametrize(("code", "expect"), [
    ("unknown_rule", "{turn: 1, rules: [explicit-human-requst]}"),
    ("unknown_queue", "{turn: 1, queue: suport}"),
    ("unknown_turn", "{turn: 2}"),
    ("no_effect", "{turn: 1, decision: keep_with_bot, queue: support}"),
    ("schema", "{turn: 1, decison: keep_with_bot}"),
])
def test_a_mistake_in_a_rule_test_has_its_code(tmp_path: Path, code: str, expect: str) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "mine.yaml").write_text(
        "tests:\n  - name: Mine\n    turns:\n      - message: {text: hi}\n"
        f"    expect:\n      - {expect}\n")
    problems = found(lambda: load_rule_tests(tmp_path, ["explicit-human-request"],
                                             ["support"]))
    assert [(p.code, p.file, p.line) for p in problems] == [(code, "tests/mine.yaml", 6)]


def test_a_changed_rule_set_under_the_same_version_has_code_version_unchanged() -> None:
    _, warnings = compare(Identity("1", "sha256:new", "rules", "ruleset.yaml", 2),
                          Identity("1", "sha256:old", "git HEAD"))
    assert [(w.code, w.severity, w.file, w.line) for w in warnings] == [
        ("version_unchanged", "warning", "ruleset.yaml", 2)]


def test_every_code_is_brought_about_by_a_test_or_said_why_not() -> None:
    tested = {*RULE_FILE_CASES, "floor", "file_missing", "file_name", "file_unreadable",
              "yaml_syntax", "phrase", "lexicon_mismatch", "unknown_rule", "unknown_queue",
              "unknown_turn", "version_unchanged"}
    assert tested | UNREACHED == set(PROBLEM_CODES)
    assert not tested & UNREACHED


def test_each_code_has_a_severity_and_a_one_line_meaning() -> None:
    for code, (severity, meaning) in PROBLEM_CODES.items():
        assert code.isidentifier() and code.islower(), code
        assert severity in ("error", "warning"), code
        assert meaning and "\n" not in meaning and not meaning.endswith("."), code


def test_a_problem_refuses_a_code_not_in_the_registry() -> None:
    with pytest.raises(ValueError, match="unknown problem code"):
        Problem("rules.yaml", 1, "m", code="typo")


def test_a_problem_names_a_limit_exactly_when_it_is_over_the_budget() -> None:
    with pytest.raises(ValueError):
        Problem("rules.yaml", 1, "m", code="budget")
    with pytest.raises(ValueError):
        Problem("rules.yaml", 1, "m", code="schema", limit="list_values")
    problem = Problem("rules.yaml", 3, "m", rule="r", code="budget", limit="list_values")
    assert problem.to_dict() == {"code": "budget", "severity": "error", "file": "rules.yaml",
                                 "line": 3, "rule": "r", "limit": "list_values",
                                 "message": "m"}
