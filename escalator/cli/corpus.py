"""`escalator corpus convert`: conversations from a data set's own format into a corpus
`escalator replay` and the studio read (escalator.tools.corpus does the work)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

FORMATS = ("betold", "dfrustration", "stc3", "twcc")  # escalator.tools.corpus.FORMATS


@click.group()
def corpus() -> None:
    """Make corpora of conversations to replay."""


@corpus.command("convert")
@click.argument("source", metavar="INPUT", type=click.Path(dir_okay=True, allow_dash=True))
@click.option("--from", "form", required=True, type=click.Choice(FORMATS),
              help="The input's format: twcc (JSON), dfrustration (text), stc3 (JSON) or "
                   "betold (JSON, intents only).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True,
              help="The corpus to write (JSON lines); - for standard output. Written only "
                   "when the whole input converts.")
def corpus_convert(source: str, form: str, output: str) -> None:
    """Convert the conversations of INPUT (a file; - for standard input) into a corpus:
    one transcript per line, the customer's turns only, no labels. The input is read one
    conversation at a time. A bad input prints error[CODE] and exits 1."""
    from escalator.tools.corpus import CorpusInputError, convert, write_corpus

    try:
        with _input(source) as stream, _output(output) as out:
            written = write_corpus(convert(form, stream, source), out)
    except CorpusInputError as exc:
        click.echo(f"error[{exc.code}]: {exc}", err=True)
        sys.exit(1)
    where = "standard output" if output == "-" else output
    click.echo(f"{written} conversations written to {where}", err=True)


@contextlib.contextmanager
def _input(source: str) -> Iterator[IO[bytes]]:
    """The input as bytes; an input that cannot be opened is a CorpusInputError."""
    from escalator.tools.corpus import CorpusInputError

    if source == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(source, "rb")  # noqa: SIM115 (closed below, after the with's body)
    except OSError as exc:
        raise CorpusInputError("file_unreadable", source,
                               f"cannot be read ({exc.strerror or exc})") from exc
    with stream:
        yield stream


@contextlib.contextmanager
def _output(output: str) -> Iterator[IO[str]]:
    """Standard output, or a temporary file beside OUTPUT renamed to it only when the
    conversion succeeded (a failed one leaves OUTPUT as it was)."""
    if output == "-":
        yield sys.stdout
        return
    target = Path(output)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot be written ({exc.strerror or exc})"
                                   ) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yield out
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
