"""Explicit requests for a person (requested_human), with negations and questions handled.

The vocabulary and the reasoning behind each rule are in rules/lexicons/requests.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from escalator.scoring.lexicons import (
    ASK,
    ASK_AFTER,
    NEGATION,
    NOT_NEGATION,
    NOT_PERSON,
    NOT_REQUEST,
    PERSON,
    POLITE,
    REQUEST,
    Lexicons,
)
from escalator.scoring.text import Match, Words


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    has_ask: bool


def _covered(matches: Sequence[Match]) -> set[int]:
    return {i for m in matches for i in range(m.start, m.end)}


def asks_for_person(words: Words, matches: Sequence[Match], lexicons: Lexicons) -> bool:
    """True when the message, in at least one clause, asks for a person and does not negate it."""
    found: dict[str, list[Match]] = {}
    for match in matches:
        found.setdefault(match.kind, []).append(match)
    if PERSON not in found and REQUEST not in found:
        return False
    ws, clauses, params = words.words, words.clauses, lexicons.params

    not_person = _covered(found.get(NOT_PERSON, []))

    def kept(match: Match) -> bool:
        # A not_persons phrase also cancels a request phrase inside it: "I'm a real person".
        return not any(i in not_person for i in range(match.start, match.end))

    persons = [p for p in found.get(PERSON, []) if kept(p)]
    exempt = _covered(found.get(NOT_NEGATION, []))
    negators = {i for m in found.get(NEGATION, []) for i in range(m.start, m.end)
                if m.start not in exempt}
    sentence_starts = set(words.sentence_starts)
    question_sentences = {words.sentences[m.start] for m in found.get(NOT_REQUEST, [])
                          if m.start in sentence_starts}

    def gap_ok(start: int, end: int) -> bool:
        # Only fillers ("a", "real", "un") or negations may sit between ask and person.
        if end - start > params.max_gap or clauses[start - 1] != clauses[end]:
            return False
        return all(ws[i] in lexicons.fillers or i in negators for i in range(start, end))

    def ends_clause(end: int) -> bool:
        rest = [i for i in range(end, len(ws)) if clauses[i] == clauses[end - 1]]
        return all(ws[i] in lexicons.fillers for i in rest)

    def opens_clause(start: int) -> bool:
        before = [i for i in range(start) if clauses[i] == clauses[start]]
        return all(ws[i] in lexicons.fillers for i in before)

    candidates = [_Candidate(r.start, r.end, False) for r in found.get(REQUEST, []) if kept(r)]
    for ask in found.get(ASK, []):
        for person in persons:
            if person.start >= ask.end and gap_ok(ask.end, person.start):
                candidates.append(_Candidate(ask.start, person.end, True))
    for person in persons:
        for ask in found.get(ASK_AFTER, []):
            if ask.start >= person.end and gap_ok(person.end, ask.start) and ends_clause(ask.end):
                candidates.append(_Candidate(person.start, ask.end, True))
        for polite in found.get(POLITE, []):
            # "agent please", and in voice text with no comma "operador por favor ya me
            # harté": the person word opens the clause, so the rest is a new thought.
            if (polite.start >= person.end and gap_ok(person.end, polite.start)
                    and (ends_clause(polite.end) or opens_clause(person.start))):
                candidates.append(_Candidate(person.start, polite.end, False))
    if persons:
        # A short sentence of nothing but person words and fillers is a request, on its
        # own ("OPERATOR!") or inside a longer message ("This is useless. Human. NOW.").
        in_person = _covered(persons)
        for start, end in pairwise((*words.sentence_starts, len(ws))):
            sentence = range(start, end)
            if (len(sentence) <= params.alone_max_words
                    and any(i in in_person for i in sentence)
                    and all(i in in_person or ws[i] in lexicons.fillers for i in sentence)):
                candidates.append(_Candidate(start, end, False))

    for candidate in candidates:
        if not candidate.has_ask and words.sentences[candidate.start] in question_sentences:
            continue  # "are you a real person?" asks about the bot, not for a person
        clause = clauses[candidate.start]
        window = range(max(0, candidate.start - params.negation_window), candidate.end)
        if any(i in negators and clauses[i] == clause for i in window):
            continue  # "I don't need an agent", "ich brauche keinen Mitarbeiter"
        return True
    return False


def requested_human(words: Words, matches: Sequence[Match], intent: str | None,
                    lexicons: Lexicons) -> bool:
    """The customer asked for a person: by what they wrote, or by an NLU intent listed for it."""
    if intent is not None and intent in lexicons.request_intents:
        return True
    return bool(words.words) and asks_for_person(words, matches, lexicons)
