"""The report page: `escalator report` over a decision log the studio was opened with
(`escalator studio RULES --log FILE`), with the thresholds of the rules shown, or how to
make one from the command line."""

from __future__ import annotations

from flask import abort, render_template, request

from escalator.studio.views.base import bp, current_ruleset, studio


@bp.get("/report")
def report() -> str:
    """The report of one of the studio's logs (read on request: a large log is for the
    command line), or how to make one."""
    s = studio()
    index = request.args.get("log", type=int)
    body = None
    error = ""
    if index is not None:
        if not 0 <= index < len(s.logs):
            abort(404)
        from escalator.tools import report as reporting
        from escalator.tools.report_html import context

        try:
            built = reporting.build([str(s.logs[index])], current_ruleset(), skip_bad=True)
        except reporting.ReportError as exc:
            error = str(exc)
        else:
            body = context(built.result())
    return render_template("studio/report.html", logs=s.logs, index=index, body=body,
                           error=error)
