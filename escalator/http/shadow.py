"""POST /v1/shadow/reload: have the shadow rule set's folder read now (admin), answered as
a reload of the live rules is; the live rules are not touched."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from escalator.http.errors import ApiError
from escalator.http.services import services
from escalator.policy import named_inside
from escalator.reloader import ReloadBusy, notify_other_workers

bp = Blueprint("shadow", __name__)


@bp.post("/v1/shadow/reload")
def reload_shadow() -> Response:
    """Admin: reload the shadow rules folder now (under gunicorn, in every worker, with the
    live rules' folder, which is unchanged unless it changed); 422 with the problems of a
    refused folder, whose previous shadow stays."""
    svc = services()
    shadow = svc.pipeline.shadow
    if shadow is None:
        raise ApiError(404, "not_found", "No shadow rule set is configured "
                       "(ESCALATOR_SHADOW_RULES_DIR).")
    notify_other_workers()  # SIGHUP: every worker reads both folders
    try:
        reloaded = shadow.reloader.reload("api")
    except ReloadBusy as exc:
        raise ApiError(409, "reload_in_progress", str(exc),
                       headers={"Retry-After": str(exc.retry_after_seconds)}) from exc
    folder = shadow.directory
    if reloaded.problems:
        raise ApiError(422, "invalid_ruleset", "The shadow rules folder was refused; the "
                       "previous shadow rule set stays (none if none loaded yet).", {
                           "problems": [str(p) for p in reloaded.problems],
                           "diagnostics": [p.to_dict()
                                           for p in named_inside(reloaded.problems, folder)]})
    body: dict[str, Any] = {"result": reloaded.result, "version": reloaded.version,
                            "digest": reloaded.digest, "seconds": round(reloaded.seconds, 4)}
    if reloaded.warnings:
        body["warnings"] = [p.message for p in reloaded.warnings]
        body["diagnostics"] = [p.to_dict() for p in named_inside(reloaded.warnings, folder)]
    return jsonify(body)
