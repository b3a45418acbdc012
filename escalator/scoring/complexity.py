"""Complexity: questions, distinct issues, length and sensitive topics of one message."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from escalator.scoring.lexicons import ISSUE_MARKER, ISSUE_TOPIC, QUESTION_OPENER, TOPIC, Lexicons
from escalator.scoring.text import Match, Words

# "1. ...", "2) ...", "- ...", "* ...", "• ..." at the start of a line.
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[-*\u2022])[ \t]+\S", re.MULTILINE)


@dataclass(frozen=True)
class ComplexityFacts:
    """The complexity facts of a turn."""

    score: float
    questions: int
    issues: int
    topics: tuple[str, ...]


NONE = ComplexityFacts(0.0, 0, 0, ())


def count_questions(words: Words, matches: Sequence[Match]) -> int:
    """Sentences ending in "?" plus sentences opening like a question ("how do I ...")."""
    opened = {m.start for m in matches if m.kind == QUESTION_OPENER}
    questions = 0
    for start in words.sentence_starts:
        sentence = words.sentences[start]
        if sentence in words.questions or start in opened:
            questions += 1
    return questions


def _outermost(matches: Sequence[Match]) -> list[Match]:
    """Matches not inside a longer one ("another thing" inside "and another thing")."""
    return [m for m in matches
            if not any(o is not m and o.start <= m.start and m.end <= o.end
                       and (o.end - o.start) > (m.end - m.start) for o in matches)]


def count_issues(text: str, words: Words, matches: Sequence[Match],
                 not_content: frozenset[str]) -> int:
    """Distinct issues: list items, or one plus each "also"-style marker, or distinct subjects.

    A message of only stop words and small talk ("yes", "ok thanks") raises no issue.
    """
    if all(word in not_content for word in words.words):
        return 0
    markers = _outermost([m for m in matches if m.kind == ISSUE_MARKER])
    subjects = {m.label for m in matches if m.kind == ISSUE_TOPIC}
    list_items = len(_LIST_ITEM.findall(text))
    return max(1, 1 + len(markers), list_items, len(subjects))


def assess(text: str, words: Words, matches: Sequence[Match],
           lexicons: Lexicons) -> ComplexityFacts:
    """Score a message's complexity, 0..1, the parts combined as a noisy-OR."""
    if not words.words:
        return NONE
    params = lexicons.params
    questions = count_questions(words, matches)
    issues = count_issues(text, words, matches, lexicons.not_content)
    topics = tuple(sorted({m.label for m in matches if m.kind == TOPIC}))
    parts = [params.questions(questions), params.issues(issues), params.length(len(words))]
    parts += [params.topic_weights.get(topic, 0.0) for topic in topics]
    simple = 1.0
    for part in parts:
        simple *= 1.0 - part
    return ComplexityFacts(max(0.0, min(1.0, 1.0 - simple)), questions, issues, topics)
