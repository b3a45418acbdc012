"""The routes of the HTTP API: parse, call the pipeline, dump. Errors are raised as ApiError
(or the pipeline's own) and answered by escalator.http.errors, JSON with a stable code."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError

from escalator import metrics
from escalator.errors import PolicyError, Problem
from escalator.http import openapi
from escalator.http.auth import caller_identity
from escalator.http.errors import ApiError
from escalator.http.inline import InlineLimitExceeded, RateLimited
from escalator.http.schemas import ReleaseSchema, timestamp_problem
from escalator.http.services import Services, services
from escalator.model import ConversationState, Decision
from escalator.policy import INLINE_RULESET, Policy, named_inside
from escalator.reloader import ReloadBusy, RuleReloader, notify_other_workers
from escalator.tools.transcripts import TranscriptError, decide_transcript, parse_transcript
from escalator.turnschema import turn_schema, valid_id

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# Made once: json.loads(raw, parse_constant=...) builds a decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def json_body() -> Any:
    """The request's JSON body, or an ApiError (415 not JSON, 413 too large, 400 malformed)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if request.content_length is None and _more_than(raw, current_app.config["MAX_CONTENT_LENGTH"]):
        raise ApiError(413, "payload_too_large", "The body is larger than "
                       f"{current_app.config['MAX_CONTENT_LENGTH']} bytes.")
    try:
        # What json.loads does with bytes: UTF-8, -16 or -32, as the bytes say.
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except RecursionError as exc:  # "[[[[..." deeper than the parser can go
        raise ApiError(400, "invalid_request", "The body is nested too deeply.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request", f"The body is not valid JSON: {exc}") from exc
    limit = current_app.config["ESCALATOR_MAX_JSON_DEPTH"]
    if _deeper_than(body, limit):
        raise ApiError(400, "invalid_request",
                       f"The body is nested deeper than {limit} levels.")
    return body


def _more_than(raw: bytes, limit: int) -> bool:
    """True if a body without Content-Length (chunked) goes on past the `limit` bytes read."""
    # Werkzeug stops reading such a body at the limit without an error, so an oversized
    # chunked body was silently cut there (and answered 200 if the cut happened to be valid
    # JSON). One byte more from the server's stream tells a body of exactly `limit` bytes
    # from a longer one; nothing beyond that byte is read.
    return len(raw) >= limit and bool(request.environ["wsgi.input"].read(1))


def _deeper_than(value: Any, limit: int) -> bool:
    """True if lists and objects nest more than `limit` levels deep."""
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper_than(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(_deeper_than(v, limit - 1) for v in value)
    return False


def checked_id(conversation_id: str) -> str:
    if not valid_id(conversation_id):
        raise ApiError(400, "invalid_request", "Invalid conversation id.",
                       {"conversation_id": ["must be 1-128 characters of A-Z a-z 0-9 . _ : @ -"]})
    return conversation_id


def state_summary(conversation_id: str, state: ConversationState, version: int) -> dict[str, Any]:
    """What GET /v1/conversations/{id} shows: numbers and labels, never text."""
    body = asdict(state)
    # The scorers' memory (signatures, hashed ids) means nothing outside the scorers, and
    # the brief's memory is shown where it is meant to be read: in the handoff brief; the
    # decisions kept for feedback are the decisions' own to show.
    del body["scoring"], body["seen"], body["decided"]
    body["handoff_priority"] = state.handoff_urgency  # the deprecated name, for old callers
    body.update(conversation_id=conversation_id, version=version)
    return body


@bp.post("/v1/conversations/<conversation_id>/turns")
def post_turn(conversation_id: str) -> Response:
    svc = services()
    checked_id(conversation_id)
    payload = json_body()
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    try:
        turn = turn_schema(svc.config.max_context_keys).load(payload)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", "The turn is not valid.",
                       exc.messages_dict) from exc
    if turn.timestamp is not None:
        problem = timestamp_problem(turn.timestamp, time.time(), svc.config.state_ttl_seconds)
        if problem is not None:
            raise ApiError(400, "invalid_request", "The turn is not valid.",
                           {"timestamp": [problem]})
    decision = svc.pipeline.decide(conversation_id, turn)
    g.decision_id = decision.decision_id
    if request.args.get("shadow") in ("1", "true"):
        # The shadow rule set's verdict, for a caller who asks (escalator.shadow).
        shadow = None if decision.shadow is None else decision.shadow.to_dict()
        return jsonify({**decision.to_dict(), "shadow": shadow})
    # The bytes the state store keeps for retries: encoded once, in the body's own order.
    return Response(decision.to_json(), mimetype="application/json")


@bp.get("/v1/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    svc = services()
    _needs_store(svc)
    found = svc.pipeline.summary(checked_id(conversation_id))
    if found is None:
        raise ApiError(404, "not_found", "No state is kept for this conversation.")
    state, version = found
    return jsonify(state_summary(conversation_id, state, version))


@bp.delete("/v1/conversations/<conversation_id>")
def delete_conversation(conversation_id: str) -> Response:
    svc = services()
    _needs_store(svc)
    svc.pipeline.erase(checked_id(conversation_id))
    return Response(status=204)


def _empty_body() -> bool:
    """True if the request has no body at all (no Content-Length or 0, and not chunked)."""
    return (not request.content_length
            and "chunked" not in request.headers.get("Transfer-Encoding", "").lower())


@bp.post("/v1/conversations/<conversation_id>/release")
def release_conversation(conversation_id: str) -> Response:
    svc = services()
    _needs_store(svc)
    checked_id(conversation_id)
    if not _empty_body():
        # Nothing to say yet but {}: checked like a turn, so a field a caller thinks it
        # sets (a reason, an agent) is refused rather than silently ignored.
        try:
            ReleaseSchema().load(json_body())
        except ValidationError as exc:
            raise ApiError(400, "invalid_request", "The release body is not valid: it takes "
                           "no fields (send {} or no body).", exc.messages_dict) from exc
    if svc.pipeline.release(conversation_id) is None:
        raise ApiError(404, "not_found", "No state is kept for this conversation.")
    return get_conversation(conversation_id)


@bp.post("/v1/evaluate")
def evaluate() -> Response:
    """Dry run: decide a whole transcript, against the active rules or ones sent inline."""
    svc = services()
    payload = json_body()
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    unknown = sorted(set(payload) - {"conversation_id", "turns", "ruleset"})
    if unknown:
        raise ApiError(400, "invalid_request", "Unknown fields.",
                       {name: ["Unknown field."] for name in unknown})
    try:
        transcript = parse_transcript(
            {k: v for k, v in payload.items() if k != "ruleset"},
            max_context_keys=svc.config.max_context_keys)
    except TranscriptError as exc:
        raise ApiError(400, "invalid_request", str(exc), exc.details) from exc
    inline = payload.get("ruleset")
    if inline is None:
        with svc.policies.use() as policy:
            decisions = decide_transcript(policy, transcript)
        return _evaluation(policy, transcript.conversation_id, decisions)
    files = _inline_files(inline)
    caller = caller_identity(bool(svc.config.api_keys or svc.config.admin_keys))
    with svc.policies.use() as active:
        try:
            body = svc.inline.evaluate(
                caller, files, transcript, active, svc.config.rules_path,
                lambda policy, decisions: _evaluation(
                    policy, transcript.conversation_id, decisions).get_data())
        except PolicyError as exc:
            raise _refused(exc) from exc
        except RateLimited as exc:
            raise ApiError(429, "rate_limited", f"Too many inline evaluations: {exc}. Try "
                           f"again in {exc.retry_after} s.", {"retry_after": exc.retry_after},
                           headers={"Retry-After": str(exc.retry_after)}) from exc
        except InlineLimitExceeded as exc:
            stopped = Problem(INLINE_RULESET, None, str(exc), code="budget", limit=exc.limit)
            raise ApiError(422, "ruleset_too_large", f"The inline evaluation was stopped: "
                           f"{exc}. Send a smaller rule set or fewer turns.",
                           {"limits": [exc.limit], "ruleset": [str(exc)],
                            "diagnostics": [stopped.to_dict()]}) from exc
    return Response(body, mimetype="application/json")


def _evaluation(policy: Policy, conversation_id: str, decisions: list[Decision]) -> Response:
    """The body of an evaluation: the rule set that decided, and each turn's decision."""
    return jsonify({"conversation_id": conversation_id,
                    "ruleset": asdict(policy.ruleset.ref()),
                    "decisions": [d.to_dict() for d in decisions]})


def _inline_files(inline: Any) -> dict[str, str]:
    files = inline.get("files") if isinstance(inline, dict) else None
    if (not isinstance(files, dict) or not files or set(inline) != {"files"}
            or not all(isinstance(v, str) for v in files.values())):
        shape = Problem(INLINE_RULESET, None, "must be an object with 'files'", code="schema")
        raise ApiError(400, "invalid_request", "A rule set sent inline is "
                       '{"files": {"NAME.yaml": "<the file\'s text>", ...}}.',
                       {"ruleset": [shape.message], "diagnostics": [shape.to_dict()]})
    return files


def _refused(exc: PolicyError) -> ApiError:
    """A rule set sent inline that was refused: 422 ruleset_too_large naming the limits it
    went over, else 400 invalid_request; every problem in details.ruleset (as text) and
    details.diagnostics (with its code)."""
    problems = [str(p) for p in exc.problems]
    diagnostics = [p.to_dict() for p in exc.problems]
    limits = sorted({p.limit for p in exc.problems if p.limit is not None})
    if limits:
        return ApiError(422, "ruleset_too_large", "The rule set sent is over the limits of "
                        f"a rule set ({', '.join(limits)}).",
                        {"limits": limits, "ruleset": problems, "diagnostics": diagnostics})
    return ApiError(400, "invalid_request", "The rule set sent is not valid.",
                    {"ruleset": problems, "diagnostics": diagnostics})


@bp.get("/v1/ruleset")
def get_ruleset() -> Response:
    return jsonify(services().policies.current.ruleset.describe())


@bp.post("/v1/ruleset/reload")
def reload_ruleset() -> Response:
    """Admin: reload the rules folder now (in this worker; under gunicorn, all workers);
    409 rather than a long wait when another reload runs or the folder is still changing."""
    return answer_reload(services().reloader,
                         "The rules folder was refused; the running rule set stays.")


def answer_reload(reloader: RuleReloader, refused: str) -> Response:
    """Have every worker read a reloader's folder and answer with this worker's result:
    409 while another reload runs or the folder settles, 422 with the problems (after
    `refused`) when the folder is refused, else the result with any warnings."""
    notify_other_workers()  # first, so the other workers read the folder meanwhile
    try:
        reloaded = reloader.reload("api")
    except ReloadBusy as exc:
        raise ApiError(409, "reload_in_progress", str(exc),
                       headers={"Retry-After": str(exc.retry_after_seconds)}) from exc
    folder = reloader.directory
    if reloaded.problems:
        raise ApiError(422, "invalid_ruleset", refused, {
            "problems": [str(p) for p in reloaded.problems],
            "diagnostics": [p.to_dict() for p in named_inside(reloaded.problems, folder)]})
    body: dict[str, Any] = {"result": reloaded.result, "version": reloaded.version,
                            "digest": reloaded.digest, "seconds": round(reloaded.seconds, 4)}
    if reloaded.warnings:
        body["warnings"] = [p.message for p in reloaded.warnings]
        body["diagnostics"] = [p.to_dict() for p in named_inside(reloaded.warnings, folder)]
    return jsonify(body)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    policy = svc.policies.current
    state_ok = svc.store is None or svc.store.ping()
    ready = state_ok or svc.config.fail_mode == "stateless"
    body = {
        "status": "ready" if ready else "not_ready",
        "ruleset": asdict(policy.ruleset.ref()),
        "state_store": "ok" if state_ok else "unavailable",
        "state_circuit": "open" if svc.store is not None and svc.store.circuit_open
        else "closed",
        "degraded": not state_ok,
    }
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of this API (built once per app)."""
    return Response(openapi.document_json(current_app), content_type="application/json")


def _needs_store(svc: Services) -> None:
    """ApiError 503 unless a state store is configured (the conversation routes need one)."""
    if svc.store is None:
        raise ApiError(503, "state_unavailable", "No state store is configured.")
