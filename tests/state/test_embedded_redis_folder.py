"""ESCALATOR_EMBEDDED_REDIS_DIR holds what the settings table (in the code, and in
docs/operations/deploy.md) says it holds, and the socket is where they say it is."""

from __future__ import annotations

import tempfile
from pathlib import Path

from escalator.config import SETTINGS
from escalator.state.embedded import start_embedded

SETTINGS_PAGE = (Path(__file__).parents[2] / "docs" / "operations" / "deploy.md").read_text(
    encoding="utf-8")


def test_the_folder_and_the_socket_are_where_the_settings_table_says(tmp_path: Path) -> None:
    doc = next(s.doc for s in SETTINGS if s.env == "ESCALATOR_EMBEDDED_REDIS_DIR")
    row = next(line for line in SETTINGS_PAGE.splitlines()
               if line.startswith("| `ESCALATOR_EMBEDDED_REDIS_DIR`"))
    assert doc in row  # the documented table says what the code's table says

    folder = tmp_path / "a-folder-whose-path-is-long-enough-to-matter" / "redis"
    server = start_embedded(folder)
    try:
        socket = Path(server.socket_path)
        assert socket.is_socket()
        # A private temporary folder, so that the socket path stays short whatever the
        # folder's path (unix socket paths are limited to about 100 characters).
        assert socket.parent.parent == Path(tempfile.gettempdir())
        assert folder.resolve() not in socket.parents
        assert len(str(socket)) < 100
        assert "redis.log" in {path.name for path in folder.iterdir()}
    finally:
        server.shutdown()
    assert {"redis.db", "redis.log"} <= {path.name for path in folder.iterdir()}
    assert not socket.parent.exists()  # the temporary folder goes with the server
    for claim in ("redis.db", "redis.log", "temporary folder"):
        assert claim in doc
