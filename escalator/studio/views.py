"""The studio's pages: read the policy, change it, try it, replay it, audit it, save it.

Server-rendered (Flask and Jinja); the little JavaScript there is (the YAML editor, checks
as you type, replay progress) only makes pages quicker: every action also works as a
plain form post.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from escalator.studio import charts, engine, forms, ruleyaml, sentences
from escalator.studio.jobs import Jobs, Replay
from escalator.studio.security import CSRF_FIELD, Guard, secure_headers
from escalator.studio.workspace import StudioError, Workspace

EXTENSION = "escalator.studio"
bp = Blueprint("studio", __name__, url_prefix="/studio", template_folder="templates",
               static_folder="static")


@dataclass
class Studio:
    """One studio: its rules, corpora, replays and guard."""

    workspace: Workspace
    guard: Guard
    corpora: list[Path] = field(default_factory=list)
    jobs: Jobs = field(default_factory=Jobs)

    def close(self) -> None:
        """Stop what the studio holds: its replays first, then its compiled rule sets."""
        self.jobs.close()
        self.workspace.close()


def studio() -> Studio:
    """The studio of the app serving this request."""
    found: Studio = current_app.extensions[EXTENSION]
    return found


# ------------------------------------------------------------------ every request

@bp.before_request
def _guard() -> Response | None:
    s = studio()
    if not s.guard.host_ok():
        abort(400)
    session = s.guard.session()
    g.studio_cookie = session is None  # a first visit: a session (a token) is made
    g.studio_session = session or s.guard.new_session()
    if request.endpoint == "studio.static":
        return None
    if request.endpoint != "studio.login" and not s.guard.logged_in(session):
        return redirect(url_for("studio.login", next=request.full_path.rstrip("?")))
    if request.method == "POST" and not s.guard.token_ok(session):
        abort(403, "This form has expired (or did not come from the studio). Reload the "
                   "page and try again.")
    s.workspace.refresh()
    return None


@bp.after_request
def _after(response: Response) -> Response:
    if request.endpoint == "studio.static":
        return response
    if getattr(g, "studio_logout", False):
        studio().guard.clear_cookie(response)
    elif getattr(g, "studio_cookie", False):
        studio().guard.set_cookie(response, g.studio_session)
    return secure_headers(response)


@bp.app_context_processor
def _context() -> dict[str, Any]:
    if EXTENSION not in current_app.extensions or request.blueprint != "studio":
        return {}
    s = studio()
    session = getattr(g, "studio_session", None)
    return {"ws": s.workspace, "guard": s.guard, "csrf_field": CSRF_FIELD,
            "csrf_token": session.csrf if session else "", "has_corpus": bool(s.corpora)}


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    response = make_response(render_template("studio/error.html", error=exc),
                             exc.code or 500)
    return response


@bp.errorhandler(StudioError)
def _studio_error(exc: StudioError) -> Response:
    return make_response(render_template("studio/error.html", error=exc), 409)


# ------------------------------------------------------------------ login

@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """The admin key, once, for a short session (on the service only)."""
    s = studio()
    target = request.values.get("next") or url_for("studio.policy")
    if not target.startswith("/studio"):
        target = url_for("studio.policy")
    if not s.guard.needs_login or s.guard.logged_in(s.guard.session()):
        return redirect(target)
    error = ""
    if request.method == "POST":
        if s.guard.admin_key_ok(request.form.get("admin_key", "")):
            # A fresh session: a token seen before the login is worth nothing after it.
            g.studio_session = s.guard.new_session(request.form["admin_key"])
            g.studio_cookie = True
            return redirect(target)
        error = "That is not an admin key of this service."
    return make_response(render_template("studio/login.html", error=error, next=target),
                         401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """End the session."""
    g.studio_logout = True
    return redirect(url_for("studio.login"))


# ------------------------------------------------------------------ reading the policy

def _ruleset() -> engine.RuleSet | None:
    check = studio().workspace.draft
    if check.policy is not None:
        return check.policy.ruleset
    saved = studio().workspace.saved.check.policy
    return saved.ruleset if saved is not None else None


def _rule_tests() -> dict[str, list[str]]:
    """Per rule id, the names of the rule tests that expect it to match."""
    ws, named = studio().workspace, dict[str, list[str]]()
    ruleset = _ruleset()
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
    ruleset = _ruleset()
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


# ------------------------------------------------------------------ changing a rule

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
    ruleset = _ruleset()
    return make_response(render_template(
        "studio/rule.html", form=form, file=file, original=original, problems=problems,
        general=general, facts=forms.fact_choices(), labels=forms.OPERATOR_LABELS,
        vocabularies=_vocabularies(), urgencies=engine.HANDOFF_URGENCIES,
        language=ruleset.language if ruleset else "en", sentence=sentence,
        files=studio().workspace.rule_files()), status)


@bp.get("/rules/<rule_id>")
def rule(rule_id: str) -> Response:
    """A rule in the form (and, on the service, only shown)."""
    ws = studio().workspace
    file = ws.file_of(rule_id)
    ruleset = _ruleset()
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
            placed.append({"row": row, "message": text})
        elif problem.rule in (rule_id, None) or problem.file != file:
            general.append(str(problem) if problem.rule != rule_id else
                           f"line {problem.line}: {problem.message}" if problem.line
                           else problem.message)
    return placed, general


def _post_rule(original: str | None) -> Response:
    ws = studio().workspace
    ruleset = _ruleset()
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
    _only_local(ws)
    ruleset = _ruleset()
    language = ruleset.language if ruleset else "en"
    form = forms.read_form(request.form)
    original = request.form.get("original") or None
    file = ws.file_of(original) if original else request.form.get("file", "")
    raw = ruleyaml.raw_rule(ws.text(file), original) if original else None
    rule_data = forms.rule_of(form, raw, language)
    try:
        text, start = _edited_text(file, original, rule_data)
    except ruleyaml.RuleTextError as exc:
        return jsonify({"ok": False, "rows": [], "general": [str(exc)], "sentence": ""})
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
                    "sentence": sentence})


def _only_local(ws: Workspace) -> None:
    """Compiling rule sets on request is for the local studio: on the service it would
    take a worker from the callers."""
    if not ws.writable:
        abort(403, "The studio on the service only shows the rules.")


def _rule_action(rule_id: str, change: Callable[[str, str], str]) -> Response:
    ws = studio().workspace
    file = ws.file_of(rule_id)
    ws.set_text(file, change(ws.text(file), rule_id))
    return redirect(url_for("studio.policy"))


@bp.post("/rules/<rule_id>/copy")
def copy_rule(rule_id: str) -> Response:
    """A copy of a rule under a new id, right after it."""
    ruleset = _ruleset()
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
    ruleset = _ruleset()
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
    _only_local(studio().workspace)
    data = request.get_json(silent=True) or {}
    name, text = str(data.get("file", "")), str(data.get("text", ""))
    check = studio().workspace.try_text(name, text)
    return jsonify({"ok": check.ok,
                    "problems": [{"line": p.line, "message": p.message, "file": p.file,
                                  "rule": p.rule} for p in check.problems],
                    "warnings": [{"line": p.line, "message": p.message, "file": p.file}
                                 for p in check.warnings]})


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
    import difflib

    for name in ws.edited:
        before = ws.saved_text(name) or ""
        after = ws.text(name) if name in ws.rule_files() else ""
        diffs.append((name, list(difflib.unified_diff(
            before.splitlines(), after.splitlines(), "saved", "edited", lineterm="", n=2))))
    return make_response(render_template("studio/save.html", diffs=diffs, message=message,
                                         saved_version=saved_version, suggested=suggested))


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
    edited = s.workspace.draft_policy if s.workspace.edited and s.workspace.draft.ok else None
    return s.jobs.start(corpus, s.workspace.saved_policy, edited)


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
