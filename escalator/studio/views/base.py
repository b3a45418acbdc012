"""What every studio page shares: the blueprint, the studio an app holds, the checks made
on every request (host, login, CSRF token), the error pages, and the login itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from escalator.studio import engine
from escalator.studio.jobs import Jobs
from escalator.studio.security import CSRF_FIELD, Guard, secure_headers
from escalator.studio.workspace import StudioError, Workspace

EXTENSION = "escalator.studio"
# templates/ and static/ are the studio package's, one folder up from these modules.
bp = Blueprint("studio", __name__, url_prefix="/studio", template_folder="templates",
               static_folder="static", root_path=str(Path(__file__).resolve().parents[1]))


@dataclass
class Studio:
    """One studio: its rules, corpora, replays and guard."""

    workspace: Workspace
    guard: Guard
    corpora: list[Path] = field(default_factory=list)
    jobs: Jobs = field(default_factory=Jobs)
    logs: list[Path] = field(default_factory=list)  # decision logs for the report page

    def close(self) -> None:
        """Stop what the studio holds: its replays first, then its compiled rule sets."""
        self.jobs.close()
        self.workspace.close()


def studio() -> Studio:
    """The studio of the app serving this request."""
    found: Studio = current_app.extensions[EXTENSION]
    return found


def current_ruleset() -> engine.RuleSet | None:
    """The rule set the pages show: the draft's when it loads, else the saved one's."""
    check = studio().workspace.draft
    if check.policy is not None:
        return check.policy.ruleset
    saved = studio().workspace.saved.check.policy
    return saved.ruleset if saved is not None else None


def only_local(ws: Workspace) -> None:
    """Compiling rule sets on request is for the local studio: on the service it would
    take a worker from the callers."""
    if not ws.writable:
        abort(403, "The studio on the service only shows the rules.")


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
