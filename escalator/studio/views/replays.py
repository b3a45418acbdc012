"""Replays of a corpus (progress, cancel, what changed, each changed conversation) and
the fairness audit of the last one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import abort, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from escalator.studio import charts, engine
from escalator.studio.jobs import Replay
from escalator.studio.views.base import Studio, bp, studio

# ------------------------------------------------------------------ replaying it

@bp.route("/replay", methods=["GET", "POST"])
def replay() -> Response:
    """Start a replay of a corpus (saved and edited rules), or list them."""
    s = studio()
    if request.method == "POST":
        index = int(request.form.get("corpus", "0") or 0)
        if not 0 <= index < len(s.corpora):
            abort(404)
        job = start_replay(s, s.corpora[index])
        return redirect(url_for("studio.replay_job", job_id=job.id))
    return make_response(render_template("studio/replay_start.html", corpora=s.corpora,
                                         job=s.jobs.latest(finished=False)))


def start_replay(s: Studio, corpus: Path) -> Replay:
    """A replay of a corpus with the saved rules and, when there are edits that pass the
    check, the edited ones."""
    return s.jobs.start(corpus, s.workspace.saved.folder, s.workspace.draft_folder)


def _job(job_id: str) -> Replay:
    job = studio().jobs.get(job_id)
    if job is None:
        abort(404)
    return job


@bp.get("/api/replay/<job_id>")
def replay_progress(job_id: str) -> Response:
    """How far a replay got."""
    return jsonify(_job(job_id).progress())


@bp.post("/replay/<job_id>/cancel")
def cancel_replay(job_id: str) -> Response:
    """Stop a replay at its next conversation."""
    _job(job_id).cancel()
    return redirect(url_for("studio.replay_job", job_id=job_id))


@bp.get("/replay/<job_id>")
def replay_job(job_id: str) -> str:
    """A replay's progress, then what changed."""
    job = _job(job_id)
    if not job.finished or job.saved is None:
        return render_template("studio/replay_wait.html", job=job)
    return render_template("studio/replay.html", job=job, **replay_view(job))


def replay_view(job: Replay) -> dict[str, Any]:
    """What the replay page shows: rates, charts and the changed conversations."""
    assert job.saved is not None
    sides = [("Saved rules", job.saved)] + ([("Edited rules", job.edited)]
                                             if job.edited is not None else [])
    segment_charts = []
    for dimension in ("channel", "language", "tier"):
        names = sorted({n for _, side in sides for n in side.by_segment[dimension]})
        series = []
        for label, side in sides:
            rates = side.rates(dimension)
            values = [rates[n][1] / rates[n][0] if n in rates and rates[n][0] else None
                      for n in names]
            notes = [f"{rates[n][1]} of {rates[n][0]}" if n in rates else "" for n in names]
            series.append(charts.Series(label, values, notes))
        top = max((v for one in series for v in one.values if v is not None), default=0.0)
        segment_charts.append((dimension, charts.bars(
            f"Conversations routed to a person, by {dimension}", names, series,
            maximum=max(top * 1.1, 0.05), chart_id=f"by-{dimension}")))
    last = max((t for _, side in sides for t in side.first_turns), default=0)
    turns = list(range(1, min(last, 20) + 1))
    turn_chart = charts.columns(
        "Turn of the first handoff to a person", [str(t) for t in turns],
        [charts.Series(label, [float(side.first_turns.get(t, 0)) for t in turns])
         for label, side in sides], axis_label="turn of the conversation",
        chart_id="by-turn")
    rules = sorted({r for _, side in sides for r in
                    (*side.summary.rule_matches, *side.summary.deciding_rules)})
    return {"sides": sides, "segment_charts": segment_charts, "turn_chart": turn_chart,
            "rules": rules, "later_turns": last > 20}


@bp.get("/replay/<job_id>/conversations/<conversation_id>")
def conversation(job_id: str, conversation_id: str) -> str:
    """One changed conversation: its turns, each with both decisions."""
    job = _job(job_id)
    changed = job.conversation(conversation_id)
    if changed is None:
        abort(404)
    return render_template("studio/conversation.html", job=job, changed=changed)


# ------------------------------------------------------------------ auditing it

@bp.get("/audit")
def audit() -> str:
    """The four-fifths check of `escalator audit`, per segment, on the last replay."""
    job = studio().jobs.latest()
    min_count = request.args.get("min_count", type=int) or 30
    min_count = max(1, min(min_count, 1_000_000))
    views = []
    if job is not None and job.saved is not None:
        for label, side in [("Saved rules", job.saved)] + (
                [("Edited rules", job.edited)] if job.edited is not None else []):
            result = engine.audit(side.records, min_count=min_count)
            views.append((label, result, audit_charts(result, label)))
    return render_template("studio/audit.html", job=job, views=views, min_count=min_count,
                           bands=engine.BANDS, four_fifths=engine.FOUR_FIFTHS)


def audit_charts(result: engine.AuditResult, label: str) -> list[tuple[str, str, Any]]:
    """Per dimension and band: each segment's rate, the four-fifths line, the flagged
    segments and those with too few decisions to compare."""
    out = []
    flagged = {(d.dimension, d.band, d.segment) for d in result.disparities}
    for comparison in result.comparisons:
        rates = result.by_band[comparison.dimension][comparison.band]
        names = sorted(rates)
        values = [rates[n].rate if rates[n].decisions >= result.min_count else None
                  for n in names]
        counts = [f"{rates[n].routed} of {rates[n].decisions}" for n in names]
        compared = [v for v in values if v is not None]
        best = max(compared) if len(compared) >= 2 else None
        group = charts.Group(
            references=[best * engine.FOUR_FIFTHS if best else None] * len(names),
            reference_label="four fifths of the best rate" if best else "",
            flagged=frozenset((0, i) for i, n in enumerate(names)
                              if (comparison.dimension, comparison.band, n) in flagged),
            missing={i: f"not enough decisions to compare ({rates[n].decisions} of "
                        f"{result.min_count} needed)"
                     for i, n in enumerate(names) if values[i] is None})
        chart_id = f"audit-{label[:5]}-{comparison.dimension}-{comparison.band}".replace(" ", "-")
        out.append((comparison.dimension, comparison.band, charts.bars(
            f"{label}: routed to a person by {comparison.dimension}, {comparison.band}",
            names, [charts.Series(label, values, counts)], group=group,
            maximum=max([*compared, 0.05]) * 1.15, chart_id=chart_id.lower())))
    return out
