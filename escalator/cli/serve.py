"""`escalator serve`: run the service under gunicorn (escalator.serving.run does the work)."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run the service under gunicorn."""
    # Imported here: nothing that imports prometheus_client may be imported before serve
    # has set PROMETHEUS_MULTIPROC_DIR (escalator.serving.run imports none at module level).
    from escalator.serving import run

    try:
        run.serve(host, port, workers)
    except run.RefusedToStart as exc:
        raise click.ClickException(f"refusing to start: {exc}") from exc
