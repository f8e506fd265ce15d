"""The user endpoints honour API.md: registration, login and ``/users/me``, every success and error path."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.containers import ApplicationContainer
from infrastructure.auth.tokens import Principal, TokenService, key_id
from tests.problems import assert_problem, invalid_fields

API = "/api/v1"
USER_FIELDS = {"id", "email", "name", "role", "created_at"}
PASSWORD = "correct horse battery"


def register(client: FlaskClient, **overrides: Any) -> TestResponse:
    body: dict[str, Any] = {
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "password": PASSWORD,
        "name": "Ada Lovelace",
    }
    body.update(overrides)
    return client.post(f"{API}/users", json={k: v for k, v in body.items() if v is not ...})


def login(client: FlaskClient, email: str, password: str) -> TestResponse:
    return client.post(f"{API}/auth/token", json={"email": email, "password": password})




# --- POST /users -------------------------------------------------------------------------------


def test_registration_answers_201_with_exactly_the_contract_fields(client: FlaskClient) -> None:
    before = datetime.now(timezone.utc)
    response = register(client, email="grace@example.com", name="Grace Hopper")
    after = datetime.now(timezone.utc)

    assert response.status_code == 201, response.json
    assert response.mimetype == "application/json"
    body = response.json
    assert body is not None
    assert set(body) == USER_FIELDS
    assert uuid.UUID(body["id"])
    assert body["email"] == "grace@example.com"
    assert body["name"] == "Grace Hopper"
    assert body["role"] == "customer"
    assert body["created_at"].endswith("Z")
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created_at <= after + timedelta(seconds=1)


def test_registration_location_names_the_created_user(client: FlaskClient) -> None:
    response = register(client)
    assert response.status_code == 201
    location = response.headers["Location"]
    assert location.endswith(f"{API}/users/me")

    token = login(client, response.json["email"], PASSWORD).json["access_token"]
    me = client.get(location, headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json == response.json


def test_registration_body_never_carries_the_password(client: FlaskClient) -> None:
    response = register(client, password="a very secret phrase")
    assert response.status_code == 201
    text = response.get_data(as_text=True)
    assert "a very secret phrase" not in text
    assert "password" not in text


def test_a_client_cannot_register_itself_as_admin(client: FlaskClient) -> None:
    response = register(client, role="admin")
    assert "role" in invalid_fields(response)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("dup@example.com", "dup@example.com"),
        ("dup@example.com", "DUP@EXAMPLE.COM"),
        ("Dup@Example.com", "dUP@example.COM"),
    ],
)
def test_duplicate_email_is_409_case_insensitively(client: FlaskClient, first: str, second: str) -> None:
    assert register(client, email=first).status_code == 201

    assert_problem(register(client, email=second, password="another password"), 409)
    # The first account is untouched and the second password opens nothing.
    assert login(client, first, PASSWORD).status_code == 200
    assert_problem(login(client, first, "another password"), 401)


def test_login_ignores_the_case_of_the_email(client: FlaskClient) -> None:
    assert register(client, email="mixed.Case@example.com").status_code == 201
    assert login(client, "MIXED.case@EXAMPLE.com", PASSWORD).status_code == 200


@pytest.mark.parametrize(("length", "status"), [(7, 400), (8, 201), (128, 201), (129, 400)])
def test_password_length_bounds(client: FlaskClient, length: int, status: int) -> None:
    password = "p" * length
    response = register(client, password=password)
    if status == 400:
        assert invalid_fields(response) == {"password"}
        return
    assert response.status_code == 201, response.json
    assert login(client, response.json["email"], password).status_code == 200


@pytest.mark.parametrize(
    ("name", "status"),
    [("", 400), ("   ", 400), ("A", 201), ("n" * 100, 201), ("n" * 101, 400)],
    ids=["empty", "blank", "one", "hundred", "hundred-and-one"],
)
def test_name_length_bounds(client: FlaskClient, name: str, status: int) -> None:
    response = register(client, name=name)
    if status == 400:
        assert invalid_fields(response) == {"name"}
        return
    assert response.status_code == 201, response.json
    assert response.json["name"] == name


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "missing-at.example.com", "@example.com", "user@", "two@@example.com", "sp ace@example.com", ""],
)
def test_invalid_email_is_400_naming_email(client: FlaskClient, email: str) -> None:
    assert invalid_fields(register(client, email=email)) == {"email"}


@pytest.mark.parametrize("missing", ["email", "password", "name"])
def test_a_missing_field_is_400_naming_it(client: FlaskClient, missing: str) -> None:
    assert invalid_fields(register(client, **{missing: ...})) == {missing}


def test_every_missing_field_is_named(client: FlaskClient) -> None:
    assert invalid_fields(client.post(f"{API}/users", json={})) == {"email", "password", "name"}


def test_an_unknown_field_is_400_naming_it(client: FlaskClient) -> None:
    assert invalid_fields(register(client, nickname="ada")) == {"nickname"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", 42),
        ("email", ["a@example.com"]),
        ("password", 12345678),
        ("password", None),
        ("name", ["Ada"]),
        ("name", None),
        ("name", True),
    ],
)
def test_a_wrongly_typed_field_is_400_naming_it(client: FlaskClient, field: str, value: Any) -> None:
    assert invalid_fields(register(client, **{field: value})) == {field}


# --- POST /auth/token -------------------------------------------------------------------------


def test_login_answers_200_with_a_bearer_token(client: FlaskClient, container: ApplicationContainer) -> None:
    email = register(client).json["email"]
    response = login(client, email, PASSWORD)

    assert response.status_code == 200
    body = response.json
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] == container.settings().token_ttl_seconds
    assert isinstance(body["access_token"], str) and body["access_token"]
    me = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json["email"] == email


def test_wrong_password_and_unknown_email_get_the_same_401(client: FlaskClient) -> None:
    email = register(client).json["email"]

    wrong_password = login(client, email, "not the password")
    unknown_email = login(client, f"nobody-{uuid.uuid4().hex[:6]}@example.com", PASSWORD)

    assert_problem(wrong_password, 401)
    assert_problem(unknown_email, 401)
    assert wrong_password.get_json(force=True) == unknown_email.get_json(force=True)
    assert wrong_password.mimetype == unknown_email.mimetype
    assert email not in wrong_password.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password"}),
        ({"email": "a@example.com"}, {"password"}),
        ({"password": "whatever1"}, {"email"}),
        ({"email": 1, "password": "whatever1"}, {"email"}),
        ({"email": "a@example.com", "password": ["x"]}, {"password"}),
        ({"email": "a@example.com", "password": "whatever1", "remember": True}, {"remember"}),
    ],
)
def test_login_with_an_invalid_body_is_400(client: FlaskClient, body: dict[str, Any], fields: set[str]) -> None:
    assert invalid_fields(client.post(f"{API}/auth/token", json=body)) == fields


# --- GET /users/me ----------------------------------------------------------------------------


def test_me_answers_the_authenticated_user(client: FlaskClient) -> None:
    registered = register(client, name="Me Myself")
    token = login(client, registered.json["email"], PASSWORD).json["access_token"]

    response = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert set(response.json) == USER_FIELDS
    assert response.json == registered.json


def test_the_bearer_scheme_is_case_insensitive(client: FlaskClient) -> None:
    registered = register(client)
    token = login(client, registered.json["email"], PASSWORD).json["access_token"]
    response = client.get(f"{API}/users/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200
    assert response.json["id"] == registered.json["id"]


def _claims(user_id: str, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": "customer",
        "iss": "modular-shop",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def _authorization(kind: str, user_id: str, secret: str, good_token: str) -> str | None:
    """The Authorization header of one kind of unacceptable credential for ``user_id``."""
    other_secret = "another secret that is long enough for HS256!"

    def signed(key: str | None, algorithm: str = "HS256", **claims: Any) -> str:
        # Every forgery names the app's real key, so it is refused for its own defect, not a missing kid.
        headers = {"kid": key_id(secret)}
        return f"Bearer {jwt.encode(_claims(user_id, **claims), key, algorithm=algorithm, headers=headers)}"

    past = datetime.now(timezone.utc) - timedelta(hours=2)
    headers: dict[str, str | None] = {
        "absent": None,
        "empty": "",
        "scheme only": "Bearer",
        "blank token": "Bearer    ",
        "basic scheme": f"Basic {good_token}",
        "no scheme": good_token,
        "garbage": "Bearer garbage",
        "three garbage parts": "Bearer a.b.c",
        "non-ascii": "Bearer \u00e9\u00e9\u00e9",
        "token plus junk": f"Bearer {good_token} junk",
        "tampered signature": f"Bearer {good_token[:-4]}{'AAAA' if not good_token.endswith('AAAA') else 'BBBB'}",
        "another secret": signed(other_secret),
        "another secret, admin": signed(other_secret, role="admin"),
        "alg none": signed(None, "none"),
        "expired": "Bearer "
        + TokenService(secret, ttl=timedelta(minutes=-5))
        .issue(Principal(user_id=uuid.UUID(user_id), role="customer"))
        .access_token,
        "expired long ago": signed(secret, iat=past, nbf=past, exp=past + timedelta(hours=1)),
        "wrong issuer": signed(secret, iss="someone-else"),
        "no expiry": signed(secret, exp=...),
        "HS512": signed(secret, "HS512"),
    }
    return headers[kind]


def test_a_token_forged_the_way_the_unacceptable_ones_are_but_without_a_defect_is_accepted(
    client: FlaskClient, container: ApplicationContainer
) -> None:
    """The control for the cases below: the forging itself is sound, so each 401 is its defect's."""
    registered = register(client)
    secret = container.settings().signing_secret()
    token = jwt.encode(_claims(registered.json["id"]), secret, algorithm="HS256", headers={"kid": key_id(secret)})
    assert client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


UNACCEPTABLE = [
    "absent",
    "empty",
    "scheme only",
    "blank token",
    "basic scheme",
    "no scheme",
    "garbage",
    "three garbage parts",
    "non-ascii",
    "token plus junk",
    "tampered signature",
    "another secret",
    "another secret, admin",
    "alg none",
    "expired",
    "expired long ago",
    "wrong issuer",
    "no expiry",
    "HS512",
]


@pytest.mark.parametrize("kind", UNACCEPTABLE)
def test_me_without_an_acceptable_token_is_401_with_www_authenticate(
    client: FlaskClient, container: ApplicationContainer, kind: str
) -> None:
    registered = register(client)
    good_token = login(client, registered.json["email"], PASSWORD).json["access_token"]
    secret = container.settings().signing_secret()
    authorization = _authorization(kind, registered.json["id"], secret, good_token)
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get(f"{API}/users/me", headers=headers)

    assert_problem(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert registered.json["email"] not in response.get_data(as_text=True)
    # The good token, for contrast, is accepted: the 401 came from the credential itself.
    assert client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {good_token}"}).status_code == 200
