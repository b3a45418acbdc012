"""`escalator rules check` says when the rules changed but their version did not, compared
with git HEAD, another folder or a running service."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.rulesets import copy_rules
from support.servers import serve

from escalator.cli import main
from escalator.ruleset.previous import next_version


def version_of(folder: Path) -> str:
    found = re.search(r'^version: "([^"]+)"', (folder / "ruleset.yaml").read_text(), re.M)
    assert found
    return found.group(1)


def lower_spike_threshold(folder: Path) -> None:
    frustration = folder / "frustration.yaml"
    text = frustration.read_text()
    changed = re.sub(r"(fact: frustration\.fitted, gte: )([0-9.]+)",
                     lambda m: m.group(1) + str(round(float(m.group(2)) - 0.05, 2)), text,
                     count=1)
    assert changed != text
    frustration.write_text(changed)


def bump_version(folder: Path) -> str:
    ruleset = folder / "ruleset.yaml"
    old = version_of(folder)
    ruleset.write_text(ruleset.read_text().replace(f'version: "{old}"',
                                                   f'version: "{next_version(old)}"'))
    return next_version(old)


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rules", "check", *args])
    return result.exit_code, result.output


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Policy Owner", "-c", "user.email=po@example.com",
                    *args], cwd=folder, check=True, capture_output=True)


def test_a_change_without_a_new_version_is_warned_against_git_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    folder = copy_rules(repo / "rules", with_tests=True)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "rules")
    version = version_of(folder)

    code, output = check(str(folder))
    assert code == 0 and f"unchanged since git HEAD (rules/) (version {version})" in output

    lower_spike_threshold(folder)
    code, output = check(str(folder))
    assert code == 0  # a warning, not a refusal
    assert f"warning: ruleset.yaml:{_line_of_version(folder)}: the rules differ from git HEAD " \
           f"(rules/) but the version is still '{version}'; raise it (e.g. version: " \
           f"\"{next_version(version)}\")" in output
    assert "1 warning(s)" in output
    assert check("--strict", str(folder))[0] == 1

    new = bump_version(folder)
    code, output = check("--strict", str(folder))
    assert code == 0, output
    assert f"changed since git HEAD (rules/): version {version} -> {new}" in output
    assert "warning" not in output


def test_a_lexicon_change_counts_as_a_change(tmp_path: Path) -> None:
    before = copy_rules(tmp_path / "before", with_tests=True)
    after = copy_rules(tmp_path / "after", with_tests=True)
    topics = after / "lexicons" / "topics.yaml"
    topics.write_text(topics.read_text().replace("lawyer, ", "lawyer, barrister, "))
    code, output = check(str(after), "--against", str(before))
    assert code == 0
    assert f"changed since {before}, version unchanged" in output and "warning:" in output


def test_a_folder_outside_git_is_not_compared_unless_asked(tmp_path: Path) -> None:
    folder = copy_rules(tmp_path / "rules", with_tests=True)
    code, output = check(str(folder))
    assert code == 0 and output.startswith("ok: ") and "since" not in output


def test_the_running_service_is_compared_when_given_its_url(tmp_path: Path,
                                                           redis_url: str) -> None:
    live = copy_rules(tmp_path / "live-rules", with_tests=True)
    mine = copy_rules(tmp_path / "my-rules", with_tests=True)
    with serve(tmp_path / "serve", redis_url, workers=1,
               ESCALATOR_RULES_DIR=str(live)) as base:
        code, output = check(str(mine), "--against", base)
        assert code == 0 and f"unchanged since {base}" in output

        lower_spike_threshold(mine)
        code, output = check(str(mine), "--against", base)
        assert f"the rules differ from {base} but the version is still" in output

        new = bump_version(mine)
        code, output = check(str(mine), "--against", base)
        assert f"changed since {base}: version {version_of(live)} -> {new}" in output
        assert "warning" not in output


def test_a_service_that_cannot_be_asked_is_a_clear_error(tmp_path: Path) -> None:
    from support.servers import free_port

    folder = copy_rules(tmp_path / "rules", with_tests=True)
    code, output = check(str(folder), "--against", f"http://127.0.0.1:{free_port()}")
    assert code != 0
    assert "--against: cannot read http://127.0.0.1:" in output
    assert "is the service running there?" in output
    code, output = check(str(folder), "--against", str(tmp_path / "nowhere"))
    assert code != 0 and "is neither a rules folder nor an http(s) URL" in output


@pytest.mark.parametrize(("version", "suggested"), [
    ("2026.11.2", "2026.11.3"), ("1", "2"), ("v9-beta", "v10-beta"), ("draft", "draft.1")])
def test_the_suggested_version_raises_the_last_number(version: str, suggested: str) -> None:
    assert next_version(version) == suggested


def _line_of_version(folder: Path) -> int:
    lines = (folder / "ruleset.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith("version:"))
