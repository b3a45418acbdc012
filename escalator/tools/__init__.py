"""The policy owners' offline tools, on the service's own pipeline and with no state store:
dry runs of transcripts (transcripts.py), rule tests (ruletests.py), corpus replays that
compare rule sets (replay.py), corpora converted from data sets' own formats
(corpus.py), and the fairness audit of a decision log (audit.py).
"""
