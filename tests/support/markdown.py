"""Markdown pages read as GitHub shows them: their sections by heading anchor, so that
links to a heading (runbook URLs, links between the manual's pages) can be checked."""

from __future__ import annotations

import re


def markdown_sections(text: str) -> dict[str, str]:
    """A markdown file's sections by their headings' anchors, as GitHub makes them
    (lower case, punctuation dropped, spaces to hyphens, -1, -2... for repeats); a
    section runs to the next heading of the same or a higher level."""
    headings: list[tuple[int, str, int]] = []  # level, anchor, where its section starts
    seen: dict[str, int] = {}
    fenced = False
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"(#{1,6}) +(.+?) *#*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(2).strip().lower()).replace(" ", "-")
            repeat = seen.get(slug, 0)
            seen[slug] = repeat + 1
            headings.append((len(match.group(1)), f"{slug}-{repeat}" if repeat else slug,
                             number))
    sections = {}
    for i, (level, anchor, start) in enumerate(headings):
        end = next((s for lv, _, s in headings[i + 1:] if lv <= level), len(lines))
        sections[anchor] = "\n".join(lines[start:end])
    return sections
