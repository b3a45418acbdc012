"""The policy guide's page on problems (docs/policy/problems.md) lists exactly the codes of
the registry, and its example is what its commands print."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from click.testing import CliRunner

from escalator.cli import main
from escalator.errors import PROBLEM_CODES

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "policy" / "problems.md"
SHOWN_FOLDER = "/tmp/my-rules"


def test_the_page_lists_every_code_with_its_severity_and_meaning_and_no_other() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (error|warning) \| (.+) \|$", PAGE.read_text(),
                      re.M)
    assert [(code, severity, meaning) for code, severity, meaning in rows] == [
        (code, severity, meaning) for code, (severity, meaning) in PROBLEM_CODES.items()]


def example() -> list[tuple[str, str]]:
    """(command, what the page shows it prints) for each `$ ` line of the example."""
    text = PAGE.read_text()
    section = text[text.index("## `escalator rules check --format json`"):]
    block = section[section.index("```text\n"):]
    block = block[len("```text\n"):block.index("\n```\n")]
    steps: list[tuple[str, str]] = []
    for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
        command, _, shown = chunk.partition("\n")
        steps.append((command, shown.rstrip("\n")))
    return steps


def test_the_example_is_what_its_commands_print(tmp_path: Path) -> None:
    folder = str(tmp_path / "my-rules")
    steps = example()
    assert [command.split()[:3] for command, _ in steps][-2:] == [
        ["escalator", "rules", "check"], ["escalator", "rules", "check"]]
    for command, shown in steps:
        command = command.replace(SHOWN_FOLDER, folder)
        if command.startswith("escalator "):  # in this process: it is the same code
            output = CliRunner().invoke(main, shlex.split(command)[1:]).output
        else:
            output = subprocess.run(["bash", "-c", command], cwd=ROOT, check=True,
                                    capture_output=True, text=True, timeout=60).stdout
        assert output.replace(folder, SHOWN_FOLDER).rstrip("\n") == shown, command
