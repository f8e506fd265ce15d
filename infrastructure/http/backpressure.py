"""Write requests wait while the process's event deliveries run behind (back-pressure).

A request that writes records events whose deliveries share the process's cores with the
requests. Admitted as fast as they come, such requests can outrun the deliveries, and the
backlog, with the delay from an order to its confirmation, grows for as long as the load lasts.
Held back while the deliveries run behind (see ``Dispatcher.wait_until_caught_up``), they are
taken at the pace the deliveries keep: slower answers under overload, not later effects. A
request is held at most ``timeout`` seconds and then served all the same, so that deliveries
that cannot catch up (a subscriber slowed by what it calls) delay writes but never refuse them.
Reads, which record nothing, are never held.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from flask import Flask, request

logger = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def install_write_backpressure(app: Flask, wait_until_caught_up: Callable[[float], bool], *, timeout: float) -> None:
    """Hold each write request of ``app`` until ``wait_until_caught_up(timeout)`` returns."""

    @app.before_request
    def hold_while_deliveries_run_behind() -> None:
        if request.method in SAFE_METHODS:
            return
        if not wait_until_caught_up(timeout):
            logger.debug("http.write_served_behind", waited_seconds=timeout)
