"""gunicorn configuration: the settings and hooks `escalator serve` uses, explained in
escalator/serving/gunicorn_config.py. Prefer `escalator serve`, which also sets up the metrics
folder and the embedded Redis and makes SIGHUP reload the rules instead of the workers."""

from escalator.serving.gunicorn_config import *  # noqa: F403
