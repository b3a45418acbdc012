"""What the commands that read a rule set share: which folder, and its policy loaded (its
warnings printed) or every problem printed with exit status 1."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


def load_or_exit(folder: Path, extra_warnings: Sequence[Any] = ()) -> Any:
    """The compiled policy of FOLDER (its warnings printed), or every problem and warning
    printed and exit status 1."""
    from escalator.errors import PolicyError
    from escalator.policy import load_policy

    try:
        policy = load_policy(folder)
    except PolicyError as exc:
        # By file and line, whatever check found them (what is not at a line comes last).
        for problem in sorted(exc.problems, key=lambda p: (p.file, p.line is None,
                                                           p.line or 0)):
            click.echo(str(problem), err=True)
        print_warnings([*exc.warnings, *extra_warnings])
        click.echo(f"{len(exc.problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    print_warnings([*policy.ruleset.warnings, *extra_warnings])
    return policy


def print_warnings(warnings: Sequence[Any]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def rules_folder(directory: Path | None) -> Path:
    """DIRECTORY, or the configured rule set (a bad setting: its message and exit 1)."""
    from escalator.config import Config, ConfigError

    if directory is not None:
        return directory
    try:
        return Config.from_env().rules_path
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
