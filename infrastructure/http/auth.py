"""Bearer authentication for views: who is calling, and may they.

The token service is registered on the app like any Flask extension, so blueprints of every
context authenticate the same way without knowing the user context.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from infrastructure.auth import InvalidToken, Principal, TokenService
from infrastructure.http.problems import Problem

EXTENSION = "shop.tokens"


def init_auth(app: Flask, tokens: TokenService) -> None:
    app.extensions[EXTENSION] = tokens


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="shop"'})


def current_principal() -> Principal:
    """The authenticated caller of this request; 401 problem if there is none."""
    if "principal" in g:
        principal: Principal = g.principal
        return principal
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("a bearer token is required")
    tokens: TokenService = current_app.extensions[EXTENSION]
    try:
        verified = tokens.verify(token.strip())
    except InvalidToken as error:
        raise _unauthenticated("the bearer token is invalid or expired") from error
    g.principal = verified
    return verified


def current_tokens() -> TokenService:
    """The app's token service (for what is public of it: its key ids)."""
    tokens: TokenService = current_app.extensions[EXTENSION]
    return tokens
