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
    from escalator.policy import check_policy

    check = check_policy(folder)
    for problem in check.found():
        prefix = "warning: " if problem.severity == "warning" else ""
        click.echo(f"{prefix}{problem}", err=True)
    print_warnings(extra_warnings)
    if check.policy is None:
        click.echo(f"{len(check.problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    return check.policy


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
