"""The offline tools: `escalator evaluate` (a dry run of one transcript), `escalator replay`
(a corpus through one rule set or two) and `escalator audit` (a decision log by segment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from escalator.cli.policy import load_or_exit, rules_folder


@click.command()
@click.argument("transcript", type=click.File("r", encoding="utf-8"))
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Rule set folder (default: the configured one).")
def evaluate(transcript: Any, rules_dir: Path | None) -> None:
    """Decide every turn of a TRANSCRIPT (JSON; - for stdin) without touching any state."""
    import json

    from escalator.tools.transcripts import TranscriptError, decide_transcript, parse_transcript

    try:
        parsed = parse_transcript(json.load(transcript))
    except (ValueError, TranscriptError) as exc:
        details = getattr(exc, "details", None)
        raise click.ClickException(f"{exc}{' ' + json.dumps(details) if details else ''}") \
            from exc
    policy = load_or_exit(rules_folder(rules_dir))
    decisions = decide_transcript(policy, parsed)
    policy.close()
    click.echo(json.dumps({"conversation_id": parsed.conversation_id,
                           "decisions": [d.to_dict() for d in decisions]}, indent=2))


@click.command()
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The rule set to replay (default: the configured one).")
@click.option("--against", "against_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A second rule set (e.g. the one in production) to compare with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Processes deciding conversations (default: the machine's cores). The "
                   "result is the same for any number.")
@click.option("--decision-log", "decision_log", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the decisions of --rules to this file as the service's decision "
                   "log records (for escalator report), in corpus order.")
def replay(corpus: Path, rules_dir: Path | None, against_dir: Path | None,
           as_json: bool, jobs: int | None, decision_log: Path | None) -> None:
    """Replay a CORPUS of transcripts (JSON lines) and report what the rules decide."""
    import json

    from escalator.decisionlog import FileLog
    from escalator.tools import replay as replaying

    rules = rules_folder(rules_dir)
    # Checked here, with every problem and warning printed; each job loads its own copy.
    load_or_exit(rules).close()
    if against_dir is not None:
        load_or_exit(against_dir).close()
    jobs = jobs or replaying.default_jobs()
    log = FileLog(str(decision_log)) if decision_log is not None else None
    try:
        with corpus.open("rb") as stream:
            if sys.stderr.isatty():  # a progress bar on a terminal, nothing in a log
                with click.progressbar(length=corpus.stat().st_size, label="replaying",
                                       file=sys.stderr) as bar:
                    result = replaying.replay_corpus(stream, rules, against_dir, jobs=jobs,
                                                     source=str(corpus),
                                                     on_bytes=bar.update, decision_log=log)
            else:
                result = replaying.replay_corpus(stream, rules, against_dir, jobs=jobs,
                                                 source=str(corpus), decision_log=log)
    except replaying.CorpusError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if log is not None:
            log.close()
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json
               else replaying.report(result))


@click.command()
@click.argument("log", type=click.File("r", encoding="utf-8"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--min-count", default=30, show_default=True, type=click.IntRange(1),
              help="Segments with fewer decisions in a band are not compared.")
def audit(log: Any, as_json: bool, min_count: int) -> None:
    """Route-to-human rates by channel, language and tier in a decision LOG, and disparities."""
    import json

    from escalator.tools import audit as auditing

    try:
        result = auditing.audit(auditing.read_log(log, log.name), min_count=min_count)
    except auditing.AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else auditing.report(result))
