"""What `escalator rules check` says about a broken rule file: YAML mistakes in plain words
with the line to fix and a hint, and the problems of every check in one run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from support.rulesets import copy_rules

from escalator.cli import main

GOOD = """\
rules:
  - id: my-rule
    description: A frustrated customer on the phone.
    priority: 50
    when: {all: [{fact: frustration.score, gte: 0.7}, {fact: channel, eq: voice}]}
    then: {decision: route_to_human, customer_message: "One moment, please."}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The default rule set, copied so a test can add a file to it."""
    copy = tmp_path / "rules"
    copy_rules(copy)
    return copy


def check(folder: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["rules", "check", str(folder)])
    return result.exit_code, result.output.strip().splitlines()


def test_the_good_file_loads(folder: Path) -> None:
    (folder / "mine.yaml").write_text(GOOD)
    code, lines = check(folder)
    assert code == 0, lines


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    # The two messages.
    ("description: A frustrated customer on the phone.",
     "description: Frustrated: a customer on the phone.", 3,
     "the value of 'description' contains ': ', which YAML reads as the start of another "
     "key; put the whole value in quotes"),
    ('please."}\n', 'please."}\n    - id: another-rule\n', 7,
     "this list item is not lined up with the lines above it (the block started on line 2); "
     "indent it exactly like the other items or keys at its level, with spaces"),
    ("  - id: my-rule\n", " - id: my-rule\n", 3,
     "this line is indented more than the key above it"),
    ("priority: 50", "priority:50", 4,
     "'priority:50' needs a space after the colon: write 'priority: 50'"),
    ("    priority: 50", "\tpriority: 50", 4,
     "there is a tab here; YAML indents with spaces only: replace the tab with spaces"),
    ('"One moment, please."}', '"One moment, please.}', 6,
     "the quote \" opened on this line is never closed; add the closing \""),
    ("{fact: channel, eq: voice}]}", "{fact: channel, eq: voice}}", 5,
     "the '[' opened on this line is not closed where it should be (the parser found '}' "
     "on line 5); check that every '[' has its ']' and items are separated by commas"),
    ("    priority: 50\n", "    priority: 50\n    priority: 60\n", 5,
     "the key 'priority' is written twice in the same place (first on line 4); keep one"),
    ("  - id: my-rule\n", "  -id: my-rule\n", 2,
     "a list item needs a space after its dash: write '- '"),
    ('customer_message: "One moment, please."', "customer_message: Sorry: one moment", 6,
     "a value inside { } or [ ] contains a colon; put that value in quotes"),
])
def test_common_yaml_mistakes_are_explained_with_the_line_and_a_hint(
        folder: Path, old: str, new: str, line: int, message: str) -> None:
    assert old in GOOD
    (folder / "mine.yaml").write_text(GOOD.replace(old, new))
    code, lines = check(folder)
    assert code == 1
    assert lines[0].startswith(f"mine.yaml:{line}: {message}"), lines
    assert not any("mapping values are not allowed" in x or "<block end>" in x for x in lines)


def test_a_missing_space_inside_braces_is_pointed_out(folder: Path) -> None:
    (folder / "mine.yaml").write_text(GOOD.replace("{fact: channel, eq: voice}",
                                                   "{fact:channel, eq: voice}"))
    code, lines = check(folder)
    assert code == 1
    assert "mine.yaml:5: rule 'my-rule' unknown key 'fact:channel' in a condition (write " \
           "'fact: channel', with a space after the colon)" in lines[0]


BROKEN_EVERYWHERE = """\
rules:
  - id: quiet-please
    description: Keep customers who are asking for a person with the bot.
    priority: 150
    when: {fact: requested_human, is: true}
    then: {decision: keep_with_bot, customer_message: "Please hold."}
  - id: Shouting
    description: A customer who shouts.
    priority: 40
    when: {fact: frustration.cues, contains: shoutin}
    then: {decision: route_to_human}
  - id: phone
    description: On the phone.
    priority: 30
    when: {fact: channel, eq: telephone}
    then: {decision: route_to_human}
"""


def test_problems_of_every_check_are_reported_in_one_run(folder: Path) -> None:
    (folder / "mine.yaml").write_text(BROKEN_EVERYWHERE)
    code, lines = check(folder)
    assert code == 1
    text = "\n".join(lines)
    # shape: a message on a keep_with_bot rule, an id in capitals
    assert "mine.yaml:6: rule 'quiet-please' a keep_with_bot rule does not hand over, so " \
           "'customer_message' has no effect" in text
    assert "mine.yaml:7: rule 'Shouting' 'id' must be 1-64 lower-case letters" in text
    # the floor, seen although the rule breaking it also has a shape problem
    assert "mine.yaml:2: rule 'quiet-please' this keep_with_bot rule (priority 150) could " \
           "override 'explicit-human-request'" in text
    # a label no turn can carry
    assert "mine.yaml:10: rule 'Shouting' there is no frustration cue 'shoutin' (did you " \
           "mean 'shouting'?)" in text
    # and a warning
    assert "warning: mine.yaml:15: rule 'phone' 'telephone' is not a channel escalator " \
           "knows" in text
    assert lines[-1] == f"5 problem(s) in {folder}"
