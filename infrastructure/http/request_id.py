"""Accept a sane ``X-Request-ID`` or make one, answer with it, and log one line per request.

A well-formed ``traceparent`` from the caller is bound for the request too, so calls it makes
to other services carry it on (see ``infrastructure/remote/service.py``). So is ``X-Deadline-Ms``, but
only from the shop's own services (callers presenting the service token): from anyone else it
would let a customer shorten the timeouts of the calls their request makes, and so time them
out on purpose and open the circuit breaker that every other customer's calls go through.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request

from infrastructure.auth.service import presents_service_token
from infrastructure.request_context import (
    DEADLINE_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    bind_deadline,
    bind_request_id,
    bind_traceparent,
)

HEADER = REQUEST_ID_HEADER
# A gateway in front of the shop passes on the same ids (see app/gateway.py).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
# W3C Trace Context, version 00: version-trace id-parent id-flags, ids not all zeros.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
_DEADLINE_MS = re.compile(r"[0-9]{1,7}")  # up to about 2.8 hours: anything longer is no deadline

logger = structlog.get_logger("shop.access")


def _accept_or_create() -> str:
    offered = request.headers.get(HEADER, "")
    return offered if SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def _offered_traceparent() -> str | None:
    offered = request.headers.get(TRACEPARENT_HEADER, "")
    return offered if _TRACEPARENT.fullmatch(offered) else None


def _offered_deadline_seconds() -> float | None:
    offered = request.headers.get(DEADLINE_HEADER, "")
    if not _DEADLINE_MS.fullmatch(offered) or not presents_service_token():
        return None
    return int(offered) / 1000


def seconds_since_start() -> float | None:
    """How long the current request has taken so far, from the first of the app's hooks."""
    started = g.get("started")
    return time.perf_counter() - started if started is not None else None


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.request_id = _accept_or_create()
        g.started = time.perf_counter()
        bind_request_id(g.request_id)
        bind_traceparent(_offered_traceparent())
        bind_deadline(_offered_deadline_seconds())

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or _accept_or_create()
        response.headers[HEADER] = request_id
        seconds = seconds_since_start()
        logger.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round(seconds * 1000, 2) if seconds is not None else None,
        )
        return response

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        bind_request_id(None)
        bind_traceparent(None)
        bind_deadline(None)
