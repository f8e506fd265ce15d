"""Security headers on every response, and CORS (off unless origins are configured).

Headers set on every response, unless the view already set that header itself:

* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``,
  ``Cross-Origin-Opener-Policy: same-origin``;
* ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` — right for JSON, which
  loads nothing. A view serving an HTML page (the API docs, say) sets its own CSP header on its
  response and this one is then left alone;
* ``Strict-Transport-Security: max-age=N`` when ``hsts_seconds`` > 0 (serve over HTTPS only then).

``Cache-Control: no-store`` is forced on every response to a request that carries an
``Authorization`` header (what a caller sees with their credentials is not for any cache), and
on the responses of views marked with :func:`no_store` (those handing out credentials, such as
a token endpoint: RFC 6749 §5.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_cors import CORS

V = TypeVar("V", bound=Callable[..., Any])
NO_STORE = "__shop_no_store__"

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
DEFAULT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": API_CONTENT_SECURITY_POLICY,
}
CORS_ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
CORS_EXPOSED_HEADERS = ("Location", "X-Request-ID", "Retry-After")
CORS_MAX_AGE_SECONDS = 600


def no_store(view: V) -> V:
    """Mark a view whose responses no cache may keep. The view is returned unchanged."""
    setattr(view, NO_STORE, True)
    return view


def _marked_no_store() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, NO_STORE, False))


def install_security_headers(app: Flask, *, hsts_seconds: int = 0) -> None:
    defaults = dict(DEFAULT_HEADERS)
    if hsts_seconds > 0:
        defaults["Strict-Transport-Security"] = f"max-age={hsts_seconds}"

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in defaults.items():
            response.headers.setdefault(name, value)
        if "Authorization" in request.headers or _marked_no_store():
            response.headers["Cache-Control"] = "no-store"
        return response


def install_cors(app: Flask, origins: Sequence[str], *, path_prefix: str) -> None:
    """Answer CORS requests from ``origins`` (``["*"]`` = any) under ``path_prefix``; none = no CORS.

    Bearer tokens travel in a header, not cookies, so credentials mode is never allowed."""
    if not origins:
        return
    # Each origin compiled to an exact, case-insensitive match: flask-cors would otherwise read a
    # string holding regex characters as a pattern matching other origins too.
    allowed: list[str | re.Pattern[str]] = (
        ["*"] if "*" in origins else [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]
    )
    CORS(
        app,
        resources={re.compile(re.escape(path_prefix) + "/"): {"origins": allowed}},
        allow_headers=list(CORS_ALLOWED_HEADERS),
        expose_headers=list(CORS_EXPOSED_HEADERS),
        supports_credentials=False,
        send_wildcard=allowed == ["*"],
        max_age=CORS_MAX_AGE_SECONDS,
        vary_header=True,
    )
