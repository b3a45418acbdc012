"""`escalator studio`: the local studio on 127.0.0.1, in this process, until interrupted."""

from __future__ import annotations

import logging
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from werkzeug.serving import make_server

from escalator.studio import create_local_app
from escalator.studio.views import EXTENSION


def serve_local(rules_dir: Path, corpora: Sequence[Path], port: int = 0, *,
                open_browser: bool = True, logs: Sequence[Path] = ()) -> None:
    """Serve the studio over `rules_dir` on 127.0.0.1 (never another address) and print
    its address; open it in a browser when one is available."""
    # One line per request is noise to an owner; problems still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_local_app(rules_dir, corpora, logs)
    server = make_server("127.0.0.1", port, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}/studio/"
    print(f"escalator studio on {url} over {rules_dir.resolve()} (Ctrl-C stops it)",
          flush=True)
    if open_browser:
        try:
            webbrowser.get()
        except webbrowser.Error:
            print("no browser found here: open the address above in one", file=sys.stderr)
        else:
            webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions[EXTENSION].close()
