"""The report as one self-contained HTML page: charts drawn by the studio's chart code
(escalator.studio.charts, inline SVG), the studio's stylesheet inlined, no script and no
external resource, so the file opens offline, from disk or an e-mail.

The page's body is the studio template `studio/_report.html`, which the studio's report
page includes too.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from escalator.studio import charts
from escalator.tools.report import DIMENSIONS, LABELS, MISSED, NEEDED, NOT_NEEDED, RESOLVED

LABEL_WIDTH = 230  # room for rule names such as valued-customer-frustrated
SERIES_NAMES = {NEEDED: "handoff needed", NOT_NEEDED: "not needed",
                MISSED: "missed (kept, should have escalated)",
                RESOLVED: "kept, resolved by the bot"}


def _short(start: str, bucket: str) -> str:
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return moment.strftime("%m-%d %Hh" if bucket == "hour" else "%m-%d")


def _number(value: float) -> str:
    return f"{value:g}"


def report_charts(result: dict[str, Any]) -> dict[str, Any]:
    """Every chart of the report, as inline SVG, by section."""
    e = result["escalation"]
    bucket = result["range"]["bucket"]
    over = e["over_time"]
    made: dict[str, Any] = {}
    made["over_time"] = charts.columns(
        f"Share of decisions handed to a person, by {bucket}",
        [_short(x["start"], bucket) for x in over],
        [charts.Series("handoff rate", [x["rate"] for x in over])],
        fmt=charts.percent, axis_label=f"{bucket} (UTC)", chart_id="over-time",
        show_values=len(over) <= 16, label_every=max(1, len(over) // 12), width=900)
    rules = e["by_rule"]
    made["by_rule"] = charts.bars(
        "Decisions by deciding rule", [x["rule"] for x in rules],
        [charts.Series("share of decisions", [x["share"] for x in rules],
                       [f"{x['decided']} decisions, {x['outcome'] or '?'}" for x in rules])],
        maximum=max([x["share"] or 0 for x in rules] + [0.05]) * 1.15,
        chart_id="by-rule", width=900, label_width=LABEL_WIDTH, value_width=260)
    for dimension in DIMENSIONS:
        rows = e[f"by_{dimension}"]
        made[f"by_{dimension}"] = charts.bars(
            f"Handoff rate by {dimension}", [x["value"] for x in rows],
            [charts.Series("handoff rate", [x["rate"] for x in rows],
                           [f"{x['handoffs']} of {x['decisions']}" for x in rows])],
            maximum=max([x["rate"] or 0 for x in rows] + [0.05]) * 1.15,
            chart_id=f"by-{dimension}", width=900, label_width=LABEL_WIDTH)
    judged = [x for x in result["precision"] if x["precision"] is not None]
    made["precision"] = charts.bars(
        "Precision in production: share of handoffs labelled needed, with 95% interval",
        [x["rule"] for x in judged],
        [charts.Series("precision", [x["precision"] for x in judged],
                       [f"{x[NEEDED]} of {x[NEEDED] + x[NOT_NEEDED]}; 95% "
                        f"{charts.percent(x['precision_low'])}-"
                        f"{charts.percent(x['precision_high'])}" for x in judged],
                       [(x["precision_low"], x["precision_high"]) for x in judged])],
        chart_id="precision", width=900, label_width=LABEL_WIDTH,
        value_width=280) if judged else None
    made["missed_facts"] = [
        (fact["fact"], _histogram(fact["fact"], fact["histogram"], (MISSED, RESOLVED),
                                  f"missed-{n}", share=True))
        for n, fact in enumerate(result["missed"]["facts"])
        if fact[MISSED]["count"] or fact[RESOLVED]["count"]]
    made["thresholds"] = [
        _histogram(t["fact"], t["histogram"], (NEEDED, NOT_NEEDED, MISSED), f"threshold-{n}",
                   threshold=t["value"], title=f"{t['rule']}: {t['written']}")
        for n, t in enumerate(result["thresholds"])]
    return made


def _histogram(fact: str, histogram: dict[str, Any], labels: tuple[str, ...],
               chart_id: str, *, threshold: float | None = None, share: bool = False,
               title: str = "") -> Markup | None:
    edges = histogram["edges"]
    if not any(any(histogram[label]) for label in labels):
        return None
    series = []
    for label in labels:
        counts = histogram[label]
        total = sum(counts)
        values = [c / total if total else 0.0 for c in counts] if share else \
            [float(c) for c in counts]
        series.append(charts.Series(f"{SERIES_NAMES[label]} ({total})", values))
    marker = None
    if threshold is not None:
        marker = min(range(len(edges)), key=lambda k: abs(edges[k] - threshold))
    what = "share of each group" if share else "feedback"
    return charts.columns(
        title or f"{fact}: missed against rightly kept", [_number(x) for x in edges[:-1]],
        series, fmt=charts.percent if share else (lambda v: f"{v:g}"),
        axis_label=f"{fact} (each bin from its value to the next; {what})",
        chart_id=chart_id, width=900, marker=marker,
        marker_label=f"threshold {threshold:g}" if threshold is not None else "",
        show_values=len(edges) <= 12 and not share, label_every=max(1, len(edges) // 12))


def _environment() -> Environment:
    return Environment(loader=PackageLoader("escalator.studio", "templates"),
                       autoescape=select_autoescape(default=True), trim_blocks=True,
                       lstrip_blocks=True)


def context(result: dict[str, Any]) -> dict[str, Any]:
    """What the report's template needs: the result, its charts and the label names."""
    return {"report": result, "charts": report_charts(result), "labels": LABELS,
            "names": SERIES_NAMES, "dimensions": DIMENSIONS, "percent": _percent}


def _percent(value: float | None) -> str:
    return "-" if value is None else charts.percent(value)


def page(result: dict[str, Any]) -> str:
    """The whole page, with the studio's stylesheet inlined."""
    style = (files("escalator.studio") / "static" / "studio.css").read_text(encoding="utf-8")
    template = _environment().get_template("studio/report_page.html")
    return template.render(style=Markup(style), **context(result))
