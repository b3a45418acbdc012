"""The policy owner's walkthrough (docs/policy/guide.md, "Change a rule safely") can be
followed from a clone: it starts the service it reloads, raises the version it relies on,
says how to reach the commands, and replays a corpus shipped in the repository, with the
changes a replay really shows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from escalator.cli import main

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "policy" / "guide.md").read_text(encoding="utf-8")


def walkthrough() -> list[str]:
    """The command lines ($ ...) of the walkthrough, in order."""
    section = GUIDE[GUIDE.index("## Change a rule safely"):]
    block = section[section.index("```text"):]
    block = block[:block.index("\n```\n")]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def test_the_walkthrough_starts_what_it_uses_and_raises_the_version() -> None:
    commands = walkthrough()
    assert commands[0] == ". .venv/bin/activate"
    serve = next(i for i, c in enumerate(commands) if "escalator serve --port 8123" in c)
    first_call = next(i for i, c in enumerate(commands) if "localhost:8123" in c
                      and "serve" not in c)
    assert serve < first_call
    edit = next(i for i, c in enumerate(commands) if "gte: 0.8/" in c)
    bump = next(i for i, c in enumerate(commands) if "s/^version: .*/" in c)
    reload = next(i for i, c in enumerate(commands) if "/v1/ruleset/reload" in c)
    assert edit < bump < reload
    assert commands[-1] == "kill %1"


def test_the_walkthrough_reads_only_files_a_clone_has() -> None:
    text = "\n".join(walkthrough())
    assert "shared" not in text and "../" not in text
    for path in re.findall(r"\b(?:examples|rules)/[\w./-]*", text):
        assert (ROOT / path).exists(), path


def copies_as_the_walkthrough_makes_them(tmp_path: Path) -> tuple[Path, Path]:
    """The live rules and the policy owner's copy with the walkthrough's two edits, as its
    sed commands make them."""
    live, mine = tmp_path / "live-rules", tmp_path / "my-rules"
    for folder in (live, mine):
        shutil.copytree(ROOT / "rules", folder,
                        ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    commands = walkthrough()
    threshold = next(c for c in commands if "gte: 0.8/" in c)
    old, new = re.search(r'"s/(.+?)/(.+?)/"', threshold).groups()  # type: ignore[union-attr]
    frustration = mine / "frustration.yaml"
    assert old in frustration.read_text()
    frustration.write_text(frustration.read_text().replace(old, new))
    version = re.search(r's/\^version: \.\*/(version: "[^"]+")/',  # type: ignore[union-attr]
                        next(c for c in commands if "s/^version: .*/" in c)).group(1)
    ruleset = mine / "ruleset.yaml"
    ruleset.write_text(re.sub(r"^version: .*$", version, ruleset.read_text(), flags=re.M))
    return live, mine


def test_the_replay_shown_is_what_the_example_corpus_gives(tmp_path: Path) -> None:
    live, mine = copies_as_the_walkthrough_makes_them(tmp_path)
    result = CliRunner().invoke(main, ["replay", str(ROOT / "examples/corpus/support.jsonl"),
                                       "--rules", str(mine), "--against", str(live)])
    assert result.exit_code == 0, result.output
    real = [line for line in result.output.splitlines()
            if line.startswith(("  ex-", "decisions changed in"))]
    shown = [line for line in GUIDE.splitlines()
             if line.startswith(("  ex-", "decisions changed in"))]
    assert len(real) > 1 and shown == real


def test_the_rule_tests_shown_are_what_the_edited_rules_give(tmp_path: Path) -> None:
    _, mine = copies_as_the_walkthrough_makes_them(tmp_path)
    assert "escalator rules test /tmp/my-rules" in walkthrough()
    # What the guide shows after that command, up to the next command.
    lines = GUIDE.splitlines()
    start = lines.index("$ escalator rules test /tmp/my-rules") + 1
    shown = lines[start:next(i for i in range(start, len(lines))
                             if lines[i].startswith("$ "))]
    result = CliRunner().invoke(main, ["rules", "test", str(mine)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == shown
