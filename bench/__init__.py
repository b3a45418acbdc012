"""Benchmarks, model fitting and attack scripts: run by hand from the repository root,
never by the service.

    python -m bench.quality.quality ../shared/data   # how the scores agree with people
    python -m bench.perf.load                        # capacity, against /healthz
    python -m bench.attacks.slow_clients             # slow clients against the service

quality/ measures and fits the scorers on labelled conversations, perf/ measures cost
and speed, attacks/ sends hostile input and watches a canary; common/ holds what they
share (a private redis-server, ports and polling, the statistics). docs/bench.md says
what each one measures and which ratio it reports.
"""
