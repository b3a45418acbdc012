"""The studio's one door to the rest of escalator: every tool it puts a face on, imported here.

The studio checks rules with the same code as `escalator rules check`, decides turns with
the same pipeline as `escalator evaluate` and `escalator replay`, runs the rule tests of
`escalator rules test` and audits with `escalator audit`. Everything the studio uses from
the package below it comes through this module, so a move of those modules changes only
the import lines here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from escalator.decisionlog import log_record
from escalator.errors import PolicyError, Problem
from escalator.model import HANDOFF_URGENCIES, KEEP, KNOWN_CHANNELS, ROUTE, Decision, Turn
from escalator.policy import Check, Policy, PolicyHolder, check_policy, load_policy, vocabulary_of
from escalator.ruleset.catalogue import CONTEXT_PREFIX, EXPLANATIONS, FACTS, FactSpec, lookup
from escalator.ruleset.conditions import (
    AllOf,
    AnyOf,
    Condition,
    Leaf,
    Not,
    truth_from,
    truth_when,
)
from escalator.ruleset.floor import FLOOR_MAX_FALLBACK_STREAK
from escalator.ruleset.folder import LEXICON_FOLDER, RulesFolder, read_folder
from escalator.ruleset.model import MAX_PRIORITY, Rule, RuleSet
from escalator.ruleset.previous import (
    Identity,
    compare,
    folder_identity,
    next_version,
    read_identity,
)
from escalator.ruleset.schema import RULE_ID_PATTERN
from escalator.ruleset.typecheck import OPERATORS_BY_TYPE
from escalator.ruleset.vocabulary import Vocabulary
from escalator.ruleset.yamlfile import LineDict, load_yaml
from escalator.tools.audit import (
    BANDS,
    DIMENSIONS,
    DISPARITY,
    FOUR_FIFTHS,
    NO_DISPARITY,
    TOO_LITTLE_DATA,
    AuditResult,
    Comparison,
    Disparity,
    audit,
)
from escalator.tools.replay import (
    Change,
    CorpusError,
    RulesetSummary,
    count_lines,
    first_change,
    read_corpus,
)
from escalator.tools.ruletests import Report, RuleTest, load_rule_tests, run_rule_tests
from escalator.tools.transcripts import (
    Transcript,
    TranscriptError,
    decide_transcript,
    parse_transcript,
    parse_turns,
)

__all__ = [
    "BANDS",
    "CONTEXT_PREFIX",
    "DIMENSIONS",
    "DISPARITY",
    "EXPLANATIONS",
    "FACTS",
    "FLOOR_MAX_FALLBACK_STREAK",
    "FOUR_FIFTHS",
    "HANDOFF_URGENCIES",
    "KEEP",
    "KNOWN_CHANNELS",
    "LEXICON_FOLDER",
    "MAX_PRIORITY",
    "NO_DISPARITY",
    "OPERATORS_BY_TYPE",
    "ROUTE",
    "RULE_ID_PATTERN",
    "TOO_LITTLE_DATA",
    "AllOf",
    "AnyOf",
    "AuditResult",
    "Change",
    "Check",
    "Comparison",
    "Condition",
    "CorpusError",
    "Decision",
    "Disparity",
    "FactSpec",
    "Identity",
    "Leaf",
    "LineDict",
    "Not",
    "Policy",
    "PolicyError",
    "PolicyHolder",
    "Problem",
    "Report",
    "Rule",
    "RuleSet",
    "RuleTest",
    "RulesFolder",
    "RulesetSummary",
    "Transcript",
    "TranscriptError",
    "Turn",
    "Vocabulary",
    "audit",
    "check_folder",
    "compare",
    "count_lines",
    "decide_transcript",
    "first_change",
    "floor_roles",
    "folder_identity",
    "load_policy",
    "load_rule_tests",
    "load_yaml",
    "log_record",
    "lookup",
    "merged_folder",
    "next_version",
    "parse_transcript",
    "parse_turns",
    "read_corpus",
    "read_folder",
    "run_rule_tests",
    "vocabulary_of",
]


def check_folder(folder: RulesFolder, before: Identity | None = None,
                 lexicons_from: Policy | None = None) -> Check:
    """Check a read of a rules folder exactly as `escalator rules check` does, with the
    version warning against `before` (the rule set it replaces).

    `lexicons_from`: a policy whose lexicons are the folder's own (parsing lexicons is most
    of a check's time, and the studio never edits them)."""
    extra: list[Problem] = []
    if before is not None:
        _, extra = compare(read_identity(folder), before)
    check = check_policy(folder, lexicons_from.lexicons if lexicons_from else None)
    return replace(check, warnings=[*check.warnings, *extra])


def floor_roles(rule: Rule) -> tuple[str, ...]:
    """Which part of the floor a rule holds up, in the loader's own terms: it certainly
    routes an explicit request for a person, and/or it certainly caps bot failures."""
    if rule.then.decision != ROUTE:
        return ()
    roles = []
    if truth_when(rule.when, "requested_human", True) is True:
        roles.append("request")
    if all(truth is True for _, truth in
           truth_from(rule.when, "loop.fallback_streak", FLOOR_MAX_FALLBACK_STREAK)):
        roles.append("failures")
    return tuple(roles)


def merged_folder(path: Path, saved: RulesFolder, edits: Mapping[str, bytes | None]
                  ) -> RulesFolder:
    """The saved read of a folder with some rule files replaced, added (bytes) or removed
    (None), as a read of `path`: what saving these edits would leave there."""
    files = dict(saved.files)
    for name, data in edits.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    return RulesFolder(path, files, saved.refused, saved.atomic)

