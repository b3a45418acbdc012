"""gunicorn settings and hooks for `escalator serve` (the root gunicorn.conf.py imports
this, so a plain `gunicorn -c gunicorn.conf.py` gets the same ones).

Limits first: prometheus_client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR set
before it is imported and emptied at start (`escalator serve` does both); Info, Enum and
custom collectors do not work across workers (see escalator.metrics).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

# Sync workers: a decision is CPU-bound and short (about a millisecond), and durable-rules
# serialises evaluations inside one process anyway, so threads would add contention, not
# throughput. Scale with processes: about one per core. gunicorn's sync worker, with a
# deadline on reading each request (ESCALATOR_CLIENT_TIMEOUT_SECONDS): a slow client holds a
# worker for that long at most (escalator/serving/worker.py). Deployments put a buffering proxy in
# front as well (k8s/base/nginx.conf), so slow clients never reach a worker.
worker_class = "escalator.serving.worker.BufferingSyncWorker"
workers = 2
bind = "127.0.0.1:8080"

# A worker that does not answer in 30 s is stuck (a turn takes milliseconds): restart it.
timeout = 30
# On SIGTERM, workers stop accepting and finish the turns in flight for up to 20 s, well
# inside Kubernetes' default 30 s termination grace period.
graceful_timeout = 20
# Chatbot platforms keep connections open; 5 s covers their keep-alive reuse.
keepalive = 5

# Load and check the rules once, in the master, and fork the workers from it: a worker
# restarted while a broken rule file sits in the folder still boots with the last good
# rules (a worker that fails to boot makes gunicorn stop the whole service).
preload_app = True

# No max_requests: recycled workers leave their metric files behind (totals never go
# down), which grows the metrics folder and slows every scrape. A worker is recycled only
# when its memory has grown past ESCALATOR_WORKER_MAX_RSS_MB (post_request below): rare,
# so its few files do not matter.
max_requests = 0

# The service logs one JSON line per request itself (escalator.logs), without the path,
# which holds a conversation id; gunicorn's access log would duplicate it.
accesslog = None
errorlog = "-"
# gunicorn builds each request's access-log line whenever a logconfig_dict is set (below),
# even with no access log to write it to: ~40 us of a worker's CPU per request, dropped.
logger_class = "escalator.serving.gunicorn_config.NoAccessLogger"
# gunicorn's own lines (master and workers: starting, booting, signals, timeouts) as JSON
# lines too, in the service's format, so a log pipeline parses every line of the pod.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,  # the service's own loggers keep their handler
    "formatters": {"json": {"()": "escalator.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stderr"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},  # any library's warnings
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "propagate": False},
                "gunicorn.access": {"handlers": [], "propagate": False}},
}
# No control socket (gunicorn >= 25.1 opens one under $HOME for `gunicornc`): the image's
# HOME is not writable, so it only logged an error at every start, and its commands would
# bypass serve's SIGHUP handling (a reload there restarts workers instead of the rules).
control_socket_disable = True


class NoAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger without the access log (escalator writes its own request lines)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Nothing: see accesslog above."""


def on_starting(server: Any) -> None:
    """Master, before forking: empty the metrics folder (it may survive a restart). This
    runs after the preload, so it also removes what the master itself wrote while loading
    the app: the master serves nothing, and its values (a rule set it will never replace)
    must not count as a live process's."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for leftover in Path(folder).glob("*.db"):
            leftover.unlink()


def pre_fork(server: Any, worker: Any) -> None:
    """Master, before each fork: move everything loaded so far (rules, lexicons, modules)
    out of the garbage collector's reach. A worker's full collections then skip those
    objects: no pause of 30+ ms to traverse them, and no writes to the pages they share with
    the master (a worker's private memory fell from 30 to 19 MB, bench/perf/load.py)."""
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exits: mark its live gauges dead (child_exit, not worker_exit,
    is the hook that runs in the master)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_worker_init(worker: Any) -> None:
    """Worker, after boot: publish its metrics, reload the rules on SIGHUP and poll the
    rules folder."""
    from escalator import metrics, reloader
    from escalator.http.services import EXTENSION

    services = worker.wsgi.extensions[EXTENSION]
    ruleset = services.policies.current.ruleset
    metrics.publish_worker(ruleset.name, ruleset.version, ruleset.digest)
    if services.pipeline.shadow is not None:
        services.pipeline.shadow.publish_worker()
    reloader.master_pid = worker.ppid
    worker.escalator_max_rss = services.config.worker_max_rss_mb * 1024 * 1024
    # gunicorn resets a worker's SIGHUP to the default action, which would kill it. The
    # handler only asks the worker's one reload thread, so a storm of signals coalesces.
    shadow = services.pipeline.shadow
    signal.signal(signal.SIGHUP, lambda signum, frame: _reload_from_signal(services))
    # Threads do not survive the fork: start the reload thread here. It checks the
    # folder at once, so a worker forked after a reload catches up with it.
    services.reloader.start()
    if shadow is not None:  # the shadow rule set's folder is reloaded alike
        shadow.start()


def _reload_from_signal(services: Any) -> None:
    """SIGHUP: ask the rules' reload thread, and the shadow rules' if there is one."""
    services.reloader.request_from_signal()
    if services.pipeline.shadow is not None:
        services.pipeline.shadow.reloader.request_from_signal()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Worker, after each request: one grown past ESCALATOR_WORKER_MAX_RSS_MB hands its
    freed memory back to the system, and if it is still above, finishes and is replaced
    by a fresh fork of the master (so no request can leave a worker at gigabytes)."""
    limit = getattr(worker, "escalator_max_rss", 0)
    if not limit or resident_bytes() <= limit:
        return
    # glibc keeps freed memory for reuse; a burst of allocation would pin it for ever.
    malloc_trim()
    rss = resident_bytes()
    if rss > limit:
        worker.log.warning("worker %s: resident memory %.0f MB is above "
                           "ESCALATOR_WORKER_MAX_RSS_MB (%.0f MB): replacing it after this "
                           "request", os.getpid(), rss / 2**20, limit / 2**20)
        worker.alive = False


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# The process's own C symbols (glibc's malloc_trim among them on Linux).
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)


# This process's /proc/self/statm, kept open (pid, fd): one pread per request instead of an
# open, read and close. Opened again in a fork: the master's would report the master.
_statm: tuple[int, int] | None = None


def resident_bytes() -> int:
    """This process's resident memory (RSS) in bytes; a few us (one pread of /proc)."""
    global _statm
    if _statm is None or _statm[0] != os.getpid():
        _statm = (os.getpid(), os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
    return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE_SIZE


def malloc_trim() -> None:
    """Hand the C heap's free memory back to the system (glibc; a no-op elsewhere)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


SETTINGS = ("worker_class", "workers", "bind", "timeout", "graceful_timeout", "keepalive",
            "preload_app", "max_requests", "accesslog", "errorlog", "logger_class",
            "logconfig_dict",
            "control_socket_disable", "on_starting",
            "pre_fork", "child_exit", "post_worker_init", "post_request")
