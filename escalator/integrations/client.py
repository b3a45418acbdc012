"""The Python client of escalator's HTTP API: one call per customer turn.

    client = EscalatorClient("http://escalator:8080", api_key="...")
    decision = client.decide(Turn(conversation_id="whatsapp:+14155550100", turn_id="wamid.1",
                                  text="I want to talk to a person", channel="whatsapp"))
    if decision.route_to_human: ...

What it promises:
- **A timeout budget.** `decide` returns within `timeout` seconds (plus the time to
  build a local answer), whatever escalator does; each attempt has at most
  `attempt_timeout` of it.
- **Idempotent retries.** A connection error, a timeout, a 5xx or a 429 is retried
  with the same body and turn id while the budget lasts, so a turn escalator already
  decided is answered from its record (`replayed: true`) and counted once.
- **An explicit fail policy.** When no decision comes back (escalator down, slow,
  failing, or refusing the request), the answer is built locally: `keep_with_bot` by
  default, `route_to_human` if the caller chose it; and, whatever the policy, a turn in
  which the customer explicitly asks for a person routes to a person, detected by
  escalator's own request detector and phrase lists. Such a decision says so
  (`source="fail_policy"`, `error` says why) and is logged.
- **Ids as platforms send them.** Conversation, turn and prompt ids are mapped by an
  `IdMapper` (kept when valid, else hashed), labels are made to fit, text is cut to the
  8,000 characters escalator accepts.

HTTP goes through urllib3, which the service's dependencies already bring (through
requests): a thread-safe connection pool, connect and read timeouts per attempt, and
no retry or redirect of its own, so the retry rules above are the only ones.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import urllib3

from escalator.integrations.ids import IdMapper, label, language_tag

log = logging.getLogger("escalator.client")

ROUTE_TO_HUMAN = "route_to_human"
KEEP_WITH_BOT = "keep_with_bot"
MAX_TEXT_CHARS = 8000
MAX_RESPONSE_BYTES = 1_000_000
# Statuses worth another attempt with the same turn id: the service was restarting,
# overloaded or behind a proxy that gave up; the turn may or may not have been decided.
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_MIN_ATTEMPT_SECONDS = 0.02

DEFAULT_CUSTOMER_MESSAGE = "I'm connecting you with a member of our team now."
LOCAL_REQUEST_RULE = "explicit-human-request-local"
FAIL_POLICY_RULE = "escalator-unreachable"


class FailPolicy(Enum):
    """What to answer when escalator gives no decision (an explicit request still routes)."""

    KEEP_WITH_BOT = KEEP_WITH_BOT
    ROUTE_TO_HUMAN = ROUTE_TO_HUMAN


@dataclass(frozen=True)
class Turn:
    """One customer turn as a platform knows it; ids may be any platform ids."""

    conversation_id: str
    turn_id: str
    text: str | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    language: str | None = None
    prompt_id: str | None = None
    fallback: bool | None = None
    tier: str | None = None
    segment: str | None = None
    channel: str | None = None
    context: Mapping[str, str | int | float | bool] | None = None
    store_state: bool | None = None


@dataclass(frozen=True)
class Reason:
    """One rule that matched: its name, priority, decision and plain-words description."""

    rule: str
    priority: int
    decision: str
    description: str


@dataclass(frozen=True)
class Handoff:
    """Where a routed conversation goes, and what the person taking over is told.

    `brief` is the handoff brief when escalator sends one (labels and numbers only);
    `raw` is the whole handoff object as received, so fields added later reach the
    platform without a change here."""

    queue: str
    urgency: str
    customer_message: str
    brief: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def payload(self) -> dict[str, Any]:
        """The handoff as a plain dict for a platform's handoff form: every field received,
        `urgency` always set, `brief` only when escalator sent one."""
        out: dict[str, Any] = thaw(self.raw)
        out.update(queue=self.queue, urgency=self.urgency,
                   customer_message=self.customer_message)
        if self.brief is not None:
            out["brief"] = thaw(self.brief)
        return out


@dataclass(frozen=True)
class Decision:
    """escalator's answer for one turn, or the fail policy's when none came back."""

    decision: str
    conversation_id: str
    turn_id: str
    decision_id: str | None = None
    handoff: Handoff | None = None
    reasons: tuple[Reason, ...] = ()
    scores: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    degraded: bool = False
    replayed: bool = False  # this answer is a retry's stored decision (the API's name)
    source: str = "escalator"
    error: str | None = None
    attempts: int = 0
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def route_to_human(self) -> bool:
        """True when the conversation should go to a person now."""
        return self.decision == ROUTE_TO_HUMAN

    def body(self) -> dict[str, Any]:
        """escalator's answer as received, as a plain dict ({} for a fail-policy decision)."""
        out: dict[str, Any] = thaw(self.raw)
        return out

    @property
    def decisive_rule(self) -> str | None:
        """The rule that decided (the first reason), if any."""
        return self.reasons[0].rule if self.reasons else None


def thaw(value: Any) -> Any:
    """A plain, mutable copy of frozen JSON (mapping proxies and tuples)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def _freeze(value: Any) -> Any:
    """Read-only JSON: mappings become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def load_request_detector(lexicons_folder: Path | None = None) -> Callable[[str | None, str | None],
                                                                            bool]:
    """escalator's own detector of an explicit request for a person, with the lexicons
    of `lexicons_folder` (default: the packaged default policy's).

    The only place the client reaches inside the service's code, so that the local
    answer recognises exactly what the service would."""
    from escalator import scoring  # the service's scoring package: the one import to move
    from escalator.config import default_rules_dir

    folder = lexicons_folder or default_rules_dir() / "lexicons"
    lexicons = scoring.lexicons.load_lexicons(folder)

    def asks_for_person(text: str | None, intent: str | None) -> bool:
        """True when the text (or the NLU intent) is an explicit request for a person."""
        words, matches = scoring.text.EMPTY_WORDS, []
        normalised = scoring.text.normalise_text(text) if text else ""
        if normalised.strip():
            words = scoring.text.split_words(scoring.text.fold(normalised))
            matches = lexicons.index.find(words.words)
        return scoring.requests.requested_human(words, matches, intent, lexicons)

    return asks_for_person


class EscalatorClient:
    """Calls escalator once per turn, within a time budget, and always returns a Decision."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 2.0,
                 attempt_timeout: float = 0.7, max_attempts: int = 3,
                 fail_policy: FailPolicy = FailPolicy.KEEP_WITH_BOT,
                 fallback_queue: str = "support", fallback_urgency: str = "high",
                 fallback_message: str = DEFAULT_CUSTOMER_MESSAGE,
                 ids: IdMapper | None = None,
                 request_detector: Callable[[str | None, str | None], bool] | None = None,
                 pool: urllib3.PoolManager | None = None) -> None:
        if timeout <= 0 or attempt_timeout <= 0 or max_attempts < 1:
            raise ValueError("timeout and attempt_timeout must be positive, max_attempts >= 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.max_attempts = max_attempts
        self.fail_policy = fail_policy
        self.fallback_queue = fallback_queue
        self.fallback_urgency = fallback_urgency
        self.fallback_message = fallback_message
        self.ids = ids or IdMapper()
        # Loaded now, not on the first failure: building the answer during an outage must
        # be quick, and a broken lexicon folder is better found at start.
        self.asks_for_person = request_detector or load_request_detector()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "escalator-client/1"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._pool = pool or urllib3.PoolManager(maxsize=10, block=False, retries=False)
        self._random = random.Random()
        self._lock = threading.Lock()

    def body(self, turn: Turn) -> dict[str, Any]:
        """The JSON body escalator receives for this turn (the same on every attempt)."""
        message: dict[str, Any] = {}
        if turn.text is not None and turn.text.strip():
            message["text"] = turn.text[:MAX_TEXT_CHARS]
        intent = label(turn.intent)
        if intent is not None:
            message["intent"] = intent
            if turn.intent_confidence is not None:
                message["intent_confidence"] = min(1.0, max(0.0, float(turn.intent_confidence)))
        language = language_tag(turn.language)
        if language is not None:
            message["language"] = language
        if not message.keys() & {"text", "intent"}:
            raise ValueError("a turn needs text or an intent")
        body: dict[str, Any] = {"turn_id": self.ids(turn.turn_id), "message": message}
        bot: dict[str, Any] = {}
        if turn.prompt_id:
            bot["prompt_id"] = self.ids(turn.prompt_id)
        if turn.fallback is not None:
            bot["fallback"] = bool(turn.fallback)
        if bot:
            body["bot"] = bot
        customer = {k: v for k, v in (("tier", label(turn.tier)),
                                      ("segment", label(turn.segment))) if v is not None}
        if customer:
            body["customer"] = customer
        channel = label(turn.channel)
        if channel is not None:
            body["channel"] = channel
        if turn.context:
            body["context"] = dict(turn.context)
        if turn.store_state is not None:
            body["consent"] = {"store_state": turn.store_state}
        return body

    def decide(self, turn: Turn) -> Decision:
        """escalator's decision for this turn, or the fail policy's within the time budget."""
        started = time.monotonic()
        deadline = started + self.timeout
        conversation_id = self.ids(turn.conversation_id)
        body = self.body(turn)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        url = f"{self.base_url}/v1/conversations/{conversation_id}/turns"
        error = "no attempt"
        attempts = 0
        while attempts < self.max_attempts:
            remaining = deadline - time.monotonic()
            if remaining < _MIN_ATTEMPT_SECONDS:
                error = f"{error}; time budget of {self.timeout} s used up"
                break
            attempts += 1
            per_attempt = min(remaining, self.attempt_timeout)
            retry_after: float | None = None
            try:
                response = self._pool.request(
                    "POST", url, body=data, headers=self._headers, retries=False,
                    redirect=False, preload_content=False,
                    timeout=urllib3.Timeout(connect=per_attempt, read=per_attempt))
                try:
                    raw = response.read(MAX_RESPONSE_BYTES + 1)
                finally:
                    response.release_conn()
            except urllib3.exceptions.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status
                parsed = _json(raw)
                if status == 200 and isinstance(parsed, dict) and len(raw) <= MAX_RESPONSE_BYTES:
                    try:
                        decision = _decision(parsed, conversation_id, body["turn_id"], attempts)
                    except (TypeError, ValueError):
                        decision = None
                    if decision is not None:
                        return decision
                    error = "200 with a body that is not a decision"
                else:
                    code = _error_code(parsed)
                    error = f"HTTP {status}" + (f" {code}" if code else "")
                    if status not in _RETRYABLE:
                        break
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempts >= self.max_attempts:
                break
            pause = self._backoff(attempts) if retry_after is None else retry_after
            if time.monotonic() + pause + _MIN_ATTEMPT_SECONDS > deadline:
                error = f"{error}; no time left in the {self.timeout} s budget to retry"
                break
            time.sleep(pause)
        return self._fallback(turn, conversation_id, body["turn_id"], error, attempts)

    def _backoff(self, attempts: int) -> float:
        """A short, jittered pause before the next attempt (the budget is seconds, not minutes)."""
        with self._lock:
            jitter = self._random.uniform(0.5, 1.0)
        return float(min(0.05 * 2 ** (attempts - 1), 0.4) * jitter)

    def _fallback(self, turn: Turn, conversation_id: str, turn_id: str, error: str,
                  attempts: int) -> Decision:
        """The local decision when escalator gave none: a request routes, else the policy."""
        asked = self.asks_for_person(turn.text, label(turn.intent))
        route = asked or self.fail_policy is FailPolicy.ROUTE_TO_HUMAN
        if asked:
            reason = Reason(LOCAL_REQUEST_RULE, 100, ROUTE_TO_HUMAN,
                            "The customer asked to speak to a person (escalator could not "
                            "be reached; detected locally).")
        else:
            reason = Reason(FAIL_POLICY_RULE, 0, self.fail_policy.value,
                            "escalator could not be reached; the client's fail policy decided.")
        handoff = None
        if route:
            raw = {"queue": self.fallback_queue, "urgency": self.fallback_urgency,
                   "customer_message": self.fallback_message}
            handoff = Handoff(self.fallback_queue, self.fallback_urgency,
                              self.fallback_message, None, MappingProxyType(raw))
        log.warning("escalator gave no decision for conversation %s turn %s after %d "
                    "attempt(s) (%s): %s by the fail policy", conversation_id, turn_id,
                    attempts, error, ROUTE_TO_HUMAN if route else KEEP_WITH_BOT)
        return Decision(decision=ROUTE_TO_HUMAN if route else KEEP_WITH_BOT,
                        conversation_id=conversation_id, turn_id=turn_id, handoff=handoff,
                        reasons=(reason,), source="fail_policy", error=error,
                        attempts=attempts)

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()


def _json(raw: bytes) -> Any:
    """The parsed JSON body, or None."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_code(parsed: Any) -> str | None:
    """The stable error code of escalator's error envelope, if the body is one."""
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        code = parsed["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header given in seconds (dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _decision(parsed: dict[str, Any], conversation_id: str, turn_id: str,
              attempts: int) -> Decision | None:
    """A Decision from escalator's 200 body, or None if it does not read as one."""
    decision = parsed.get("decision")
    if decision not in (ROUTE_TO_HUMAN, KEEP_WITH_BOT):
        return None
    handoff = None
    raw_handoff = parsed.get("handoff")
    if isinstance(raw_handoff, dict):
        # `urgency` is the current name; `priority` the one it replaces.
        urgency = raw_handoff.get("urgency", raw_handoff.get("priority"))
        brief = raw_handoff.get("brief")
        handoff = Handoff(queue=str(raw_handoff.get("queue", "")),
                          urgency=str(urgency) if urgency is not None else "",
                          customer_message=str(raw_handoff.get("customer_message", "")),
                          brief=_freeze(brief) if isinstance(brief, dict) else None,
                          raw=_freeze(raw_handoff))
    reasons = tuple(Reason(str(r.get("rule", "")), int(r.get("priority", 0)),
                           str(r.get("decision", "")), str(r.get("description", "")))
                    for r in parsed.get("reasons") or () if isinstance(r, dict))
    scores = parsed.get("scores") if isinstance(parsed.get("scores"), dict) else {}
    return Decision(decision=decision,
                    conversation_id=str(parsed.get("conversation_id", conversation_id)),
                    turn_id=str(parsed.get("turn_id", turn_id)),
                    decision_id=parsed.get("decision_id"), handoff=handoff, reasons=reasons,
                    scores=MappingProxyType(dict(scores or {})),
                    degraded=bool(parsed.get("degraded", False)),
                    replayed=bool(parsed.get("replayed", False)),
                    attempts=attempts, raw=_freeze(parsed))
