"""`escalator serve` logs only JSON lines, its own and gunicorn's, master and workers, from
start to shutdown; and it starts cleanly with an unwritable HOME, as in the image."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from support.servers import http, start_serve, wait_for

pytestmark = pytest.mark.slow


def test_every_line_is_json_from_start_to_shutdown_with_an_unwritable_home(
        tmp_path: Path) -> None:
    # A HOME below a regular file cannot be created or written, not even by root.
    (tmp_path / "not-a-folder").write_text("")
    home = tmp_path / "not-a-folder" / "home"
    base, process = start_serve(tmp_path / "serve", HOME=str(home), XDG_RUNTIME_DIR="")
    log = tmp_path / "serve" / "serve.log"
    try:
        # The master handles signals in its main loop, which it enters only after starting
        # everything else (gunicorn's control socket server, when it is on): once it has
        # logged the SIGHUP, any start-up error of those has had its turn to be logged too.
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "asking 2 worker(s) to reload" in log.read_text(), 20,
                 "the master passes SIGHUP on to the workers")
        status, _ = http(f"{base}/v1/conversations/logs-1/turns",
                         {"turn_id": "t-1", "message": {"text": "I want a person"}})
        assert status == 200
        assert http(f"{base}/metrics")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert {"gunicorn.error", "escalator.requests", "escalator.serve"} <= loggers
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("Booting worker") for m in messages)  # a worker's line
    assert any(m.startswith("Shutting down") for m in messages)  # the master's last one
    assert any(m.startswith("embedded Redis at unix://") for m in messages)
    # gunicorn's control socket (under HOME by default) is off: nothing to fail at start.
    assert not [m for m in messages if "control socket" in m.lower()]
    assert all(entry["level"] in ("INFO", "WARNING") for entry in entries), [
        entry for entry in entries if entry["level"] not in ("INFO", "WARNING")]
