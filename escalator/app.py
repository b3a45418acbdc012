"""The app factory: the one place where the service is assembled."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from flask import Flask

from escalator import logs, metrics, studio
from escalator.config import Config, ConfigError
from escalator.decisionlog import open_decision_log
from escalator.http import api, auth, errors, integrations, requestlog
from escalator.http import feedback as feedback_api
from escalator.http import shadow as shadow_api
from escalator.http.inline import InlineEvaluator, InlineLimits
from escalator.http.ratelimit import RateLimiter
from escalator.http.services import EXTENSION, Services
from escalator.pipeline import Pipeline
from escalator.policy import PolicyHolder, load_policy
from escalator.reloader import RuleReloader
from escalator.shadow import Shadow
from escalator.state.embedded import EmbeddedRedis, start_embedded
from escalator.state.handoff_cache import HandoffCache
from escalator.state.store import StateStore

log = logging.getLogger(__name__)


class _Service(Flask):
    """Flask, told once per view or hook that it is a plain function.

    Flask asks inspect whether each view and hook is a coroutine function on every
    request (ensure_sync): ~7 inspections per turn. The answer never changes for a given
    function, so it is kept; an `async def` one is still wrapped, as Flask does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: set[Any] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            if func in self._plain:
                return func
        except TypeError:  # unhashable: ask Flask every time
            return super().ensure_sync(func)
        synced = super().ensure_sync(func)
        if synced is func:
            self._plain.add(func)
        return synced


def create_app(config: Config | None = None, *, start_reloader: bool = True) -> Flask:
    """Build the service: load and check the rules (refuse to start if they break the
    floor), connect the state store (embedded Redis when no URL is set), wire the routes.

    `start_reloader=False` leaves rule polling to the caller (the gunicorn worker hook,
    since threads do not survive a fork)."""
    config = config or Config.from_env()
    logs.configure(config.log_level)
    policy = load_policy(config.rules_path)  # PolicyError: the caller refuses to start
    # What rules check warns about (an old spelling, a message missing a language) goes to
    # the log too: a service started on such rules should say so where SREs look.
    for warning in policy.ruleset.warnings:
        log.warning("rule set %s %s: %s", policy.ruleset.name, policy.ruleset.version,
                    warning)
    metrics.set_ruleset(policy.ruleset.name, policy.ruleset.version, policy.ruleset.digest)

    embedded: EmbeddedRedis | None = None
    url = config.redis_url
    if url is None:
        embedded = start_embedded(config.embedded_redis_dir)
        url = embedded.url
        log.info("ESCALATOR_REDIS_URL is unset: using an embedded Redis at %s", url)
    store = StateStore.from_url(
        url, ttl_seconds=config.state_ttl_seconds,
        timeout_seconds=config.redis_timeout_ms / 1000.0, cluster=config.redis_cluster,
    )
    try:
        decision_log = open_decision_log(config.decision_log, store)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"ESCALATOR_DECISION_LOG={config.decision_log!r}: {exc}") from exc
    policies = PolicyHolder(policy)
    try:
        handoffs = HandoffCache(config.handoff_cache, ttl_seconds=config.state_ttl_seconds)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"ESCALATOR_HANDOFF_CACHE={str(config.handoff_cache)!r}: {exc}") \
            from exc
    # A shadow rule set never stops the service: one refused at start is logged and
    # waits for a good folder.
    shadow = None if config.shadow_rules_dir is None else Shadow(
        config.shadow_rules_dir, config.reload_interval_seconds, config.reload_settle_seconds)
    pipeline = Pipeline(policies, store, fail_mode=config.fail_mode, decision_log=decision_log,
                        state_ttl_seconds=config.state_ttl_seconds, handoffs=handoffs,
                        shadow=shadow)

    app = _Service(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["ESCALATOR_MAX_JSON_DEPTH"] = config.max_json_depth
    app.json.sort_keys = False  # type: ignore[attr-defined]
    reloader = RuleReloader(policies, config.rules_path, config.reload_interval_seconds,
                            config.reload_settle_seconds)
    # Made here, before any fork: every worker of an instance shares its workspace.
    inline = InlineEvaluator(
        InlineLimits(seconds=config.inline_timeout_seconds, memory_mb=config.inline_memory_mb,
                     concurrency=config.inline_concurrency),
        RateLimiter("inline", config.inline_per_minute, store))
    app.extensions[EXTENSION] = Services(config, policies, store, pipeline, reloader, inline,
                                         embedded)
    if start_reloader:
        reloader.start()
        if shadow is not None:
            shadow.start()
    app.register_blueprint(api.bp)
    app.register_blueprint(feedback_api.bp)
    app.register_blueprint(shadow_api.bp)
    app.register_blueprint(integrations.bp)
    errors.register_errors(app)
    requestlog.init_app(app)
    auth.init_app(app, config.api_keys, config.admin_keys)
    # The policy studio, read-only, for admin keys only (not served without one).
    studio.init_service(app, policies, config.admin_keys)
    return app
