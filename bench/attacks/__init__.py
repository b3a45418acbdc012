"""Hostile input against a running service, with a canary caller beside it: inline rule
sets built to exhaust it (inline_rulesets) and slow clients (slow_clients)."""
