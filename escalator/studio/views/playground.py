"""Trying the rules on examples: a conversation decided by the saved and the edited
rules, and the folder's rule tests."""

from __future__ import annotations

import json
from typing import Any

from flask import render_template, request

from escalator.studio import engine, forms
from escalator.studio.views.base import bp, studio

# ------------------------------------------------------------------ trying it

@bp.route("/try", methods=["GET", "POST"])
def playground() -> str:
    """A conversation typed or pasted, decided by the saved and the edited rules."""
    rows = forms.read_turns(request.form) if request.method == "POST" else []
    error = ""
    pasted = request.form.get("pasted", "").strip()
    if pasted:
        try:
            raw = json.loads(pasted)
            turns_raw = raw.get("turns") if isinstance(raw, dict) else raw
            rows = forms.rows_of(turns_raw if isinstance(turns_raw, list) else [])
        except (ValueError, AttributeError):
            error = "The pasted text is not a transcript: paste JSON as the turns API takes it."
    results: list[dict[str, Any]] = []
    if rows and not error:
        try:
            turns = engine.parse_turns([forms.turn_request(row) for row in rows])
        except engine.TranscriptError as exc:
            error = f"{exc} {json.dumps(exc.details)}" if exc.details else str(exc)
        else:
            results = _decide_both(turns)
    while len(rows) < max(3, len(rows) + (1 if request.form.get("add") else 0)):
        rows.append(forms.TurnRow())
    return render_template("studio/try.html", rows=rows, results=results, error=error)


def _decide_both(turns: tuple[engine.Turn, ...]) -> list[dict[str, Any]]:
    ws = studio().workspace
    transcript = engine.Transcript("playground", turns)
    with ws.saved_policy() as saved, ws.draft_policy() as edited:
        before = engine.decide_transcript(saved, transcript) if saved else []
        after = engine.decide_transcript(edited, transcript) if edited else []
    return [{"turn": turn, "saved": before[i] if before else None,
             "edited": after[i] if after else None} for i, turn in enumerate(turns)]


# ------------------------------------------------------------------ rule tests

@bp.get("/tests")
def tests() -> str:
    """The rule tests of the folder, run on the edited rules (or the saved ones)."""
    ws = studio().workspace
    report, error = None, ""
    with ws.draft_policy() as edited, ws.saved_policy() as saved:
        policy = edited or saved
        if policy is not None:
            ruleset = policy.ruleset
            try:
                found = engine.load_rule_tests(ws.path, [r.id for r in ruleset.rules],
                                               [q for q in [ruleset.default.queue,
                                                            *(r.then.queue for r in
                                                              ruleset.rules)] if q])
                report = engine.run_rule_tests(policy, found)
            except engine.PolicyError as exc:
                error = "; ".join(str(p) for p in exc.problems)
    return render_template("studio/tests.html", report=report, error=error,
                           on_edited=bool(ws.edited and ws.draft.ok))
