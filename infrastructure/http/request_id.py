"""Accept a sane ``X-Request-ID`` or make one, answer with it, and log one line per request."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request

from infrastructure.request_context import bind_request_id

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")

logger = structlog.get_logger("shop.access")


def _accept_or_create() -> str:
    offered = request.headers.get(HEADER, "")
    return offered if _SANE.fullmatch(offered) else uuid.uuid4().hex


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.request_id = _accept_or_create()
        g.started = time.perf_counter()
        bind_request_id(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or _accept_or_create()
        response.headers[HEADER] = request_id
        started = g.get("started")
        logger.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        )
        return response

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        bind_request_id(None)
