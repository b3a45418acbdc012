"""Read a rules folder into a validated, type-checked RuleSet, or refuse it with every problem.

A rule set is a folder: every `*.yaml` directly in it is a rule file (`lexicons/` and
`tests/` belong to the scorers and to `escalator rules test`). The loader checks the shape
of each file (escalator.ruleset.schema), the type of every comparison against the facts
catalogue (typecheck), the budget, and the floor (a way out always exists). All problems
are reported at once, each with the file, line and rule id, in words a policy owner can
act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from escalator.errors import PolicyError, Problem
from escalator.model import HANDOFF_URGENCIES, KEEP, ROUTE
from escalator.ruleset.budget import budget_problems
from escalator.ruleset.conditions import Condition
from escalator.ruleset.floor import floor_problems
from escalator.ruleset.folder import RulesFolder, read_folder
from escalator.ruleset.messages import BUILTIN_HANDOFF_MESSAGE, FALLBACK_LANGUAGE, Messages
from escalator.ruleset.model import Outcome, Rule, RuleSet
from escalator.ruleset.problems import validation_problems
from escalator.ruleset.schema import OLD_URGENCY, RuleFileSchema, RuleSchema
from escalator.ruleset.typecheck import Where, parse_condition
from escalator.ruleset.vocabulary import Vocabulary, vocabulary_problems
from escalator.ruleset.yamlfile import key_line, load_yaml


@dataclass
class _Header:
    """`ruleset`, `version` and `default`, each declared once (or identically) across files."""

    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def declare(self, key: str, value: Any, file: str, line: int | None,
                problems: list[Problem]) -> None:
        if key not in self.values:
            self.values[key] = value
            self.where[key] = (file, line)
        elif self.values[key] != value:
            first_file, first_line = self.where[key]
            at = f"{first_file} line {first_line}" if first_line else first_file
            problems.append(Problem(file, line, f"'{key}' is declared differently in {at}; "
                                                "declare it once for the whole rule set",
                                    code="duplicate"))


def load_ruleset(source: Path | RulesFolder, vocabulary: Vocabulary | None = None
                 ) -> RuleSet:
    """Load and validate every rule file in a folder (or in a read of one); PolicyError
    lists all problems.

    With `vocabulary` (the lexicons' labels), labels no turn can carry are refused too.
    """
    folder = source if isinstance(source, RulesFolder) else read_folder(Path(source))
    directory = folder.path
    if not directory.is_dir():
        raise PolicyError([Problem(str(directory), None,
                                   "is not a folder of rule files (*.yaml)",
                                   code="file_unreadable")])
    problems: list[Problem] = folder.problems()
    files = folder.rule_files()
    if not files and not any(p.file == str(directory) for p in problems):
        problems.append(Problem(str(directory), None, "there are no rule files (*.yaml) here",
                                code="file_missing"))
    if not files:
        raise PolicyError(problems)

    header = _Header()
    rules: list[Rule] = []
    deprecated: list[Problem] = []
    # Where each customer message is written (for warnings): "default",
    # "handoff_in_progress" or a rule id -> (file, line).
    message_lines: dict[str, tuple[str, int | None]] = {}
    first_use: dict[str, Rule] = {}
    # A rule file refused unread may hold the rule the floor is missing.
    unreadable = sum(1 for p in problems if p.file.endswith(".yaml"))
    for name in files:
        try:
            document = load_yaml(folder.files[name], display_name=name)
        except PolicyError as exc:
            problems.extend(exc.problems)
            unreadable += 1
            continue
        if document is None:
            problems.append(Problem(name, None, "the file is empty", code="schema"))
            continue
        if not isinstance(document, dict):
            problems.append(Problem(name, getattr(document, "line", 1),
                                    "a rule file must be a mapping with ruleset, version, "
                                    "default and rules", code="schema"))
            unreadable += 1
            continue
        try:
            top = RuleFileSchema().load(document)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, document, name, schema=RuleFileSchema))
            top = _valid_part(document, exc)
            unreadable += 1 if "rules" in exc.messages else 0
        if "default" in top:
            deprecated.extend(_old_urgency(document.get("default"), "default", name, None))
        for key in ("ruleset", "version", "default_language", "default", "handoff_in_progress"):
            if key in top:
                value = (Outcome(**top[key]) if key == "default"
                         else top[key]["customer_message"] if key == "handoff_in_progress"
                         else top[key])
                header.declare(key, value, name, key_line(document, key), problems)
                if key in ("default", "handoff_in_progress"):
                    message_lines[key] = (name, key_line(document.get(key),
                                                          "customer_message"))
        for raw in top.get("rules") or []:
            rule = _parse_rule(raw, name, document, problems, deprecated)
            if rule is not None and rule.then.customer_message is not None:
                message_lines.setdefault(rule.id, (name, key_line(raw.get("then"),
                                                                   "customer_message")))
            if rule is None:
                unreadable += 1
                continue
            earlier = first_use.get(rule.id)
            if earlier is not None:
                problems.append(Problem(name, rule.line,
                                        f"the rule id '{rule.id}' is already used in "
                                        f"{earlier.file} line {earlier.line}; ids must be unique "
                                        "across the rule set", rule=rule.id,
                                        code="duplicate"))
                continue
            first_use[rule.id] = rule
            rules.append(rule)

    first = files[0]
    for key, example in (("ruleset", "ruleset: default"), ("version", 'version: "2026.11.1"'),
                         ("default", "default: {decision: keep_with_bot, queue: support, "
                                     "urgency: normal, customer_message: ...}")):
        if key not in header.values:
            problems.append(Problem(first, None, f"no file declares '{key}'; add e.g. {example}",
                                    code="schema"))
    # Plain-text messages are in the rule set's language, known only now.
    language: str = header.values.get("default_language", FALLBACK_LANGUAGE)
    rules = [_resolved(rule, language) for rule in rules]
    default: Outcome | None = header.values.get("default")
    if default is not None and default.customer_message is not None:
        default = replace(default, customer_message=default.customer_message.resolved(language))
    in_progress: Messages | None = header.values.get("handoff_in_progress")
    if in_progress is not None:
        in_progress = in_progress.resolved(language)
    coverage = _language_coverage(rules, default, in_progress, message_lines)
    if default is not None:
        default = _with_builtin_handoff(default)
    floor_file = header.where.get("ruleset", (first, None))[0]
    problems.extend(budget_problems(rules, floor_file))
    problems.extend(floor_problems(rules, floor_file, unreadable))
    label_problems, label_warnings = vocabulary_problems(rules, vocabulary)
    problems.extend(label_problems)
    warnings = [*deprecated, *coverage, *label_warnings]
    if problems:
        raise PolicyError(problems, warnings)
    assert default is not None
    return RuleSet(
        name=header.values["ruleset"],
        version=header.values["version"],
        digest=folder.digest,
        default=default,
        rules=tuple(rules),
        source=directory.resolve(),
        warnings=tuple(warnings),
        language=language,
        in_progress=in_progress,
    )


def _resolved(rule: Rule, language: str) -> Rule:
    """The rule with a plain-text message given the rule set's language."""
    messages = rule.then.customer_message
    if messages is None:
        return rule
    return replace(rule, then=replace(rule.then, customer_message=messages.resolved(language)))


def _language_coverage(rules: list[Rule], default: Outcome | None, in_progress: Messages | None,
                       lines: dict[str, tuple[str, int | None]]) -> list[Problem]:
    """Warnings for the customer messages that lack a language some other message of the
    rule set has: a customer writing it gets another message than the one meant."""
    written: list[tuple[str, str, Messages, str | None]] = []
    if default is not None and default.customer_message is not None:
        written.append(("default", "default.customer_message", default.customer_message, None))
    if in_progress is not None:
        written.append(("handoff_in_progress", "handoff_in_progress.customer_message",
                        in_progress, None))
    written += [(rule.id, "then.customer_message", rule.then.customer_message, rule.id)
                for rule in rules
                if rule.then.decision == ROUTE and rule.then.customer_message is not None]
    covered = frozenset().union(*(messages.languages for _, _, messages, _ in written))
    warnings: list[Problem] = []
    for key, what, messages, rule in written:
        missing = sorted(covered - messages.languages)
        if not missing:
            continue
        file, line = lines.get(key, ("", None))
        warnings.append(Problem(
            file, line, f"'{what}' has no text in {', '.join(missing)}, which other messages "
            "of the rule set have; a customer writing one of them is told another message in "
            "their language (the default's, else a built-in one), or this one only where "
            "there is none", rule=rule, code="missing_language"))
    return warnings


def _valid_part(document: dict[str, Any], error: ValidationError) -> dict[str, Any]:
    """The top-level keys that passed validation, so the rest of the file is still checked."""
    bad = set(error.messages) if isinstance(error.messages, dict) else set(document)
    valid = error.valid_data if isinstance(error.valid_data, dict) else {}
    return {k: v for k, v in valid.items() if k not in bad}


def _old_urgency(outcome: Any, where: str, file: str, rule: str | None) -> list[Problem]:
    """A warning if `then` or `default` still writes the urgency as `priority`."""
    if not isinstance(outcome, dict) or OLD_URGENCY not in outcome or "urgency" in outcome:
        return []
    value = outcome[OLD_URGENCY]
    example = value if value in HANDOFF_URGENCIES else "high"
    return [Problem(file, key_line(outcome, OLD_URGENCY),
                    f"'{where}.priority' is the old name of 'urgency' (how urgently a person "
                    f"should take the handoff); write 'urgency: {example}'. A rule's own "
                    "'priority' is something else: its rank among the rules, a number",
                    rule=rule, code="old_name")]


def _parse_rule(raw: Any, file: str, document: Any, problems: list[Problem],
                deprecated: list[Problem]) -> Rule | None:
    """One rule, or None after recording its problems.

    A rule with problems outside what decides when and how it acts (its description, a
    queue on a keep_with_bot rule) is still returned, with its problems recorded: the
    floor check must see it, or a floor violation would show only once those are fixed.
    """
    line = getattr(raw, "line", None) or key_line(document, "rules")
    if not isinstance(raw, dict):
        problems.append(Problem(file, line, "each entry under 'rules' must be a rule "
                                            "(id, description, priority, when, then)",
                                code="schema"))
        return None
    rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    ok = True
    try:
        data = RuleSchema().load(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, raw, file, schema=RuleSchema, rule=rule_id))
        data = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        ok = False
    where = Where(file, rule_id, problems)
    when: Condition | None = None
    if "when" in raw:
        when = parse_condition(raw["when"], where, key_line(raw, "when"))
    then = data.get("then")
    written = raw["then"] if isinstance(raw.get("then"), dict) else {}
    if then is not None and then.get("decision") == KEEP:
        for key in ("queue", "urgency", OLD_URGENCY, "customer_message"):
            if key in written:
                where.add(key_line(raw.get("then"), key),
                          f"a keep_with_bot rule does not hand over, so '{key}' has no effect; "
                          "remove it", code="no_effect")
                ok = False
    else:
        deprecated.extend(_old_urgency(written, "then", file, rule_id))
    if when is None:
        return None
    assert line is not None
    if ok:
        return Rule(id=data["id"], description=data["description"], priority=data["priority"],
                    when=when, then=Outcome(**then), file=file, line=line)
    # Enough of it for the floor check (the set is refused anyway: problems were recorded).
    decision = raw["then"].get("decision") if isinstance(raw.get("then"), dict) else None
    priority = data.get("priority")
    if rule_id is None or priority is None or decision not in (ROUTE, KEEP):
        return None
    return Rule(id=rule_id, description=data.get("description", ""), priority=priority,
                when=when, then=Outcome(decision), file=file, line=line)


# What a handoff says when neither the rule nor the set's default does: every route to a
# person names a queue and an urgency and gives the bot a sentence to say (every decision
# explains itself, to the customer too), without making a policy owner spell them out in
# every rule.
BUILTIN_HANDOFF = Outcome(ROUTE, queue="support", urgency="normal",
                          customer_message=BUILTIN_HANDOFF_MESSAGE)


def _with_builtin_handoff(default: Outcome) -> Outcome:
    """The default with the built-in queue, urgency and customer message filled in."""
    return replace(
        default,
        queue=default.queue or BUILTIN_HANDOFF.queue,
        urgency=default.urgency or BUILTIN_HANDOFF.urgency,
        customer_message=default.customer_message or BUILTIN_HANDOFF.customer_message,
    )
