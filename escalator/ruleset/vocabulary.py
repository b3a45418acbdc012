"""Labels a rule compares with, checked against what the service can actually produce.

A comparison with a label no turn can ever carry (`contains: cancelation`, `eq: EN`) is
a rule that never fires, and nothing else would say so. Facts fall in three groups:

- closed vocabularies, made by escalator itself from the lexicons: the topics of
  `complexity.topics`, the cues of `frustration.cues` and the detected languages of
  `message.language`. A label outside them is refused, with a "did you mean".
- labels the caller sends, with a list escalator knows (channels): an unknown channel
  is a warning, not a refusal, because a platform may have channels of its own.
- open labels (tiers, segments, context values): anything may be sent, so they cannot
  be checked; they are compared without regard to case instead (see the loader), so
  `tier: VIP` matches a caller that sends `vip`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from escalator.errors import Problem
from escalator.model import KNOWN_CHANNELS
from escalator.ruleset.catalogue import CONTEXT_PREFIX
from escalator.ruleset.conditions import Leaf, leaves
from escalator.ruleset.messages import LANGUAGE_CODE, LANGUAGE_NAMES
from escalator.ruleset.problems import did_you_mean

if TYPE_CHECKING:
    from escalator.ruleset.model import Rule

# What a turn's context keys may be (the turns API refuses any other key).
CONTEXT_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
# The language the scorer reports when it cannot tell.
UNKNOWN_LANGUAGE = "und"


@dataclass(frozen=True)
class Vocabulary:
    """The labels the scorers can produce, from a rule set's lexicons."""

    topics: frozenset[str]
    cues: frozenset[str]
    languages: frozenset[str]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The hint for a label, whatever its case (labels are compared in lower case)."""
    return did_you_mean(word.lower(), sorted(choices))


def _constants(leaf: Leaf) -> Sequence[object]:
    return leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)


def vocabulary_problems(rules: Sequence[Rule], vocabulary: Vocabulary | None
                        ) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) for labels no turn can carry; closed vocabularies need the
    lexicons (`vocabulary`), and are skipped without them."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for rule in rules:
        for leaf in leaves(rule.when):
            line = leaf.line or rule.line

            def refuse(message: str, code: str = "unknown_label", line: int | None = line,
                       rule: Rule = rule) -> None:
                problems.append(Problem(rule.file, line, message, rule=rule.id, code=code))

            def warn(message: str, code: str, line: int | None = line,
                     rule: Rule = rule) -> None:
                warnings.append(Problem(rule.file, line, message, rule=rule.id, code=code))

            if leaf.fact.startswith(CONTEXT_PREFIX):
                key = leaf.fact[len(CONTEXT_PREFIX):]
                if not CONTEXT_KEY.fullmatch(key):
                    hint = (f" (did you mean 'context.{key.lower()}'?)"
                            if CONTEXT_KEY.fullmatch(key.lower()) else "")
                    refuse(f"'{leaf.fact}' can never be sent: context keys are 1-40 lower-case "
                           f"letters, digits and _, starting with a letter{hint}", "never_true")
                continue
            for value in _constants(leaf):
                if not isinstance(value, str):
                    continue
                if leaf.fact == "channel" and value not in KNOWN_CHANNELS:
                    warn(f"'{value}' is not a channel escalator knows"
                         f"{_did_you_mean(value, KNOWN_CHANNELS)}; the rule matches only if "
                         f"your platform sends channel '{value}' (known channels: "
                         f"{', '.join(sorted(KNOWN_CHANNELS))})", "unknown_channel")
                if vocabulary is None:
                    continue
                if leaf.fact == "complexity.topics" and value not in vocabulary.topics:
                    refuse(_unknown_label(value, "topic", vocabulary.topics,
                                          "lexicons/topics.yaml"))
                elif leaf.fact == "frustration.cues" and value not in vocabulary.cues:
                    refuse(_unknown_label(value, "frustration cue", vocabulary.cues,
                                          "lexicons/frustration.yaml"))
                elif leaf.fact == "message.language":
                    _check_language(value, vocabulary, refuse, warn)
    return problems, warnings


def _unknown_label(value: str, what: str, known: frozenset[str], where: str) -> str:
    return (f"there is no {what} '{value}'{_did_you_mean(value, known)}, so this can never "
            f"match; the {what}s are: {', '.join(sorted(known))} (defined in {where})")


def _check_language(value: str, vocabulary: Vocabulary, refuse: Callable[[str], None],
                    warn: Callable[[str, str], None]) -> None:
    known = vocabulary.languages | {UNKNOWN_LANGUAGE}
    if value in known:
        return
    listed = ", ".join(sorted(known))
    primary = value.lower().replace("_", "-").split("-")[0]
    if value != primary and LANGUAGE_CODE.fullmatch(primary):
        refuse(f"'{value}' can never match: languages are compared as lower-case codes "
               f"without a region (a caller's pt-BR is read as pt); write '{primary}'")
    elif LANGUAGE_CODE.fullmatch(value):
        warn(f"'{value}' is not among the languages of the lexicons ({listed}): it is never "
             f"detected, so the rule matches only when the caller sends language '{value}'",
             "undetected_language")
    else:
        named = LANGUAGE_NAMES.get(value.lower())
        hint = f" (did you mean '{named}'?)" if named else _did_you_mean(value, known)
        refuse(f"'{value}' is not a language code{hint}, so this can never match; languages "
               f"are ISO 639-1 codes such as {listed}")

