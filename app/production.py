"""``shop serve --prod``: the API under gunicorn, several worker processes with threads each.

The master only forks and supervises; every worker builds its own app (engines and pools are
never shared across a fork) and runs its own event dispatcher and housekeeping beside its
request threads. The dispatchers share the work through leased claims (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so any number of workers deliver each event to each subscriber once.

SIGTERM to the master is a graceful stop: workers stop accepting, finish the requests in
flight (up to ``WEB_GRACEFUL_TIMEOUT_SECONDS``), then their dispatchers finish running
deliveries and hand queued ones back. A worker killed outright leaves its claims to lapse; the
others take them over after ``EVENTS_CLAIM_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from app.background import BackgroundWork
from app.collector import paused_while_starting
from app.config import Settings
from app.factory import container_of, create_app
from infrastructure.observability.workers import forget_worker

# How long a stopping worker waits for its last spans to be exported.
FLUSH_MILLIS = 5000
# The dispatcher and housekeeping of this worker process; ``None`` in the master.
_background: BackgroundWork | None = None


def _start_background(worker: Any) -> None:
    """gunicorn's ``post_worker_init``: runs in each worker once its app is loaded."""
    global _background
    app: Flask = worker.wsgi
    container = container_of(app)
    if container.settings().events_dispatch_in_web:
        _background = BackgroundWork(container)
        _background.start()


def _forget_worker(_server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit``: runs in the master once a worker has exited."""
    forget_worker(worker.pid)


def _on_worker_exit(_server: Any, worker: Any) -> None:
    """gunicorn's ``worker_exit``: runs in the worker after its last request, so deliveries
    it has claimed but not started go back to the outbox for the other workers; then the spans
    still batched go out, within a few seconds."""
    global _background
    background, _background = _background, None
    if background is not None:
        background.stop()
    tracing = container_of(worker.wsgi).tracing()
    if tracing is not None:
        tracing.force_flush(timeout_millis=FLUSH_MILLIS)


class ProductionServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn configured from the shop's settings instead of its own command line."""

    def __init__(self, settings: Settings, *, host: str, port: int) -> None:
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": settings.web_workers,
            "worker_class": "gthread",
            "threads": settings.web_threads,
            "timeout": settings.web_timeout_seconds,
            "graceful_timeout": settings.web_graceful_timeout_seconds,
            "keepalive": settings.web_keepalive_seconds,
            "proc_name": "modular-shop",
            # gunicorn's run-time control socket lives in $HOME, one per user: two shops would clash.
            "control_socket_disable": True,
            # Which forwarded headers to believe is TRUSTED_PROXY_HOPS's to say (in the app), not
            # gunicorn's default of believing X-Forwarded-Proto from any local peer.
            "forwarded_allow_ips": "",
            "post_worker_init": _start_background,
            "worker_exit": _on_worker_exit,
            "child_exit": _forget_worker,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        # In the worker, after the fork: settings are read again from the same environment.
        with paused_while_starting():
            return create_app()
