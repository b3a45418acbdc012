"""`escalator fit frustration|breakdown`: rebuild a fitted layer's weights from data sets."""

from __future__ import annotations

from pathlib import Path

import click

from escalator.cli.policy import rules_folder


@click.command()
@click.argument("model", type=click.Choice(["frustration", "breakdown"]))
@click.option("--data", "data", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The folder of the data sets (e.g. ../shared/data).")
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Rule set whose lexicons compute the features (default: the configured "
                   "one).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the weights file here (e.g. rules/lexicons/fitted_frustration.yaml);"
                   " without it the file is printed and the report goes to stderr.")
def fit(model: str, data: Path, rules_dir: Path | None, out: Path | None) -> None:
    """Fit MODEL's weights by nested cross-validation and report how well they do."""
    from escalator.errors import PolicyError
    from escalator.scoring.lexicons import FITTED_FILES, load_lexicons
    from escalator.tools import fit as fitting

    folder = rules_folder(rules_dir)
    try:
        lexicons = load_lexicons(folder / "lexicons", fitted=False)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    # The command as recorded in the file: the project's own, wherever it was run from.
    command = (f"escalator fit {model} --data ../shared/data "
               f"--out rules/lexicons/{FITTED_FILES[model]}")
    try:
        outcome = fitting.run(model, data, lexicons, command)
    except fitting.FitError as exc:
        raise click.ClickException(str(exc)) from exc
    fitting.write(outcome, out)
    click.echo(outcome.report, err=out is None)
    if out is not None:
        click.echo(f"wrote {out}")
