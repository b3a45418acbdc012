"""docs/policy/facts.md is what the facts catalogue generates, so the policy owners' list
of facts can never drift from what the loader accepts."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from escalator.cli import main
from escalator.ruleset.catalogue import FACTS, facts_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "policy" / "facts.md"


def test_the_facts_page_is_what_the_catalogue_generates() -> None:
    assert PAGE.read_text(encoding="utf-8") == facts_markdown(), (
        "docs/policy/facts.md differs from the facts catalogue; regenerate it with "
        "`escalator rules facts > docs/policy/facts.md`")


def test_the_page_names_every_fact_with_its_type_once() -> None:
    rows = [line for line in facts_markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [*FACTS, "context.<key>"]
    for row, spec in zip(rows, FACTS.values(), strict=False):
        assert f"| {spec.type} |" in row and spec.doc in row


def test_the_command_prints_the_page() -> None:
    result = CliRunner().invoke(main, ["rules", "facts"])
    assert result.exit_code == 0
    assert result.output == facts_markdown()


def test_the_floor_problem_names_a_heading_that_exists() -> None:
    from escalator.ruleset.floor import FLOOR_DOC

    heading, page = re.fullmatch(r"see '(.+)' in (\S+)", FLOOR_DOC).groups()  # type: ignore[union-attr]
    assert f"\n## {heading}\n" in (PAGE.parents[2] / page).read_text(encoding="utf-8")
