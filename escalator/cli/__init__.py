"""The `escalator` command: serve the API, and work with rule sets with the service's own code.

One module per group of commands: serve.py, rules.py (check, test), tools.py (evaluate,
replay, audit), corpus.py (corpus convert), report.py (a decision log's report), fit.py
(the fitted layers' weights), studio.py (the policy studio); policy.py is what those reading
a rule set share. Commands import what they use when they run, so `escalator --help` stays
fast and `serve` can set up metrics first.
"""

from __future__ import annotations

import click

from escalator.cli import corpus, fit, report, rules, serve, studio, tools


@click.group()
@click.version_option(package_name="escalator")
def main() -> None:
    """Escalation decisions for chatbot conversations."""


main.add_command(serve.serve)
main.add_command(rules.rules)
for command in (tools.evaluate, tools.replay, tools.audit):
    main.add_command(command)
main.add_command(corpus.corpus)
main.add_command(studio.studio)
main.add_command(report.report)
main.add_command(fit.fit)
