"""The repository stands alone: no comment, docstring or page points at a document it does
not contain (a design document, numbered principles, notes, a style guide kept elsewhere).
The knowledge those pointed at lives in docs/ (docs/design above all); this keeps it so.

The public data sets are the one thing read from outside, and only as a folder given on
the command line: `../shared/data` is where CI lays them beside the checkout, so that path
(and only that one under ../shared) may be named.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("escalator", "tests", "bench", "examples", "k8s", ".ci", "rules", "docs")
TOP_FILES = ("README.md", "CHANGES.md", "Dockerfile", "gunicorn.conf.py", "setup.cfg",
             "pyproject.toml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".lua", ".conf", ".toml", ".cfg",
            ".html", ".js", ".css", ".txt", ".jsonl", ""}
SKIPPED = ("escalator/studio/static/vendor/",)

# Each pattern, with what it pointed at.
FORBIDDEN = {
    r"\bDESIGN\b": "a design document outside the repository (state it in docs/design)",
    r"\b[Pp]rinciples? *\d": "numbered principles of a document outside the repository",
    r"\.\./shared/(?!data\b)": "a file beside the checkout (only ../shared/data, the data "
                               "sets, may be named)",
    r"(?<![\w-])notes/": "notes outside the repository",
    r"docs/notes": "a docs/notes folder the repository does not have",
    r"\b(?:the|our|durable-rules|operations|design) notes\b": "notes outside the repository",
    r"check_production": "a function that does not exist (config.check_production)",
    r"STYLE\.md": "a style guide outside the repository",
    r"/work/": "an absolute path of one machine",
}


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if (path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in relative
                    and not relative.startswith(SKIPPED) and path != Path(__file__)):
                files.append(path)
    return files


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern, meaning in FORBIDDEN.items():
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}: {meaning}")
    assert found == []


def test_the_scan_reads_the_package_and_would_find_a_reference() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in scanned_files()}
    assert {"escalator/ruleset/compiler.py", "k8s/monitoring/alerts.rules.yaml",
            ".ci/run", "docs/design/rule-compiler.md"} <= names
    for example in ("see DESIGN principle 1", "the durable-rules notes", "../shared/DESIGN.md",
                    "docs/notes/state.md", "config.check_production", "STYLE.md"):
        assert any(re.search(pattern, example) for pattern in FORBIDDEN), example
    for allowed in ("python -m bench.quality.quality ../shared/data", "notes = [...]",
                    "one.notes[cat]"):
        assert not any(re.search(pattern, allowed) for pattern in FORBIDDEN), allowed
