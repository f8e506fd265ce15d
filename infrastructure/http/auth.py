"""Bearer authentication for views: who is calling, and may they.

The token service is registered on the app like any Flask extension, so blueprints of every
context authenticate the same way without knowing the user context.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import Flask, current_app, g, request

from infrastructure.auth import InvalidToken, Principal, TokenService
from infrastructure.http.problems import Problem

EXTENSION = "shop.tokens"
P = ParamSpec("P")
R = TypeVar("R")


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


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current_principal()
        return view(*args, **kwargs)

    return wrapper


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_principal().is_admin:
            raise Problem(403, "this operation is for administrators")
        return view(*args, **kwargs)

    return wrapper
