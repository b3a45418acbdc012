"""What `escalator serve` sets up around gunicorn, and tears down after it.

In the master, before any fork: the prometheus multiprocess folder (before prometheus_client
is imported), the embedded Redis when no ESCALATOR_REDIS_URL is set (one for all workers),
the run folder (the workers' shared handoff cache; the inline evaluation slots of an
earlier instance that was killed are cleared), and the app itself, built and checked once
(preload): a bad rule set stops the start here. Then gunicorn, whose master reloads the
rules in every worker on SIGHUP instead of restarting them. Only the master removes what it
set up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class RefusedToStart(Exception):
    """The configuration or the rule set does not let the service start; the message says why."""


def serve(host: str, port: int, workers: int) -> None:
    """Run the service under gunicorn until it is stopped; RefusedToStart if it cannot."""
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when it is imported, to decide
    # between one process's values and files every worker writes: the app modules (which
    # import it) are imported only after this.
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="escalator-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    # The master imports the app (preload) before gunicorn's on_starting hook runs, and
    # prometheus_client writes its files at import: the folder must exist already.
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

    import logging

    from escalator import logs
    from escalator.app import create_app
    from escalator.config import Config, ConfigError
    from escalator.errors import PolicyError
    from escalator.http import inline
    from escalator.http.services import EXTENSION
    from escalator.state.embedded import start_embedded

    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise RefusedToStart(str(exc)) from exc
    logs.configure(config.log_level)

    embedded = None
    if config.redis_url is None:
        # One embedded Redis for all workers: started here, before the fork.
        embedded = start_embedded(config.embedded_redis_dir)
        config = dataclasses.replace(config, redis_url=embedded.url)
        logging.getLogger("escalator.serve").info(
            "embedded Redis at %s (set ESCALATOR_REDIS_URL for a real one)", embedded.url)
    master = os.getpid()
    # The inline evaluation slots folder of an earlier instance that was killed.
    inline.clean_stale(master)
    own_run_dir = None
    if config.handoff_cache is None:
        # The workers' shared handoff cache: a fresh folder of this run, removed at exit.
        own_run_dir = tempfile.mkdtemp(prefix="escalator-run-")
        config = dataclasses.replace(config,
                                     handoff_cache=Path(own_run_dir) / "handoffs.sqlite")
    app = None
    try:
        try:
            # The app (and its rules) is built and checked once, here in the master; the
            # gunicorn workers are forked from it (preload_app). A bad rule set stops here.
            app = create_app(config, start_reloader=False)
        except (ConfigError, PolicyError) as exc:
            raise RefusedToStart(str(exc)) from exc
        _run_gunicorn(app, host, port, workers, config.log_level)
    finally:
        # Workers are forks of this process and leave through this same frame: only the
        # master may remove what the master set up.
        if os.getpid() == master:
            if app is not None:
                app.extensions[EXTENSION].inline.close()
            if embedded is not None:
                embedded.shutdown()
            if own_metrics_dir is not None:
                shutil.rmtree(own_metrics_dir, ignore_errors=True)
            if own_run_dir is not None:
                shutil.rmtree(own_run_dir, ignore_errors=True)


def _run_gunicorn(app: Any, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the preloaded app with escalator's gunicorn settings until the master stops."""
    import signal

    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    from escalator.serving import gunicorn_config

    class ReloadingArbiter(Arbiter):  # type: ignore[misc]
        """SIGHUP reloads the rules in every worker instead of restarting them: a
        restarted worker with a broken rule set would fail to boot, and the service
        would stop; a reload in place refuses the broken set and keeps serving."""

        def handle_hup(self) -> None:
            self.log.info("SIGHUP: asking %d worker(s) to reload the rules", len(self.WORKERS))
            for pid in list(self.WORKERS):
                with contextlib.suppress(ProcessLookupError):  # a worker just exited
                    os.kill(pid, signal.SIGHUP)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name in gunicorn_config.SETTINGS:
                if name in self.cfg.settings:  # an older gunicorn lacks the newest ones
                    self.cfg.set(name, getattr(gunicorn_config, name))
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("loglevel", log_level.lower())  # gunicorn's lines follow ours

        def load(self) -> Any:
            # Polling starts in each worker (post_worker_init): threads do not survive
            # the fork from the master, where the app was built.
            return app

        def run(self) -> None:
            ReloadingArbiter(self).run()

    Server().run()
