"""``shop serve`` without ``--prod``: Werkzeug's threaded server, one process."""

from __future__ import annotations

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, run_simple


class _UnversionedRequestHandler(WSGIRequestHandler):
    """Names the server in the ``Server`` header without its or Python's version, which would
    tell an attacker which published flaws to try (gunicorn, under --prod, sends no version)."""

    def version_string(self) -> str:
        return "Werkzeug"


def serve_threaded(app: Flask, host: str, port: int) -> None:
    """Serve until interrupted. Flask's ``app.run`` refuses to start under a CLI; Werkzeug's
    server is what it would run."""
    run_simple(
        host,
        port,
        app,
        threaded=True,
        use_reloader=False,
        use_debugger=False,
        request_handler=_UnversionedRequestHandler,
    )
