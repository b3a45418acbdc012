"""Glue between chatbot platforms and escalator's HTTP API.

`client` makes the one call per turn (timeout budget, idempotent retries, fail policy);
`ids` turns platform ids and labels into ones escalator takes; `lex`, `rasa` and
`agents_sdk` adapt each platform's per-turn contract, calling escalator through the
client, and import their platform's SDK, installed by that platform's extra
(`pip install 'escalator[lex]'`, `[rasa]`, `[agents]`). `dialogflow_cx` is the other way
round: escalator serves the Dialogflow CX webhook itself (escalator.http.integrations), so
it is plain Python on CX's JSON, and it and `ids` are the only modules of this package
the service imports.
"""
