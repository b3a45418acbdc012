"""Reading log files: opening one (standard input, gzip), a report over several, and the
rule set whose thresholds are shown."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from escalator.ruleset.model import RuleSet
from escalator.tools.report.accumulator import Report
from escalator.tools.report.errors import ReportError


@contextmanager
def open_log(name: str) -> Iterator[IO[bytes]]:
    """A log file as bytes: '-' is standard input, *.gz is decompressed."""
    if name == "-":
        yield sys.stdin.buffer
        return
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ReportError("log_unreadable", f"{name}: {exc.strerror or exc}") from exc
    try:
        if name.endswith(".gz"):
            with gzip.open(raw, "rb") as unzipped:
                yield io.BufferedReader(unzipped, 1 << 20)
        else:
            yield raw
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise ReportError("log_unreadable", f"{name}: {exc}") from exc
    finally:
        raw.close()


def build(names: Iterable[str], ruleset: RuleSet | None = None, **options: Any) -> Report:
    """A report over these log files (in order)."""
    report = Report(ruleset, **options)
    for name in names:
        with open_log(name) as stream:
            report.read(stream, name)
    return report


def load_rules(folder: Path) -> RuleSet:
    """The rule set whose thresholds are shown (loaded and checked, never compiled)."""
    from escalator.ruleset.loader import load_ruleset

    return load_ruleset(folder)
