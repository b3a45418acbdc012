"""`escalator rules check`, `escalator rules test` and `escalator rules facts`: a rule set
checked as the service would load it, run against the rule tests beside it, and the facts
rules can test."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from escalator.cli.policy import load_or_exit, rules_folder


@click.group()
def rules() -> None:
    """Work with rule sets."""


@rules.command("check")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--against", metavar="DIR|URL",
              help="The rule set this one replaces: a folder, or a running service's URL "
                   "(its GET /v1/ruleset). Default: the folder at git HEAD, in a git checkout.")
@click.option("--api-key", envvar="ESCALATOR_API_KEY", metavar="KEY",
              help="Key for --against URL when the service requires one "
                   "(or ESCALATOR_API_KEY).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (for CI).")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="json: one JSON document on stdout, every problem with its code, "
                   "severity, file, line and rule (for editors and CI).")
def rules_check(directory: Path | None, against: str | None, api_key: str | None,
                strict: bool, output: str) -> None:
    """Validate a rule set (default: the configured one); exit 0 only when it loads
    (and, with --strict, has no warning). Warns when the rules changed since the set
    they replace but the version did not."""
    from escalator.policy import check_policy, named_inside
    from escalator.ruleset import previous

    folder = rules_folder(directory)
    comparison, version_warnings = "", list[Any]()
    try:
        before = _previous_ruleset(folder, against, api_key)
    except previous.PreviousError as exc:
        raise click.ClickException(f"--against: {exc}") from exc
    if before is not None:
        comparison, version_warnings = previous.compare(previous.folder_identity(folder),
                                                        before)
    if output == "json":
        check = check_policy(folder)
        found = named_inside([*check.found(), *version_warnings], folder)
        click.echo(json.dumps(_check_document(folder, check.policy, found, comparison),
                              indent=2, ensure_ascii=False))
        if check.policy is not None:
            check.policy.close()
        errors = len(check.problems)
        sys.exit(1 if errors or (strict and len(found) > errors) else 0)
    policy = load_or_exit(folder, version_warnings)
    ruleset = policy.ruleset
    warnings = len(ruleset.warnings) + len(version_warnings)
    noted = f", {warnings} warning(s)" if warnings else ""
    click.echo(f"ok: {ruleset.name} {ruleset.version} ({len(ruleset.rules)} rules{noted}, "
               f"{ruleset.digest})")
    if comparison:
        click.echo(comparison)
    policy.close()
    sys.exit(1 if strict and warnings else 0)


def _check_document(folder: Path, policy: Any, found: list[Any], comparison: str
                    ) -> dict[str, Any]:
    """What `rules check --format json` prints: whether the rule set loads, which one it
    is, and every problem (errors first, then warnings)."""
    ruleset = policy.ruleset if policy is not None else None
    return {
        "ok": policy is not None,
        "folder": str(folder),
        "ruleset": None if ruleset is None else {
            "name": ruleset.name, "version": ruleset.version, "digest": ruleset.digest,
            "rules": len(ruleset.rules)},
        "comparison": comparison or None,
        "errors": sum(1 for p in found if p.severity == "error"),
        "warnings": sum(1 for p in found if p.severity == "warning"),
        "problems": [p.to_dict() for p in found],
    }


def _previous_ruleset(folder: Path, against: str | None, api_key: str | None) -> Any:
    """The Identity of the rule set FOLDER replaces, or None when there is nothing to
    compare with (not a git checkout, nothing committed yet)."""
    from escalator.ruleset import previous

    if against is None:
        return previous.git_head_identity(folder) if folder.is_dir() else None
    if against.startswith(("http://", "https://")):
        return previous.service_identity(against, api_key)
    path = Path(against)
    if not path.is_dir():
        raise previous.PreviousError(f"{against} is neither a rules folder nor an http(s) URL")
    return previous.folder_identity(path)


@rules.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def rules_test(directory: Path | None) -> None:
    """Run the rule tests in DIRECTORY/tests/*.yaml; exit 0 only when all pass."""
    from escalator.errors import PolicyError
    from escalator.tools.ruletests import load_rule_tests, run_rule_tests

    folder = rules_folder(directory)
    policy = load_or_exit(folder)
    try:
        ruleset = policy.ruleset
        queues = [ruleset.default.queue or "", *(r.then.queue or "" for r in ruleset.rules)]
        tests = load_rule_tests(folder, [rule.id for rule in ruleset.rules],
                                [queue for queue in queues if queue])
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    if not tests:
        click.echo(f"no rule tests in {folder}/tests", err=True)
        sys.exit(1)
    report = run_rule_tests(policy, tests)
    policy.close()
    for failure in report.failures:
        click.echo(failure.explain())
    click.echo(report.coverage())
    click.echo(report.summary())
    sys.exit(1 if report.failures else 0)


@rules.command("facts")
def rules_facts() -> None:
    """Print the facts rules can test, with their types and meanings, as Markdown (the
    page docs/policy/facts.md is this output)."""
    from escalator.ruleset.catalogue import facts_markdown

    click.echo(facts_markdown(), nl=False)
