"""HTTP endpoints of the user context: JSON in, use case, JSON out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import email_validator
from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, url_for
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from contexts.user import client
from contexts.user.api import UserDTO, UserNotFound
from contexts.user.application import handlers
from contexts.user.application.facade import UserFacade
from contexts.user.domain import exceptions
from contexts.user.domain.model import Role, email_key
from infrastructure.auth.bearer import current_principal
from infrastructure.auth.service import internal_blueprint
from infrastructure.http.openapi import Access, Header, endpoint
from infrastructure.http.pagination import CursorKey, decode_cursor, encode_cursor
from infrastructure.http.problems import Problem, map_errors
from infrastructure.http.rate_limit import (
    LOGIN_PER_ACCOUNT,
    LOGIN_PER_ADDRESS,
    REGISTRATION_PER_ADDRESS,
    client_address,
    from_client_address,
    json_body_field,
    throttle,
)
from infrastructure.http.schemas import ResponseModel
from infrastructure.http.security import no_store
from infrastructure.http.validation import NOT_ONLY_INVISIBLE, SINGLE_LINE, STRIPPED, id_from_path
from infrastructure.validation_messages import email_message

bp = Blueprint("user", __name__)
map_errors(
    bp,
    {
        exceptions.EmailAlreadyRegistered: 409,
        exceptions.InvalidCredentials: 401,
        UserNotFound: 404,
    },
)

Password = Annotated[str, StringConstraints(min_length=8, max_length=128), NOT_ONLY_INVISIBLE]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), SINGLE_LINE, NOT_ONLY_INVISIBLE, STRIPPED]


def _mailable(email: str) -> str:
    """The address as any mail server takes it: the shop's mail goes out without SMTPUTF8, so a
    local part beyond ASCII (``ａdmin@``, ``admın@``, ``ſtraße@``) could never be written to and is
    refused; an internationalised domain is kept in its ASCII (``xn--``) form."""
    try:
        address = email_validator.validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except email_validator.EmailNotValidError as error:
        raise ValueError(email_message(str(error))) from error
    return address.ascii_email or email


class RegistrationBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    email: Annotated[EmailStr, AfterValidator(_mailable)] = Field(
        description="unique regardless of case; special-use domains (.test, .invalid, .local, …) are refused,"
        " and so is anything but ASCII before the @"
    )
    password: Password
    name: Name


class CredentialsBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    # No stored email holds a control character; PostgreSQL refuses to even compare a NUL.
    email: Annotated[str, StringConstraints(min_length=1, max_length=320), SINGLE_LINE]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class UserOut(ResponseModel):
    id: uuid.UUID
    email: str
    name: str
    role: Literal["customer", "admin"]
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the token expires")


class UserListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email_prefix: (
        Annotated[str, StringConstraints(min_length=1, max_length=320), SINGLE_LINE, NOT_ONLY_INVISIBLE] | None
    ) = Field(None, description="only users whose email address starts with this, in any letter case")
    role: Literal["customer", "admin"] | None = Field(None, description="only users of this role")
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None


class UserPageOut(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


class UserCursor(CursorKey):
    """Users are listed by email key (unique); a page ends at the last user's key."""

    email_key: Annotated[str, StringConstraints(min_length=1, max_length=320)]


# Per account *and* client address: wrong passwords from one address never lock the owner out
# of their account from another.
_account_from_this_address = from_client_address(json_body_field("email", email_key))


def _user(user: UserDTO) -> dict[str, Any]:
    return UserOut.model_validate(user).model_dump(mode="json")


TAG = "users"


@bp.post("/users")
@endpoint(
    summary="Register a customer",
    tag=TAG,
    body=RegistrationBody,
    responses={201: UserOut},
    errors=[409],
    response_headers={201: [Header("Location", "where the new user can read their account")]},
    description="The email is unique regardless of case (409).",
    example={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"},
)
@throttle(REGISTRATION_PER_ADDRESS, key=client_address, per="address")
@inject
def register(
    body: RegistrationBody,
    register_user: handlers.RegisterUserHandler = Provide["user.register_user"],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    user = register_user(handlers.RegisterUser(email=body.email, password=body.password, name=body.name))
    return _user(user), 201, {"Location": url_for("user.me")}


@bp.post("/auth/token")
@endpoint(
    summary="Log in: exchange email and password for a bearer token",
    tag=TAG,
    body=CredentialsBody,
    responses={200: TokenOut},
    errors=[401],
    description="A wrong email and a wrong password get the same 401.",
    example={"email": "ada@example.com", "password": "correct horse battery"},
)
@throttle(LOGIN_PER_ACCOUNT, key=_account_from_this_address, per="account from this address")
@throttle(LOGIN_PER_ADDRESS, key=client_address, per="address")
@no_store
@inject
def issue_token(
    body: CredentialsBody,
    issue: handlers.IssueTokenHandler = Provide["user.issue_token"],
) -> dict[str, Any]:
    token = issue(handlers.IssueToken(email=body.email, password=body.password))
    return TokenOut(access_token=token.access_token, token_type="Bearer", expires_in=token.expires_in).model_dump()


@bp.get("/users/me")
@endpoint(summary="Read the caller's account", tag=TAG, access=Access.CUSTOMER, responses={200: UserOut}, errors=[404])
@inject
def me(get_user: handlers.GetUserHandler = Provide["user.get_user"]) -> dict[str, Any]:
    return _user(get_user(handlers.GetUser(current_principal().user_id)))


@bp.get("/admin/users")
@endpoint(
    summary="List the users, by email address",
    tag=TAG,
    access=Access.ADMIN,
    query=UserListQuery,
    responses={200: UserPageOut},
    description=(
        "For administrators. Ordered by the email address as accounts are told apart (case and "
        "compatibility forms folded, the domain in its ASCII form). Filters combine: an email "
        "prefix, matched the same way, and a role."
    ),
)
@inject
def list_users(
    query: UserListQuery, list_page: handlers.ListUsersHandler = Provide["user.list_users"]
) -> dict[str, Any]:
    after = decode_cursor(query.cursor, UserCursor).email_key if query.cursor else None
    page = list_page(
        handlers.ListUsers(
            limit=query.limit,
            email_prefix=query.email_prefix,
            role=Role(query.role) if query.role else None,
            after=after,
        )
    )
    next_cursor = encode_cursor(UserCursor(email_key=page.last_key)) if page.has_more and page.last_key else None
    return {"items": [_user(user) for user in page.items], "next_cursor": next_cursor}


# --- Internal endpoints ---------------------------------------------------------------------
# The user service's side of contexts/user/client.py: the published UserApi over HTTP, for the
# shop's other services only (service token; registered only when SERVICE_TOKEN is set), which
# check every bearer token against the user's record with it. Not declared with @endpoint, so
# they stay out of the public OpenAPI document.

internal_bp = internal_blueprint("user_internal", __name__, client.INTERNAL_PREFIX)


@internal_bp.errorhandler(UserNotFound)
def _user_not_found(error: UserNotFound) -> Response:
    """Told apart from a 404 of a process serving no internal endpoints by its ``code``."""
    return Problem(404, str(error), extensions={"code": client.USER_NOT_FOUND}).to_response()


@internal_bp.get("/users/<user_id>")
@inject
def internal_get_user(user_id: str, api: UserFacade = Provide["user.api"]) -> dict[str, Any]:
    """The user as ``UserApi.get_user`` gives it; a malformed id is an unknown one."""
    target = id_from_path(
        user_id,
        lambda malformed: Problem(404, f"no user with id {malformed}", extensions={"code": client.USER_NOT_FOUND}),
    )
    user = api.get_user(target)
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at.isoformat(),
    }
