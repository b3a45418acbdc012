"""The report in plain text: words and aligned tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from escalator.tools.report.labels import DIMENSIONS, MISSED, NEEDED, NOT_NEEDED, RESOLVED


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low * 100:.0f}-{high * 100:.0f}%]"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in cells]


def text(result: dict[str, Any]) -> str:
    """The report in plain words and tables."""
    out: list[str] = []
    r, i, e = result["range"], result["input"], result["escalation"]
    out.append(f"escalator report: {', '.join(i['files'])}")
    out.append(f"range: {r['since'] or 'start'} to {r['until'] or 'end'}; decisions from "
               f"{r['first_decision'] or '-'} to {r['last_decision'] or '-'}")
    out.append(f"read {i['lines']} lines: {i['decisions']} decisions "
               f"({i['decisions_out_of_range']} out of range), {i['feedback']} feedback "
               f"({i['feedback_out_of_range']} out of range), {i['other_records']} other")
    if i["skipped"]:
        out.append("skipped bad lines: " + ", ".join(
            f"{code} {n}" for code, n in i["skipped"].items()) + "; first: " + "; ".join(
            f"{s['file']}:{s['line']} {s['code']}" for s in i["skipped_lines"][:5]))
    rules = result["rules"]
    made = ", ".join(f"{x['name']} {x['version']} ({x['decisions']})" for x in rules["in_log"])
    out.append(f"rule sets that decided: {made or '-'}")
    source = rules["thresholds_from"]
    if source is not None:
        out.append(f"thresholds from: {source['name']} {source['version']}"
                   + ("" if source["made_the_decisions"] else
                      " (WARNING: not a rule set that made these decisions)"))

    out += ["", "== Escalations",
            f"{e['handoffs']} handoffs in {e['decisions']} decisions: {_pct(e['rate'])} "
            f"({e['with_person']} turns already with a person counted apart, "
            f"{e['degraded']} degraded)"]
    out.append(f"over time (by {r['bucket']}):")
    out += _table(("start", "decisions", "handoffs", "rate"),
                  ((x["start"], x["decisions"], x["handoffs"], _pct(x["rate"]))
                   for x in e["over_time"]))
    out.append("by deciding rule:")
    out += _table(("rule", "outcome", "decided", "share", "matched"),
                  ((x["rule"], x["outcome"] or "-", x["decided"], _pct(x["share"]),
                    x["matched"]) for x in e["by_rule"]))
    for dimension in DIMENSIONS:
        out.append(f"by {dimension}:")
        out += _table((dimension, "decisions", "handoffs", "rate"),
                      ((x["value"], x["decisions"], x["handoffs"], _pct(x["rate"]))
                       for x in e[f"by_{dimension}"]))

    f = result["feedback"]
    out += ["", "== Feedback and precision per rule",
            f"{f['records']} feedback records: " + ", ".join(
                f"{label} {n}" for label, n in f["by_label"].items())
            + f"; joined to their decision: {f['joined']}, not joined: {f['unjoined']}"]
    out.append("precision = handoff_needed / (handoff_needed + handoff_not_needed), "
               "Wilson 95% interval in brackets; miss rate = should_have_escalated / "
               "(should_have_escalated + resolved_by_bot)")
    out += _table(("rule", "decided", "feedback", "needed", "not needed", "precision",
                   "missed", "resolved", "miss rate"),
                  ((x["rule"], x["decided"], x["feedback"], x[NEEDED], x[NOT_NEEDED],
                    _pct(x["precision"]) + _interval(x["precision_low"], x["precision_high"]),
                    x[MISSED], x[RESOLVED],
                    _pct(x["miss_rate"]) + _interval(x["miss_low"], x["miss_high"]))
                   for x in result["precision"]))

    m = result["missed"]
    out += ["", "== Missed escalations (should_have_escalated) against conversations "
                "rightly kept (resolved_by_bot)",
            f"{m['missed']} missed, {m['kept_correctly']} kept correctly (joined feedback)"]
    if m["by_rule"]:
        out.append("by the rule that kept the conversation:")
        out += _table(("rule", "missed", "kept correctly", "miss rate"),
                      ((x["rule"], x[MISSED], x[RESOLVED], _pct(x["miss_rate"]))
                       for x in m["by_rule"]))
    for dimension in DIMENSIONS:
        if m[f"by_{dimension}"]:
            out.append(f"by {dimension}: " + ", ".join(
                f"{x['value']} {x[MISSED]} missed / {x[RESOLVED]} kept"
                for x in m[f"by_{dimension}"]))
    if m["facts"]:
        out.append("facts at the time (median and 90th percentile, to the histogram's step):")
        out += _table(("fact", "missed n", "median", "p90", "kept n", "median", "p90"),
                      ((x["fact"], x[MISSED]["count"], _num(x[MISSED]["median"]),
                        _num(x[MISSED]["p90"]), x[RESOLVED]["count"],
                        _num(x[RESOLVED]["median"]), _num(x[RESOLVED]["p90"]))
                       for x in m["facts"]))
    for x in m["boolean_facts"]:
        out.append(f"{x['fact']} true: missed {_pct(x[MISSED]['share'])} of "
                   f"{x[MISSED]['known']}, kept {_pct(x[RESOLVED]['share'])} of "
                   f"{x[RESOLVED]['known']}")

    out += ["", "== Thresholds: the fact's value among needed and not-needed handoffs"]
    if not result["thresholds"]:
        out.append("no numeric thresholds (give --rules to read them)")
    for t in result["thresholds"]:
        needed, not_needed, missed = t[NEEDED], t[NOT_NEEDED], t[MISSED]
        out.append(f"{t['rule']}: {t['written']}: holds for {needed['holds']} of "
                   f"{needed['holds'] + needed['does_not_hold']} needed handoffs, "
                   f"{not_needed['holds']} of "
                   f"{not_needed['holds'] + not_needed['does_not_hold']} not needed, "
                   f"{missed['holds']} of {missed['holds'] + missed['does_not_hold']} missed")
        hist = t["histogram"]
        edges = hist["edges"]
        shown = [(f"{_num(edges[k])}-{_num(edges[k + 1])}" + (" *" if _num(edges[k]) == _num(
            t["value"]) else ""), hist[NEEDED][k], hist[NOT_NEEDED][k], hist[MISSED][k])
            for k in range(len(edges) - 1)
            if hist[NEEDED][k] or hist[NOT_NEEDED][k] or hist[MISSED][k]]
        if shown:
            out += _table(("value (* from the threshold)", "needed", "not needed", "missed"),
                          shown)

    s = result["shadow"]
    out += ["", "== Shadow rule set"]
    if not s["decisions"]:
        out.append("no decision in range was evaluated by a shadow rule set")
    else:
        sets = ", ".join(f"{x['name']} {x['version']}" for x in s["rulesets"])
        w = s["with_feedback"]
        out.append(f"{sets}: disagreed on {s['disagreements']} of {s['decisions']} decisions "
                   f"({_pct(s['disagreement_rate'])}); where feedback says: active rules "
                   f"right {w['active_right']}, shadow right {w['shadow_right']}")
        for p in s["pairs"]:
            out.append(f"  {p['count']}: active {p['active_rule']} ({p['active_decision']}) "
                       f"-> shadow {p['shadow_rule']} ({p['shadow_decision']})")
            for x in p["examples"]:
                facts = ", ".join(f"{k}={v}" for k, v in x["facts"].items()
                                  if k in _EXAMPLE_FACTS)
                out.append(f"    {x['decision_id']} {x['conversation_id']} turn "
                           f"{x['turn_index']}: {facts}")
    return "\n".join(out) + "\n"


# The facts an example shows in text (the JSON and HTML show them all).
_EXAMPLE_FACTS = ("turn_index", "frustration.fitted", "frustration.score", "frustration.mean",
                  "loop.score", "breakdown.score", "loop.repeats", "requested_human",
                  "customer.tier", "channel", "message.language")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
