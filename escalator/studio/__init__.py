"""The policy studio: web pages where a policy owner reads, changes, tries, replays and
audits the rules, with the same checks and pipeline as the command-line tools.

Two ways to run it:
- `escalator studio RULES_DIR [--corpus FILE ...]` (create_local_app): on 127.0.0.1, over
  a rules folder it may change (only when the owner saves);
- under the running service (init_service), read-only, for the active rule set, behind
  a login with an admin key.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response

from escalator.studio.engine import PolicyHolder
from escalator.studio.security import Guard
from escalator.studio.views import EXTENSION, Studio, bp, start_replay
from escalator.studio.workspace import Workspace

__all__ = ["create_local_app", "init_service"]


def create_local_app(rules_dir: Path, corpora: Sequence[Path] = (),
                     logs: Sequence[Path] = ()) -> Flask:
    """The local studio over a rules folder, with corpora to replay (the first one is
    replayed with the saved rules at once, so the rules show how often they match) and
    decision logs to report on."""
    app = Flask("escalator.studio")
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    studio = Studio(Workspace(Path(rules_dir), writable=True),
                    Guard(secrets.token_bytes(32), local=True),
                    [Path(c) for c in corpora], logs=[Path(log) for log in logs])
    app.extensions[EXTENSION] = studio
    app.register_blueprint(bp)

    @app.get("/")
    def _home() -> Response:
        return redirect(url_for("studio.policy"))

    if studio.corpora and studio.workspace.saved.check.ok:
        start_replay(studio, studio.corpora[0])
    return app


def init_service(app: Flask, policies: PolicyHolder, admin_keys: Sequence[str]) -> None:
    """The studio under the service, read-only over the active rule set, for admin keys
    only (without any admin key configured, it is not served at all)."""
    if not admin_keys:
        return
    workspace = Workspace(policies.current.ruleset.source, writable=False, active=policies)
    # The secret is made before gunicorn forks, so every worker reads every cookie.
    app.extensions[EXTENSION] = Studio(workspace, Guard(secrets.token_bytes(32), admin_keys,
                                                        local=False))
    app.register_blueprint(bp)
