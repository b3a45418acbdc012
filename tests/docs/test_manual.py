"""The manual holds together: the README stays a front page, every link between pages
(and to a heading) leads somewhere, every page is on the map, and every benchmark a
figure names as its source exists."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from support.markdown import markdown_sections

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGES.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) < 10_000, f"README.md is {len(readme):,} bytes: move detail to docs/"
    text = readme.decode()
    assert "docs/README.md" in text and "CHANGES.md" in text
    commands = re.findall(r"```sh\n# \d\. .*\n(.*)\n```", text)
    assert len(commands) == 2 and "escalator serve" in commands[0] \
        and "pytest" in commands[1]


def test_every_relative_link_leads_to_a_file_and_heading() -> None:
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, fragment = target.partition("#")
            linked = (page.parent / urllib.parse.unquote(path)).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif fragment and linked.suffix == ".md" and \
                    fragment not in markdown_sections(linked.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert broken == []


def test_every_page_of_the_manual_is_on_its_map() -> None:
    mapped = {(DOCS / target.partition("#")[0]).resolve()
              for target in LINK.findall((DOCS / "README.md").read_text(encoding="utf-8"))}
    linked_from_pages = {(page.parent / target.partition("#")[0]).resolve()
                         for page in PAGES for target in LINK.findall(page.read_text("utf-8"))
                         if not re.match(r"[a-z]+:", target)}
    for page in sorted(DOCS.rglob("*.md")):
        if page == DOCS / "README.md":
            continue
        # Each page is on the map, or (a platform page) linked from a page that is.
        assert page.resolve() in mapped or page.resolve() in linked_from_pages, \
            f"{page.relative_to(ROOT)} is on no map"


def test_every_benchmark_named_as_a_source_exists() -> None:
    missing = []
    for page in PAGES:
        for script in set(re.findall(r"\bbench/[\w/]+\.(?:py|lua)\b",
                                     page.read_text(encoding="utf-8"))):
            if not (ROOT / script).is_file():
                missing.append(f"{page.relative_to(ROOT)}: {script}")
    assert missing == []
