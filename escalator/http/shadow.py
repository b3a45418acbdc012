"""POST /v1/shadow/reload: have the shadow rule set's folder read now (admin), answered as
a reload of the live rules is; the live rules are not touched."""

from __future__ import annotations

from flask import Blueprint, Response

from escalator.http.api import answer_reload
from escalator.http.errors import ApiError
from escalator.http.services import services

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
    # Under gunicorn every worker reads both folders (SIGHUP); the live one is unchanged
    # unless it changed.
    return answer_reload(shadow.reloader, "The shadow rules folder was refused; the "
                         "previous shadow rule set stays (none if none loaded yet).")
