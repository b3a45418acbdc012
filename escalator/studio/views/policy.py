"""The rules page (every rule as a sentence), the YAML editor of a rule file, and saving
the draft."""

from __future__ import annotations

import difflib

from flask import jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from escalator.studio import engine, sentences
from escalator.studio.views.base import bp, current_ruleset, only_local, studio

# ------------------------------------------------------------------ reading the policy

def _rule_tests() -> dict[str, list[str]]:
    """Per rule id, the names of the rule tests that expect it to match."""
    ws, named = studio().workspace, dict[str, list[str]]()
    ruleset = current_ruleset()
    if ruleset is None:
        return named
    try:
        tests = engine.load_rule_tests(ws.path, [r.id for r in ruleset.rules],
                                       [r.then.queue for r in ruleset.rules if r.then.queue])
    except engine.PolicyError:
        return named
    for test in tests:
        for expectation in test.expectations:
            for rule in {*expectation.rules, *([expectation.decisive]
                                               if expectation.decisive else [])}:
                if test.name not in named.setdefault(rule, []):
                    named[rule].append(test.name)
    return named


@bp.get("/")
def policy() -> str:
    """Every rule as a sentence, highest priority first, with what it outranks."""
    ruleset = current_ruleset()
    rules = sorted(ruleset.rules, key=lambda r: (-r.priority, r.id)) if ruleset else []
    job = studio().jobs.latest()
    counts: dict[str, tuple[int, int]] = {}
    if job is not None and job.saved is not None:
        side = job.edited or job.saved
        for rule in rules:
            counts[rule.id] = (side.summary.rule_matches.get(rule.id, 0),
                               side.summary.deciding_rules.get(rule.id, 0))
    shown = [{"rule": rule, "sentence": sentences.rule_sentence(rule, ruleset),
              "floor": engine.floor_roles(rule),
              "outranks": [r.id for r in rules if r.priority < rule.priority][:3],
              "outranked": sum(1 for r in rules if r.priority < rule.priority)}
             for rule in rules]
    return render_template("studio/policy.html", ruleset=ruleset, rules=shown,
                           tests=_rule_tests(), counts=counts, job=job,
                           default_sentence=_default_sentence(ruleset))


def _default_sentence(ruleset: engine.RuleSet | None) -> str:
    if ruleset is None:
        return ""
    default = ruleset.default
    if default.decision == engine.ROUTE:
        return "When no rule matches, the conversation goes to a person."
    return (f"When no rule matches, the customer stays with the bot. A rule that routes to "
            f"a person without saying where uses queue '{default.queue}' and urgency "
            f"'{default.urgency}'.")


# ------------------------------------------------------------------ YAML files

@bp.get("/files/<name>")
def file(name: str) -> str:
    """A rule file in the YAML editor, with its problems."""
    ws = studio().workspace
    text = ws.text(name)
    return render_template("studio/file.html", name=name, text=text,
                           problems=[p for p in ws.draft.problems if p.file == name],
                           others=[p for p in ws.draft.problems if p.file != name],
                           warnings=[p for p in ws.draft.warnings if p.file == name])


@bp.post("/files/<name>")
def update_file(name: str) -> Response:
    """Keep the editor's text in the draft (checked; a failing draft cannot be saved)."""
    studio().workspace.set_text(name, request.form.get("text", "").replace("\r\n", "\n"))
    return redirect(url_for("studio.file", name=name))


@bp.post("/api/check")
def check_file() -> Response:
    """The check of one file's text as typed, with each problem's line."""
    only_local(studio().workspace)
    data = request.get_json(silent=True) or {}
    name, text = str(data.get("file", "")), str(data.get("text", ""))
    check = studio().workspace.try_text(name, text)
    # Each problem as `escalator rules check --format json` prints it (code, severity, ...).
    return jsonify({"ok": check.ok, "problems": [p.to_dict() for p in check.problems],
                    "warnings": [p.to_dict() for p in check.warnings]})


# ------------------------------------------------------------------ saving

@bp.route("/save", methods=["GET", "POST"])
def save() -> Response:
    """What changed, a new version to give it, and the save (refused while the check
    fails)."""
    ws = studio().workspace
    saved_version = (ws.saved.check.policy.ruleset.version
                     if ws.saved.check.policy is not None else "")
    message = ""
    if request.method == "POST":
        if request.form.get("action") == "discard":
            ws.discard()
            return redirect(url_for("studio.policy"))
        written = ws.save(request.form.get("version", "").strip() or None)
        message = "Saved " + ", ".join(written) + "."
    draft = ws.draft.policy.ruleset.version if ws.draft.policy is not None else saved_version
    suggested = (engine.next_version(saved_version)
                 if ws.edited and draft == saved_version and saved_version else draft)
    diffs = []
    for name in ws.edited:
        before = ws.saved_text(name) or ""
        after = ws.text(name) if name in ws.rule_files() else ""
        diffs.append((name, list(difflib.unified_diff(
            before.splitlines(), after.splitlines(), "saved", "edited", lineterm="", n=2))))
    return make_response(render_template("studio/save.html", diffs=diffs, message=message,
                                         saved_version=saved_version, suggested=suggested))
