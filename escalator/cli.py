"""The `escalator` command: serve the API, and check rule sets, with the service's own code."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


@click.group()
@click.version_option(package_name="escalator")
def main() -> None:
    """Escalation decisions for chatbot conversations."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run the service under gunicorn."""
    # Multiprocess metrics need the directory set before prometheus_client is imported,
    # so the app modules are imported only after this (see docs/notes on operations).
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="escalator-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    # The master imports the app (preload) before gunicorn's on_starting hook runs, and
    # prometheus_client writes its files at import: the folder must exist already.
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

    import logging

    from escalator import logs
    from escalator.app import create_app
    from escalator.config import Config, ConfigError
    from escalator.errors import PolicyError
    from escalator.http import inline
    from escalator.services import EXTENSION
    from escalator.state.embedded import start_embedded

    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"refusing to start: {exc}") from exc
    logs.configure(config.log_level)

    embedded = None
    if config.redis_url is None:
        # One embedded Redis for all workers: started here, before the fork.
        embedded = start_embedded(config.embedded_redis_dir)
        config = dataclasses.replace(config, redis_url=embedded.url)
        logging.getLogger("escalator.serve").info(
            "embedded Redis at %s (set ESCALATOR_REDIS_URL for a real one)", embedded.url)
    master = os.getpid()
    # The inline evaluation slots folder of an earlier instance that was killed.
    inline.clean_stale(master)
    own_run_dir = None
    if config.handoff_cache is None:
        # The workers' shared handoff cache: a fresh folder of this run, removed at exit.
        own_run_dir = tempfile.mkdtemp(prefix="escalator-run-")
        config = dataclasses.replace(config,
                                     handoff_cache=Path(own_run_dir) / "handoffs.sqlite")
    app = None
    try:
        try:
            # The app (and its rules) is built and checked once, here in the master; the
            # gunicorn workers are forked from it (preload_app). A bad rule set stops here.
            app = create_app(config, start_reloader=False)
        except (ConfigError, PolicyError) as exc:
            raise click.ClickException(f"refusing to start: {exc}") from exc
        _run_gunicorn(app, host, port, workers, config.log_level)
    finally:
        # Workers are forks of this process and leave through this same frame: only the
        # master may remove what the master set up.
        if os.getpid() == master:
            if app is not None:
                app.extensions[EXTENSION].inline.close()
            if embedded is not None:
                embedded.shutdown()
            if own_metrics_dir is not None:
                shutil.rmtree(own_metrics_dir, ignore_errors=True)
            if own_run_dir is not None:
                shutil.rmtree(own_run_dir, ignore_errors=True)


def _run_gunicorn(app: Any, host: str, port: int, workers: int, log_level: str) -> None:
    import signal

    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    from escalator.serving import gunicorn_config

    class ReloadingArbiter(Arbiter):  # type: ignore[misc]
        """SIGHUP reloads the rules in every worker instead of restarting them: a
        restarted worker with a broken rule set would fail to boot, and the service
        would stop; a reload in place refuses the broken set and keeps serving."""

        def handle_hup(self) -> None:
            self.log.info("SIGHUP: asking %d worker(s) to reload the rules", len(self.WORKERS))
            for pid in list(self.WORKERS):
                with contextlib.suppress(ProcessLookupError):  # a worker just exited
                    os.kill(pid, signal.SIGHUP)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name in gunicorn_config.SETTINGS:
                if name in self.cfg.settings:  # an older gunicorn lacks the newest ones
                    self.cfg.set(name, getattr(gunicorn_config, name))
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("loglevel", log_level.lower())  # gunicorn's lines follow ours

        def load(self) -> Any:
            # Polling starts in each worker (post_worker_init): threads do not survive
            # the fork from the master, where the app was built.
            return app

        def run(self) -> None:
            ReloadingArbiter(self).run()

    Server().run()


@main.group()
def rules() -> None:
    """Work with rule sets."""


def _load_or_exit(folder: Path, extra_warnings: Sequence[Any] = ()) -> Any:
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
        _print_warnings([*exc.warnings, *extra_warnings])
        click.echo(f"{len(exc.problems)} problem(s) in {folder}", err=True)
        sys.exit(1)
    _print_warnings([*policy.ruleset.warnings, *extra_warnings])
    return policy


def _print_warnings(warnings: Sequence[Any]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _rules_folder(directory: Path | None) -> Path:
    """DIRECTORY, or the configured rule set (a bad setting: its message and exit 1)."""
    from escalator.config import Config, ConfigError

    if directory is not None:
        return directory
    try:
        return Config.from_env().rules_path
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@rules.command("check")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--against", metavar="DIR|URL",
              help="The rule set this one replaces: a folder, or a running service's URL "
                   "(its GET /v1/ruleset). Default: the folder at git HEAD, in a git checkout.")
@click.option("--api-key", envvar="ESCALATOR_API_KEY", metavar="KEY",
              help="Key for --against URL when the service requires one "
                   "(or ESCALATOR_API_KEY).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (for CI).")
def rules_check(directory: Path | None, against: str | None, api_key: str | None,
                strict: bool) -> None:
    """Validate a rule set (default: the configured one); exit 0 only when it loads
    (and, with --strict, has no warning). Warns when the rules changed since the set
    they replace but the version did not."""
    from escalator.ruleset import previous

    folder = _rules_folder(directory)
    comparison, version_warnings = "", list[Any]()
    try:
        before = _previous_ruleset(folder, against, api_key)
    except previous.PreviousError as exc:
        raise click.ClickException(f"--against: {exc}") from exc
    if before is not None:
        comparison, version_warnings = previous.compare(previous.folder_identity(folder),
                                                        before)
    policy = _load_or_exit(folder, version_warnings)
    ruleset = policy.ruleset
    warnings = len(ruleset.warnings) + len(version_warnings)
    noted = f", {warnings} warning(s)" if warnings else ""
    click.echo(f"ok: {ruleset.name} {ruleset.version} ({len(ruleset.rules)} rules{noted}, "
               f"{ruleset.digest})")
    if comparison:
        click.echo(comparison)
    policy.close()
    sys.exit(1 if strict and warnings else 0)


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

    folder = _rules_folder(directory)
    policy = _load_or_exit(folder)
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


@main.command()
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
    policy = _load_or_exit(_rules_folder(rules_dir))
    decisions = decide_transcript(policy, parsed)
    policy.close()
    click.echo(json.dumps({"conversation_id": parsed.conversation_id,
                           "decisions": [d.to_dict() for d in decisions]}, indent=2))


@main.command()
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The rule set to replay (default: the configured one).")
@click.option("--against", "against_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A second rule set (e.g. the one in production) to compare with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay(corpus: Path, rules_dir: Path | None, against_dir: Path | None,
           as_json: bool) -> None:
    """Replay a CORPUS of transcripts (JSON lines) and report what the rules decide."""
    import json

    from escalator.tools import replay as replaying

    policy = _load_or_exit(_rules_folder(rules_dir))
    against = _load_or_exit(against_dir) if against_dir is not None else None
    total = replaying.count_lines(corpus)
    try:
        with corpus.open(encoding="utf-8") as stream, click.progressbar(
                length=total, label="replaying", file=sys.stderr) as bar:
            result = replaying.replay(replaying.read_corpus(stream, str(corpus)), policy,
                                      against, on_conversation=lambda: bar.update(1))
    except replaying.CorpusError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        policy.close()
        if against is not None:
            against.close()
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json
               else replaying.report(result))


@main.command()
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
