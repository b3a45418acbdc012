"""A rule in the form: shown, checked as typed, applied to the draft; added, copied,
deleted and moved up or down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from escalator.studio import engine, forms, ruleyaml, sentences
from escalator.studio.views.base import bp, current_ruleset, only_local, studio


def _vocabularies() -> dict[str, list[str]]:
    with studio().workspace.saved_policy() as policy:
        vocabulary = engine.vocabulary_of(policy.lexicons) if policy is not None else None
    seen: dict[str, set[str]] = {"channel": set(), "tier": set(), "language": set()}
    job = studio().jobs.latest()
    if job is not None and job.saved is not None:
        for dimension in seen:
            seen[dimension] = {v for v in job.saved.by_segment[dimension] if v[:1] != "("}
    return forms.vocabularies(set(vocabulary.topics) if vocabulary else set(),
                              set(vocabulary.cues) if vocabulary else set(),
                              set(vocabulary.languages if vocabulary else ()) | seen["language"],
                              seen["channel"], seen["tier"], set())


def _form_page(form: forms.RuleForm, file: str, original: str | None,
               problems: list[dict[str, Any]], general: list[str], status: int = 200,
               sentence: Any = None) -> Response:
    ruleset = current_ruleset()
    return make_response(render_template(
        "studio/rule.html", form=form, file=file, original=original, problems=problems,
        general=general, facts=forms.fact_choices(), labels=forms.OPERATOR_LABELS,
        vocabularies=_vocabularies(), urgencies=engine.HANDOFF_URGENCIES,
        max_priority=engine.MAX_PRIORITY,
        language=ruleset.language if ruleset else "en", sentence=sentence,
        files=studio().workspace.rule_files()), status)


@bp.get("/rules/<rule_id>")
def rule(rule_id: str) -> Response:
    """A rule in the form (and, on the service, only shown)."""
    ws = studio().workspace
    file = ws.file_of(rule_id)
    ruleset = current_ruleset()
    language = ruleset.language if ruleset else "en"
    form = forms.form_of(ruleyaml.raw_rule(ws.text(file), rule_id), language)
    found = next((r for r in ruleset.rules if r.id == rule_id), None) if ruleset else None
    sentence = sentences.rule_sentence(found, ruleset) if found else None
    return _form_page(form, file, rule_id, [], [], sentence=sentence)


@bp.get("/rules/new")
def new_rule() -> Response:
    """An empty rule form."""
    ws = studio().workspace
    file = request.args.get("file") or (ws.rule_files() or ["rules.yaml"])[0]
    form = forms.RuleForm(rows=[forms.Row("frustration.score", "gte", "0.8")])
    return _form_page(form, file, None, [], [])


def _edited_text(file: str, original: str | None, rule: dict[str, Any]) -> tuple[str, int]:
    ws = studio().workspace
    text = ws.text(file) if file in ws.rule_files() else ""
    if original is None:
        return ruleyaml.insert_rule(text, rule)
    return ruleyaml.replace_rule(text, original, rule)


def _placed(check: engine.Check, file: str, start: int, rule: dict[str, Any],
            rule_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The check's problems for the form: by condition row where the line says so, the
    rest of this rule's at the top, other files' below."""
    rows = ruleyaml.condition_lines(start, rule)
    placed, general = [], []
    for problem in check.problems:
        row = rows.index(problem.line) if (problem.file == file and problem.line in rows) \
            else None
        text = problem.message if problem.file == file else str(problem)
        if row is not None:
            placed.append({**problem.to_dict(), "row": row, "message": text})
        elif problem.rule in (rule_id, None) or problem.file != file:
            general.append(str(problem) if problem.rule != rule_id else
                           f"line {problem.line}: {problem.message}" if problem.line
                           else problem.message)
    return placed, general


def _post_rule(original: str | None) -> Response:
    ws = studio().workspace
    ruleset = current_ruleset()
    language = ruleset.language if ruleset else "en"
    form = forms.read_form(request.form)
    file = request.form.get("file", "")
    if original is not None:
        file = ws.file_of(original)
        raw = ruleyaml.raw_rule(ws.text(file), original)
    else:
        raw = None
    rule_data = forms.rule_of(form, raw, language)
    text, start = _edited_text(file, original, rule_data)
    check = ws.try_text(file, text)
    placed, general = _placed(check, file, start, rule_data, form.id)
    if request.form.get("action") == "check" or (not check.ok and request.form.get(
            "action") != "apply-anyway"):
        if not check.problems:
            general = ["No problems: the rules pass the check."]
        return _form_page(form, file, original, placed, general,
                          200 if check.ok else 422)
    ws.set_text(file, text)
    return redirect(url_for("studio.policy", _anchor=f"rule-{form.id}"))


@bp.post("/rules/<rule_id>")
def update_rule(rule_id: str) -> Response:
    """Apply the form to the draft (refused, with the problems shown, if it fails the
    check; "apply anyway" keeps an unfinished edit in the draft, which cannot be saved)."""
    return _post_rule(rule_id)


@bp.post("/rules/new")
def create_rule() -> Response:
    """Add a rule to the draft."""
    return _post_rule(None)


@bp.post("/api/check-rule")
def check_rule() -> Response:
    """The check of the form as typed: problems by row, and the rule as a sentence."""
    ws = studio().workspace
    only_local(ws)
    ruleset = current_ruleset()
    language = ruleset.language if ruleset else "en"
    form = forms.read_form(request.form)
    original = request.form.get("original") or None
    file = ws.file_of(original) if original else request.form.get("file", "")
    raw = ruleyaml.raw_rule(ws.text(file), original) if original else None
    rule_data = forms.rule_of(form, raw, language)
    try:
        text, start = _edited_text(file, original, rule_data)
    except ruleyaml.RuleTextError as exc:
        return jsonify({"ok": False, "rows": [], "general": [str(exc)], "sentence": "",
                        "problems": []})
    check = ws.try_text(file, text)
    placed, general = _placed(check, file, start, rule_data, form.id)
    sentence = ""
    if check.ok:
        policy = engine.load_policy(engine.merged_folder(
            ws.path, ws.saved.folder, {file: text.encode()}))
        found = next((r for r in policy.ruleset.rules if r.id == form.id), None)
        sentence = str(sentences.rule_sentence(found, policy.ruleset)) if found else ""
        policy.close()
    return jsonify({"ok": check.ok, "rows": placed, "general": general,
                    "sentence": sentence, "problems": [p.to_dict() for p in check.problems]})


def _rule_action(rule_id: str, change: Callable[[str, str], str]) -> Response:
    ws = studio().workspace
    file = ws.file_of(rule_id)
    ws.set_text(file, change(ws.text(file), rule_id))
    return redirect(url_for("studio.policy"))


@bp.post("/rules/<rule_id>/copy")
def copy_rule(rule_id: str) -> Response:
    """A copy of a rule under a new id, right after it."""
    ruleset = current_ruleset()
    ids = {r.id for r in ruleset.rules} if ruleset else set()
    new_id = next(f"{rule_id}-copy{n if n > 1 else ''}" for n in range(1, 1000)
                  if f"{rule_id}-copy{n if n > 1 else ''}" not in ids)

    def copied(text: str, rid: str) -> str:
        rule = ruleyaml.raw_rule(text, rid)
        rule["id"] = new_id[:64]
        return ruleyaml.insert_rule(text, rule, after=rid)[0]

    _rule_action(rule_id, copied)
    return redirect(url_for("studio.rule", rule_id=new_id[:64]))


@bp.post("/rules/<rule_id>/delete")
def delete_rule(rule_id: str) -> Response:
    """Remove a rule from the draft."""
    return _rule_action(rule_id, ruleyaml.delete_rule)


@bp.post("/rules/<rule_id>/move")
def move_rule(rule_id: str) -> Response:
    """Raise a rule above the next higher one (or lower it below the next lower one): the
    two exchange priorities, or it goes one past its neighbour when they are equal."""
    ruleset = current_ruleset()
    if ruleset is None:
        abort(409)
    ranked = sorted(ruleset.rules, key=lambda r: (-r.priority, r.id))
    index = next(i for i, r in enumerate(ranked) if r.id == rule_id)
    step = -1 if request.form.get("direction") == "up" else 1
    if not 0 <= index + step < len(ranked):
        return redirect(url_for("studio.policy"))
    this, other = ranked[index], ranked[index + step]
    if this.priority != other.priority:
        new_this, new_other = other.priority, this.priority
    else:
        new_this, new_other = this.priority - step, other.priority
    new_this = max(0, min(engine.MAX_PRIORITY, new_this))
    ws = studio().workspace
    for rule_obj, priority in ((this, new_this), (other, new_other)):
        text = ws.text(rule_obj.file)
        raw = ruleyaml.raw_rule(text, rule_obj.id)
        raw["priority"] = priority
        ws.set_text(rule_obj.file, ruleyaml.replace_rule(text, rule_obj.id, raw)[0])
    return redirect(url_for("studio.policy", _anchor=f"rule-{rule_id}"))
