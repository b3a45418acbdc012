"""Prometheus metrics: what SREs watch. Label values are bounded (no ids, no free text).

Limits first: in gunicorn's multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before this
module is imported) Info, Enum and custom collectors do not work, so the rule set's
identity is a gauge with labels; /metrics must then build a fresh registry per scrape.
Each process writes its own file, and a forked worker starts a new one with every value
at 0: what the master set before the fork never reaches a scrape, so each worker
publishes its own values after the fork (publish_worker).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from escalator.model import KNOWN_CHANNELS, Decision  # caller channels folded onto these

DECISIONS = Counter(
    "escalator_decisions_total", "Decisions made, by decision and channel (retries answered "
    "with a stored decision are not decisions: see escalator_retried_turns_total).",
    ["decision", "channel"],
)
RETRIED_TURNS = Counter(
    "escalator_retried_turns_total",
    "Retries of a turn already decided, answered with its stored decision, by channel.",
    ["channel"],
)
RULE_MATCHES = Counter(
    "escalator_rule_matches_total", "Rules that matched a turn, by rule id.", ["rule"]
)
DECISION_LATENCY = Histogram(
    "escalator_decision_duration_seconds", "Time to decide one turn, state included.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HTTP_REQUESTS = Counter(
    "escalator_http_requests_total", "HTTP requests, by route and status.", ["route", "status"]
)
HTTP_DURATION = Histogram(
    "escalator_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
STATE_ERRORS = Counter(
    "escalator_state_errors_total", "Turns and requests whose state store call failed or timed "
    "out (each once, whether it was then decided without state or answered 503)."
)
# Reasons: type (a key of another Redis type), format (not an escalator value), deflate,
# json, fields (valid JSON of the wrong shape), record (a stored decision).
STATE_UNREADABLE = Counter(
    "escalator_state_unreadable_total",
    "Stored conversation values that could not be read (each replaced by a fresh "
    "conversation on its next turn), by reason; counted once per value and worker.",
    ["reason"],
)
# Rare events: each series exists from the start at 0, so the first one is not hidden from
# rate()/increase() (a series that first appears at 1 shows no increase).
for _reason in ("type", "format", "deflate", "json", "fields", "record"):
    STATE_UNREADABLE.labels(_reason)
STATE_CONFLICTS = Counter(
    "escalator_state_conflicts_total",
    "Optimistic updates retried because another turn of the conversation won.",
)
DECISION_LOG_ERRORS = Counter(
    "escalator_decision_log_errors_total", "Decision records that could not be written."
)
CLIENT_TIMEOUTS = Counter(
    "escalator_client_timeouts_total",
    "Connections closed because the client did not send its whole request, or take its "
    "answer, within ESCALATOR_CLIENT_TIMEOUT_SECONDS (slow clients).",
)
DEGRADED_DECISIONS = Counter(
    "escalator_degraded_decisions_total", "Decisions made without state (state store down)."
)
HANDOFF_CACHE_HITS = Counter(
    "escalator_handoff_cache_hits_total",
    "Turns decided without state that stayed with a person because this pod remembered "
    "the conversation's handoff.",
)
HANDOFF_CACHE_ERRORS = Counter(
    "escalator_handoff_cache_errors_total",
    "Reads or writes of the pod's handoff cache that failed (the turn was decided anyway).",
)
# livemax: 1 if any live worker has found Redis down; dead workers' values are dropped.
STATE_CIRCUIT_OPEN = Gauge(
    "escalator_state_circuit_open",
    "1 while the state store's circuit breaker is open (Redis calls fail fast), else 0.",
    multiprocess_mode="livemax",
)
RELOADS = Counter(
    "escalator_ruleset_reloads_total", "Rule set reloads, by result (success, failed).",
    ["result"],
)
# Both series exist from the start at 0: a counter series that first appears at 1 hides
# its first increase from increase()/rate(), and the failed-reload alert would miss it.
for _result in ("success", "failed"):
    RELOADS.labels(_result)
# livemax: 1 for every rule set some live worker runs (two during a reload refused by one
# worker only), and a dead worker's values leave with it. ("mostrecent" let one worker's
# 0 for a replaced set hide another worker still running it, and drops any value never
# set with a timestamp, such as a fresh fork's.)
RULESET_INFO = Gauge(
    "escalator_ruleset_info", "The active rule set (value 1), by name, version and digest.",
    ["name", "version", "digest"], multiprocess_mode="livemax",
)
FEEDBACK = Counter(
    "escalator_feedback_total",
    "Feedback on decisions, by the decision's decisive rule (`none` if no rule of the "
    "active rule set decided it) and label (handoff_needed, handoff_not_needed, "
    "should_have_escalated, resolved_by_bot); replayed feedback is not counted again.",
    ["rule", "label"],
)
SHADOW_DECISIONS = Counter(
    "escalator_shadow_decisions_total",
    "Live turns the shadow rule set also decided, by whether it agreed (true, false).",
    ["agrees"],
)
for _agrees in ("true", "false"):
    SHADOW_DECISIONS.labels(_agrees)
SHADOW_DISAGREEMENTS = Counter(
    "escalator_shadow_disagreements_total",
    "Live turns the shadow rule set decided otherwise, by the decisive rule of each (rule "
    "ids of the two rule sets, handoff-in-progress, or `none`).",
    ["active_rule", "shadow_rule"],
)
SHADOW_RELOADS = Counter(
    "escalator_shadow_reloads_total", "Shadow rule set reloads, by result (success, failed).",
    ["result"],
)
for _result in ("success", "failed"):
    SHADOW_RELOADS.labels(_result)
SHADOW_RULESET_INFO = Gauge(
    "escalator_shadow_ruleset_info",
    "The shadow rule set evaluated beside the active one (value 1), by name, version, digest.",
    ["name", "version", "digest"], multiprocess_mode="livemax",
)


def channel_label(channel: str | None) -> str:
    """A bounded label for a caller-supplied channel."""
    if channel is None:
        return "none"
    lowered = channel.lower()
    return lowered if lowered in KNOWN_CHANNELS else "other"


# The labelled series a turn writes, looked up once: labels() checks and joins the values
# under a lock on every call. Label values are bounded (see above), and so is this.
_series: dict[tuple[Any, ...], Any] = {}


def _labelled(metric: Any, *values: str) -> Any:
    """metric.labels(*values), remembered."""
    key = (id(metric), *values)
    series = _series.get(key)
    if series is None:
        series = _series[key] = metric.labels(*values)
    return series


def observe_decision(decision: Decision, channel: str | None, seconds: float) -> None:
    """Count one decision, its matched rules and its latency; or one retry."""
    if decision.retried:
        # A platform retrying a turn 199 times made one decision, not 200: counting
        # retries as decisions would inflate the escalation-rate panels and alerts.
        _labelled(RETRIED_TURNS, channel_label(channel)).inc()
        return
    _labelled(DECISIONS, decision.decision, channel_label(channel)).inc()
    for reason in decision.reasons:  # rule ids come from the loaded rule set: bounded
        _labelled(RULE_MATCHES, reason.rule).inc()
    DECISION_LATENCY.observe(seconds)


def observe_request(route: str, status: int, seconds: float | None) -> None:
    """Count one HTTP request by route and status, and its duration (if it was timed)."""
    _labelled(HTTP_REQUESTS, route, str(status)).inc()
    if seconds is not None:
        _labelled(HTTP_DURATION, route).observe(seconds)


_active_ruleset: tuple[str, str, str] | None = None


def set_ruleset(name: str, version: str, digest: str) -> None:
    """Publish which rule set is active: its series is 1, a replaced one drops to 0."""
    global _active_ruleset
    # Gauge.clear() is not implemented in multiprocess mode, so the old series stays at 0.
    if _active_ruleset is not None and _active_ruleset != (name, version, digest):
        RULESET_INFO.labels(*_active_ruleset).set(0)
    RULESET_INFO.labels(name, version, digest).set(1)
    _active_ruleset = (name, version, digest)


def publish_worker(name: str, version: str, digest: str) -> None:
    """In a freshly forked worker: write this process's own value of every metric set at
    start (the rule set it runs, the reload counters' zero series, a closed circuit), so
    that each has samples from the first scrape on."""
    global _active_ruleset
    _active_ruleset = None
    set_ruleset(name, version, digest)
    for result in ("success", "failed"):
        RELOADS.labels(result).inc(0)
    STATE_CIRCUIT_OPEN.set(0)  # a fork's circuit breaker starts closed


class _SizedFilesCollector(multiprocess.MultiProcessCollector):
    """The workers' metric files merged, leaving out any a worker is still creating."""

    def collect(self) -> Any:
        # prometheus_client creates a worker's file empty and sizes it just after; a scrape
        # that reads it in between failed whole (a 500 from /metrics, seen while workers
        # started after a reload). An empty file holds no samples yet, so it is skipped.
        files = [name for name in glob.glob(os.path.join(self._path, "*.db"))
                 if _size(name) >= _HEADER_BYTES]
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


_HEADER_BYTES = 8  # a metric file's used-bytes header, written when it is sized


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except FileNotFoundError:  # a dead worker's live gauges, removed since the glob
        return 0


def exposition() -> tuple[bytes, str]:
    """The body and content type of a /metrics scrape, in single- or multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _SizedFilesCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
