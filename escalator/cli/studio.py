"""`escalator studio`: the policy studio on 127.0.0.1, over a rules folder (escalator.studio
does the work)."""

from __future__ import annotations

from pathlib import Path

import click

from escalator.cli.policy import rules_folder


@click.command()
@click.argument("rules_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--corpus", "corpora", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Conversations to replay (JSON lines, as escalator replay reads); repeatable.")
@click.option("--log", "logs", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A decision log to report on (JSON lines, as escalator report reads); "
                   "repeatable.")
@click.option("--port", default=0, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def studio(rules_dir: Path | None, corpora: tuple[Path, ...], logs: tuple[Path, ...],
           port: int, no_browser: bool) -> None:
    """Open the policy studio on 127.0.0.1: read, change, try, replay and audit the rules
    of RULES_DIR (written only when you save)."""
    from escalator.studio.server import serve_local

    serve_local(rules_folder(rules_dir), list(corpora), port, open_browser=not no_browser,
                logs=list(logs))
