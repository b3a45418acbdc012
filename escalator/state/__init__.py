"""Conversation state: what is remembered of a conversation between its turns.

store.py keeps it in Redis (the only module that imports redis), codec.py says how a
conversation is written there, circuit.py stops a dead Redis from costing every turn its
budget, embedded.py runs a Redis when none is configured, and handoff_cache.py lets the
workers of a pod remember handoffs while Redis cannot be read.
"""
