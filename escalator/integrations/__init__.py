"""Glue between chatbot platforms and escalator's HTTP API.

`client` makes the one call per turn (timeout budget, idempotent retries, fail policy);
`ids` turns platform ids into valid escalator ids; `lex`, `rasa` and `agents_sdk` adapt
each platform's per-turn contract. The service never imports this package, and the
platform adapters import their platform's SDK, installed by that platform's extra
(`pip install 'escalator[lex]'`, `[rasa]`, `[agents]`).
"""
