"""HTTP endpoints of the user context: JSON in, use case, JSON out."""

from __future__ import annotations

from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, url_for
from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

from contexts.user.api import UserDTO, UserNotFound
from contexts.user.application import handlers
from contexts.user.domain import exceptions
from infrastructure.http.auth import current_principal, login_required
from infrastructure.http.problems import map_errors
from infrastructure.http.validation import SINGLE_LINE, parse_body
from infrastructure.serialization import to_data

bp = Blueprint("user", __name__)
map_errors(
    bp,
    {
        exceptions.EmailAlreadyRegistered: 409,
        exceptions.InvalidCredentials: 401,
        UserNotFound: 404,
    },
)

Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SINGLE_LINE]


class RegistrationBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    email: EmailStr
    password: Password
    name: Name


class CredentialsBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _user(user: UserDTO) -> dict[str, Any]:
    body: dict[str, Any] = to_data(user)
    return body


@bp.post("/users")
@inject
def register(
    register_user: handlers.RegisterUserHandler = Provide["user.register_user"],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    body = parse_body(RegistrationBody)
    user = register_user(handlers.RegisterUser(email=body.email, password=body.password, name=body.name))
    return _user(user), 201, {"Location": url_for("user.me")}


@bp.post("/auth/token")
@inject
def issue_token(
    issue: handlers.IssueTokenHandler = Provide["user.issue_token"],
) -> dict[str, Any]:
    body = parse_body(CredentialsBody)
    token = issue(handlers.IssueToken(email=body.email, password=body.password))
    return {"access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in}


@bp.get("/users/me")
@login_required
@inject
def me(get_user: handlers.GetUserHandler = Provide["user.get_user"]) -> dict[str, Any]:
    return _user(get_user(current_principal().user_id))
