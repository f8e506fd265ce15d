"""Authentication of the shop's own services on internal endpoints.

Internal endpoints (``/internal/...``) are called by other services of the shop, never by
customers: the caller presents the shared service token as a bearer token. A user's token,
however valid, is no service token, so it gets the same 401 as no token at all.

What only the shop's services may tell a process (how long their caller will wait, say) is
believed only from a request that presents the token: :func:`presents_service_token`.
"""

from __future__ import annotations

import hmac

from flask import Flask, current_app, request

from infrastructure.http.problems import Problem

EXTENSION = "shop.service_token"


def init_service_auth(app: Flask, token: str) -> None:
    app.extensions[EXTENSION] = token.encode()


def presents_service_token() -> bool:
    """Whether the request being served carries this process's service token (never, when the
    process has none). Compared in constant time, so the answer's timing says nothing about
    how much of a guess was right."""
    expected: bytes | None = current_app.extensions.get(EXTENSION)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return (
        expected is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), expected)
    )


def require_service() -> None:
    """A ``before_request`` hook for internal blueprints: 401 unless the service token is presented."""
    if not presents_service_token():
        raise Problem(
            401,
            "this endpoint is for the shop's own services: a service token is required",
            headers={"WWW-Authenticate": 'Bearer realm="shop-services"'},
        )
