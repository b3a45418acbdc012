"""Helpers the tests share: real servers to test against (servers.py: a redis-server of a
test's own, `escalator serve`, HTTP calls, metrics, waiting with a deadline), the
deployment checks' tools (ops.py), the platform adapters' fakes and fixtures
(integrations.py), the policy studio's corpus, page tokens and replay waits (studio.py),
and markdown pages by heading anchor (markdown.py).
Imported as `support.<module>` (tests/ is on the import path)."""
