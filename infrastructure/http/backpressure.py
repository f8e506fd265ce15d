"""Writes to the public API wait while the process's event deliveries run behind (back-pressure).

A request that writes records events whose deliveries share the process's cores with the
requests. Admitted as fast as they come, such requests can outrun the deliveries, and the
backlog, with the delay from an order to its confirmation, grows for as long as the load lasts.
Held back while the deliveries run behind (see ``Dispatcher.wait_until_caught_up``), they are
taken closer to the pace the deliveries keep: slower answers under overload, not later effects.
A request is held at most ``timeout`` seconds and then served all the same, so that deliveries
that cannot catch up (a subscriber slowed by what it calls) delay writes but never refuse them.

Only writes to the given (public API) blueprints are held: reads record nothing; a path that
matches no endpoint is answered at once; and the internal endpoints another service calls are
left alone, since their caller was held by its own process already and its call's deadline is
running. The hook runs before a view's own checks (authentication, rate limits), so a write
refused by those is held too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import structlog
from flask import Flask, request

logger = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def install_write_backpressure(
    app: Flask, wait_until_caught_up: Callable[[float], bool], *, timeout: float, blueprints: Collection[str]
) -> None:
    """Hold each write request to an endpoint of ``blueprints`` until ``wait_until_caught_up(timeout)`` returns."""
    held = frozenset(blueprints)

    @app.before_request
    def hold_while_deliveries_run_behind() -> None:
        if request.method in SAFE_METHODS or request.blueprint not in held:
            return
        if not wait_until_caught_up(timeout):
            logger.debug("http.write_served_behind", waited_seconds=timeout)
