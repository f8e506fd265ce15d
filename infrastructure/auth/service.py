"""Authentication of the shop's own services on internal endpoints.

Internal endpoints (``/internal/...``) are called by other services of the shop, never by
customers: the caller presents the shared service token as a bearer token. A user's token,
however valid, is no service token, so it gets the same 401 as no token at all.

What only the shop's services may tell a process (how long their caller will wait, say) is
believed only from a request that presents the token: :func:`presents_service_token`.

Each context serving internal endpoints gets its blueprint from :func:`internal_blueprint`:
the service token required on every one, and the ``access`` endpoint callers check their
configuration against (``infrastructure/remote/access.py``, ``check_access``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app

from infrastructure.auth.bearer import current_tokens, presents
from infrastructure.http.problems import Problem
from infrastructure.remote.options import ACCESS_SUFFIX

EXTENSION = "shop.service_token"


def init_service_auth(app: Flask, token: str) -> None:
    app.extensions[EXTENSION] = token.encode()


def presents_service_token() -> bool:
    """Whether the request being served carries this process's service token (never, when the
    process has none), compared in constant time."""
    expected: bytes | None = current_app.extensions.get(EXTENSION)
    return expected is not None and presents(expected)


def require_service() -> None:
    """A ``before_request`` hook for internal blueprints: 401 unless the service token is presented."""
    if not presents_service_token():
        raise Problem(
            401,
            "this endpoint is for the shop's own services: a service token is required",
            headers={"WWW-Authenticate": 'Bearer realm="shop-services"'},
        )


def internal_blueprint(name: str, import_name: str, url_prefix: str) -> Blueprint:
    """A blueprint of internal endpoints under ``url_prefix``: for callers presenting the service
    token only, and answering ``<url_prefix>/access``. Its endpoints are not declared with
    ``@endpoint``, so they stay out of the public OpenAPI document."""
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix)
    blueprint.before_request(require_service)
    blueprint.add_url_rule(ACCESS_SUFFIX, "access", _access, methods=["GET"])
    return blueprint


def _access() -> dict[str, Any]:
    """The service token's check, and the key ids of the token secrets this service signs with
    and accepts: callers compare them with theirs to know they are configured right (services
    signing with different TOKEN_SECRETs refuse each other's customers)."""
    tokens = current_tokens()
    return {"signing_key_id": tokens.key_id, "accepted_key_ids": sorted(tokens.accepted_key_ids)}
