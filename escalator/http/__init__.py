"""The HTTP layer: thin. Routes parse a request, call the pipeline, and answer; errors are
JSON with a stable code.

api.py (routes), services.py (what an app holds: config, policies, store, pipeline, the
reloader and the inline evaluator), errors.py (error bodies and codes), auth.py (bearer
keys), schemas.py and
response_schemas.py (what callers send beyond a turn, and what the API answers, for the
OpenAPI document openapi.py builds), requestlog.py (request ids, one log line per request),
inline.py and ratelimit.py (rule sets sent inline to POST /v1/evaluate: a sandboxed child
process, a bounded number at once, a rate per caller).
"""
