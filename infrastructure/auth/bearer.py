"""Bearer authentication for views: who is calling, and may they.

The token service is registered on the app like any Flask extension, so blueprints of every
context authenticate the same way without knowing the user context. With it the app registers
:class:`~infrastructure.auth.tokens.CurrentRoles`, which asks the user context (in process, or the
user service over HTTP): a token whose user no longer exists is refused, and the role is the
user's current one, not the one signed into the token. When the user service cannot be asked,
the request fails (503) rather than trusting the token's claims. Only a process serving no
endpoint that takes bearer tokens registers none.
"""

from __future__ import annotations

import hmac

from flask import Flask, current_app, g, request

from infrastructure.auth.tokens import CurrentRoles, InvalidToken, Principal, TokenService
from infrastructure.http.problems import Problem

EXTENSION = "shop.tokens"
ROLES = "shop.current_roles"


def init_auth(app: Flask, tokens: TokenService, roles: CurrentRoles | None = None) -> None:
    app.extensions[EXTENSION] = tokens
    app.extensions[ROLES] = roles


def presented_bearer_token() -> str | None:
    """The bearer token the request presents (``Authorization: Bearer <token>``, the scheme in
    any case), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def presents(expected: bytes) -> bool:
    """Whether the request presents ``expected`` as its bearer token. Compared in constant time,
    so the answer's timing says nothing about how much of a guess was right."""
    presented = presented_bearer_token()
    return presented is not None and hmac.compare_digest(presented.encode(), expected)


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="shop"'})


def current_principal() -> Principal:
    """The authenticated caller of this request; 401 problem if there is none."""
    if "principal" in g:
        principal: Principal = g.principal
        return principal
    token = presented_bearer_token()
    if token is None:
        raise _unauthenticated("a bearer token is required")
    tokens: TokenService = current_app.extensions[EXTENSION]
    try:
        verified = tokens.verify(token)
    except InvalidToken as error:
        raise _unauthenticated("the bearer token is invalid or expired") from error
    roles: CurrentRoles | None = current_app.extensions[ROLES]
    if roles is not None:
        role = roles.role_of(verified.user_id)
        if role is None:
            raise _unauthenticated("the bearer token's user does not exist")
        verified = Principal(user_id=verified.user_id, role=role)
    g.principal = verified
    return verified


def current_tokens() -> TokenService:
    """The app's token service (for what is public of it: its key ids)."""
    tokens: TokenService = current_app.extensions[EXTENSION]
    return tokens
