"""`escalator report`: a decision log with its feedback, for a time range, as text, JSON or
a self-contained HTML page (escalator.tools.report does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalator.cli.policy import rules_folder


@click.command()
@click.argument("logs", nargs=-1, required=True)
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The rule set whose thresholds are shown (default: the configured one).")
@click.option("--since", help="Only records from this time on (ISO 8601; no zone is UTC).")
@click.option("--until", help="Only records before this time (ISO 8601).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]),
              default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here instead of standard output.")
@click.option("--skip-bad", is_flag=True,
              help="Skip lines that are not records (counted in the report) instead of "
                   "stopping at the first one.")
@click.option("--join-window", default=250_000, show_default=True, type=click.IntRange(1),
              help="Decisions held for joining feedback that comes after them (memory: "
                   "about 400 bytes each).")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0, 100),
              help="Example decisions per pair of disagreeing rules (shadow rule set).")
def report(logs: tuple[str, ...], rules_dir: Path | None, since: str | None,
           until: str | None, fmt: str, out: Path | None, skip_bad: bool, join_window: int,
           examples: int) -> None:
    """Why conversations were escalated and whether they should have been: read decision
    LOGS (JSON lines as the service writes them, with feedback; *.gz, or - for stdin)."""
    from escalator.errors import PolicyError
    from escalator.tools import report as reporting

    try:
        start = reporting.parse_time(since) if since else None
        end = reporting.parse_time(until) if until else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    folder = rules_folder(rules_dir)
    try:
        ruleset = reporting.load_rules(folder)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    try:
        built = reporting.build(logs, ruleset, since=start, until=end,
                                join_window=join_window, examples=examples,
                                skip_bad=skip_bad)
    except reporting.ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    result = built.result()
    if fmt == "json":
        import json

        body = json.dumps(result, indent=2) + "\n"
    elif fmt == "html":
        from escalator.tools.report_html import page

        body = page(result)
    else:
        body = reporting.text(result)
    if out is None:
        click.echo(body, nl=False)
    else:
        out.write_text(body, encoding="utf-8")
        click.echo(f"report written to {out}", err=True)
