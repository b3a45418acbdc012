"""Running the service: `escalator serve` under gunicorn.

gunicorn_config.py (settings and hooks, also what the root gunicorn.conf.py uses),
worker.py (the worker class: reads each request whole before serving it, within a
deadline) and run.py (what `escalator serve` sets up around gunicorn: the metrics folder,
the embedded Redis, the run folder, SIGHUP as a rules reload).

Nothing here may import prometheus_client at import time: `escalator serve` must set
PROMETHEUS_MULTIPROC_DIR first.
"""
