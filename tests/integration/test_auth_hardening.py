"""Authentication hardening, over HTTP: tokens outside ``nbf``..``exp`` are refused, signing
secrets rotate without logging anyone out, logins are throttled per account and per client
address (429 problem with ``Retry-After``, counters per app, in memory or in Redis), unknown
emails cost the same argon2 verification as wrong passwords, password hashes follow the
configured argon2 parameters, and bad security settings stop start-up naming the setting."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import argon2
import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from werkzeug.test import TestResponse

from app.config import Settings
from app.containers import ApplicationContainer
from app.factory import container_of, create_app
from contexts.user.adapters.passwords import Argon2PasswordHasher
from contexts.user.application import handlers
from contexts.user.domain import exceptions
from contexts.user.domain.model import Role
from infrastructure.auth.tokens import Principal, key_id
from tests.conftest import Backend, set_role, settings_for, start_app, stop_app

API = "/api/v1"
PASSWORD = "correct horse"
SECRET_A = "secret A: the one tokens were signed with at first"
SECRET_B = "secret B: the one that replaces secret A in rotation"
REDIS_URL_VARIABLE = "SHOP_TEST_REDIS_URL"

MakeApp = Callable[..., Flask]


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def make_app(instance: Path, backend: Backend) -> Iterator[MakeApp]:
    """Builds apps on the test's instance folder (databases migrated); each app's databases are
    released when the next one is built (a restart) and at the end of the test."""
    built: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        if built:
            stop_app(built[-1])
        app = start_app(instance, **overrides)
        built.append(app)
        return app

    yield make
    if built:
        stop_app(built[-1])


def register(client: FlaskClient, email: str | None = None) -> str:
    email = email or f"{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(f"{API}/users", json={"email": email, "password": PASSWORD, "name": "Some One"})
    assert response.status_code == 201, response.json
    return email


def login(client: FlaskClient, email: str, password: str = PASSWORD, address: str = "127.0.0.1") -> TestResponse:
    return client.post(
        f"{API}/auth/token", json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def token_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.json
    token: str = response.json["access_token"]  # type: ignore[index]
    return token


def me(client: FlaskClient, token: str) -> TestResponse:
    return client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})


def assert_too_many(response: TestResponse, limited: str) -> None:
    """A 429 problem like the others, with a ``Retry-After`` in whole seconds within the window."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body is not None
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert body["instance"] == f"{API}/auth/token"
    assert limited in body["detail"]
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 61, retry_after
    assert "access_token" not in response.get_data(as_text=True)


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbf", "exp", "status"),
    [
        (timedelta(seconds=-1), timedelta(minutes=5), 200),
        (timedelta(minutes=1), timedelta(minutes=5), 401),
        (timedelta(minutes=-10), timedelta(seconds=-30), 401),
        (timedelta(minutes=1), timedelta(seconds=-30), 401),
    ],
    ids=["valid (control)", "not yet valid", "expired", "not yet valid and expired"],
)
def test_tokens_outside_their_validity_window_are_refused(
    make_app: MakeApp, nbf: timedelta, exp: timedelta, status: int
) -> None:
    app = make_app()
    client = app.test_client()
    user_id = me(client, token_of(login(client, register(client)))).json["id"]  # type: ignore[index]
    secret = container_of(app).settings().signing_secret()
    now = datetime.now(timezone.utc)
    claims = {"sub": user_id, "role": "customer", "iss": "modular-shop", "iat": now, "nbf": now + nbf, "exp": now + exp}
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})

    response = me(client, token)

    assert response.status_code == status, response.json
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signing_secret_rotates_without_logging_anyone_out(make_app: MakeApp) -> None:
    client = make_app(token_secret=SECRET_A).test_client()
    email = register(client)
    signed_with_a = token_of(login(client, email))
    assert jwt.get_unverified_header(signed_with_a)["kid"] == key_id(SECRET_A)

    # Restarted with B as the signing secret, A kept for verification only.
    client = make_app(token_secret=SECRET_B, token_previous_secrets=SECRET_A).test_client()
    assert me(client, signed_with_a).status_code == 200
    signed_with_b = token_of(login(client, email))
    assert jwt.get_unverified_header(signed_with_b)["kid"] == key_id(SECRET_B)

    # Restarted once A's tokens have expired: A is dropped.
    client = make_app(token_secret=SECRET_B).test_client()
    assert me(client, signed_with_b).status_code == 200
    refused = me(client, signed_with_a)
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"


def test_previous_secrets_are_read_from_the_environment_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, instance: Path
) -> None:
    older = "an even older secret that is long enough"
    monkeypatch.setenv("TOKEN_PREVIOUS_SECRETS", f" {SECRET_A} ,{older},")
    settings = Settings(instance_path=instance)
    assert settings.previous_signing_secrets() == (SECRET_A, older)
    assert SECRET_A not in repr(settings)


# --- login throttling -----------------------------------------------------------------------


def test_the_account_limit_holds_across_email_spellings_from_one_address(make_app: MakeApp) -> None:
    client = make_app(login_rate_limit_per_account="3/minute", login_rate_limit_per_address="100/minute").test_client()
    email = register(client, f"{uuid.uuid4().hex[:8]}@Example.com")
    other = register(client)

    assert login(client, email, address="10.0.0.1").status_code == 200
    assert login(client, email, "wrong password", address="10.0.0.1").status_code == 401
    assert login(client, f"  {email.upper()} ", "wrong password", address="10.0.0.1").status_code == 401

    assert_too_many(login(client, email, address="10.0.0.1"), "account from this address")
    assert_too_many(login(client, email.lower(), address="10.0.0.1"), "account from this address")
    # The address is not what is limited: another account from there logs in.
    assert login(client, other, address="10.0.0.1").status_code == 200


def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_elsewhere(make_app: MakeApp) -> None:
    """Eleven wrong passwords from anywhere used to block the right one everywhere for a minute."""
    client = make_app().test_client()
    email = register(client)
    attacker, owner = "203.0.113.66", "198.51.100.7"

    for _ in range(10):
        assert login(client, email, "wrong password", address=attacker).status_code == 401
    assert_too_many(login(client, email, "wrong password", address=attacker), "account from this address")
    assert_too_many(login(client, email, address=attacker), "account from this address")

    assert login(client, email, address=owner).status_code == 200


def test_the_address_limit_holds_across_accounts(make_app: MakeApp) -> None:
    client = make_app(login_rate_limit_per_account="100/minute", login_rate_limit_per_address="4/minute").test_client()
    email = register(client)
    for n in range(3):
        assert login(client, f"nobody-{n}@example.com", address="192.0.2.7").status_code == 401
    assert login(client, email, address="192.0.2.7").status_code == 200

    assert_too_many(login(client, email, address="192.0.2.7"), "address")
    assert_too_many(login(client, "somebody-else@example.com", address="192.0.2.7"), "address")
    # The account is not what is limited: it logs in from another address.
    assert login(client, email, address="192.0.2.8").status_code == 200


def test_successful_logins_count_too(make_app: MakeApp) -> None:
    client = make_app(login_rate_limit_per_account="2/minute").test_client()
    email = register(client)

    assert login(client, email).status_code == 200
    assert login(client, email).status_code == 200
    assert_too_many(login(client, email), "account")


def test_the_default_limits_are_ten_per_account_and_fifty_per_address(make_app: MakeApp) -> None:
    settings = Settings(instance_path=Path("unused"))
    assert (settings.login_rate_limit_per_account, settings.login_rate_limit_per_address) == ("10/minute", "50/minute")
    client = make_app().test_client()
    email = register(client)

    assert all(login(client, email, "wrong password").status_code == 401 for _ in range(10))
    assert_too_many(login(client, email), "account")


def test_malformed_bodies_are_still_400_and_are_not_counted_against_an_account(make_app: MakeApp) -> None:
    client = make_app(login_rate_limit_per_account="1/minute", login_rate_limit_per_address="100/minute").test_client()
    email = register(client)
    bodies: list[bytes] = [
        b"",
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[" * 50_000,
        b'["a list"]',
        b'"a string"',
        b'{"email": 42, "password": "x"}',
        b'{"email": ["' + email.encode() + b'"], "password": "x"}',
        b'{"password": "x"}',
        b'{"email": "", "password": "x"}',
    ]
    for body in bodies:
        response = client.post(f"{API}/auth/token", data=body, content_type="application/json")
        assert response.status_code == 400, (body[:40], response.status_code, response.json)
        assert response.mimetype == "application/problem+json"

    # A body that names the account but is invalid otherwise does count: it is an attempt on it.
    assert client.post(f"{API}/auth/token", json={"email": email, "password": ""}).status_code == 400
    assert_too_many(login(client, email), "account")


def test_only_the_login_endpoint_is_throttled(make_app: MakeApp) -> None:
    client = make_app(login_rate_limit_per_account="1/minute", login_rate_limit_per_address="1/minute").test_client()
    email = register(client)
    token = token_of(login(client, email))

    for _ in range(3):
        assert client.get("/healthz").status_code == 200
        assert me(client, token).status_code == 200
        register(client)
    assert_too_many(login(client, email), "address")


def test_every_app_has_its_own_counters(make_app: MakeApp) -> None:
    first = make_app(login_rate_limit_per_account="1/minute").test_client()
    email = register(first)
    assert login(first, email).status_code == 200
    assert_too_many(login(first, email), "account")

    second = make_app(login_rate_limit_per_account="1/minute").test_client()
    assert login(second, email).status_code == 200


def test_a_storage_that_is_down_falls_back_to_limiting_in_memory(make_app: MakeApp) -> None:
    """Nothing listens on port 1: logins neither fail with 500 nor go unthrottled."""
    client = make_app(
        login_rate_limit_per_account="2/minute", ratelimit_storage_url="redis://127.0.0.1:1/0"
    ).test_client()
    email = register(client)

    assert login(client, email).status_code == 200
    assert login(client, email).status_code == 200
    assert_too_many(login(client, email), "account")


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get(REDIS_URL_VARIABLE)
    if not url:
        pytest.skip(f"set {REDIS_URL_VARIABLE} (e.g. redis://127.0.0.1:6379/15) to run the Redis-backed tests")
    yield url


def test_counters_in_redis_are_shared_by_every_process_using_it(make_app: MakeApp, redis_url: str) -> None:
    import redis

    prefix = f"shop-test-{uuid.uuid4().hex}"
    store = redis.Redis.from_url(redis_url)
    overrides = {"ratelimit_storage_url": redis_url, "ratelimit_key_prefix": prefix}
    try:
        first = make_app(login_rate_limit_per_account="2/minute", **overrides).test_client()
        email = register(first)
        assert login(first, email).status_code == 200
        assert login(first, email, "wrong password").status_code == 401

        # Another process (here: another app) sharing the Redis sees the same counter.
        second = make_app(login_rate_limit_per_account="2/minute", **overrides).test_client()
        assert_too_many(login(second, email), "account from this address")

        keys = [key.decode() for key in store.scan_iter(match=f"*{prefix}*")]
        assert keys, "nothing was stored in Redis"
        assert not any(email.split("@")[0] in key for key in keys), keys
    finally:
        for key in store.scan_iter(match=f"*{prefix}*"):
            store.delete(key)
        store.close()


# --- password verification -------------------------------------------------------------------


class SpyHasher:
    """The real hasher, recording every call."""

    def __init__(self, real: Argon2PasswordHasher) -> None:
        self.real = real
        self.hashed = 0
        self.verified: list[str] = []

    def hash(self, password: str) -> str:
        self.hashed += 1
        return self.real.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return self.real.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.real.needs_rehash(password_hash)


def test_an_unknown_email_costs_one_argon2_verification_like_a_wrong_password(make_app: MakeApp) -> None:
    app = make_app()
    container: ApplicationContainer = container_of(app)
    email = register(app.test_client())
    spy = SpyHasher(container.password_hasher())
    issue = handlers.IssueTokenHandler(uow=container.user.uow, hasher=spy, tokens=container.tokens())

    with pytest.raises(exceptions.InvalidCredentials):
        issue(handlers.IssueToken(email=email, password="wrong password"))
    wrong_password = list(spy.verified)
    with pytest.raises(exceptions.InvalidCredentials):
        issue(handlers.IssueToken(email="nobody-" + email, password="wrong password"))
    unknown_email = spy.verified[len(wrong_password) :]

    assert len(wrong_password) == 1 and len(unknown_email) == 1
    assert wrong_password != unknown_email
    # Both are genuine argon2 hashes of the same parameters, so both verifications cost the same.
    assert argon2.extract_parameters(wrong_password[0]) == argon2.extract_parameters(unknown_email[0])
    # One hash in all: the decoy, made once (beside the start-up), none per login.
    assert spy.hashed == 1


def test_a_password_hash_is_upgraded_at_login_when_the_argon2_parameters_change(make_app: MakeApp) -> None:
    def stored_hash(app: Flask, email: str) -> str:
        with container_of(app).user.uow(write=False) as uow:
            user = uow.users.get_by_email(email)
            assert user is not None
            password_hash: str = user.password_hash
            return password_hash

    cheap = make_app()
    email = register(cheap.test_client())
    before = argon2.extract_parameters(stored_hash(cheap, email))
    assert (before.time_cost, before.memory_cost) == (1, 8)

    stronger = make_app(argon2_time_cost=2, argon2_memory_cost_kib=16)
    client = stronger.test_client()
    assert me(client, token_of(login(client, email))).status_code == 200
    upgraded = stored_hash(stronger, email)
    after = argon2.extract_parameters(upgraded)
    assert (after.time_cost, after.memory_cost, after.parallelism) == (2, 16, 1)

    # The upgraded hash still checks the same password, and is not rewritten again.
    assert login(client, email).status_code == 200
    assert login(client, email, "wrong password").status_code == 401
    assert stored_hash(stronger, email) == upgraded


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("token_previous_secrets", "too short"),
        ("token_previous_secrets", f"{SECRET_A},short"),
        ("login_rate_limit_per_account", "lots"),
        ("login_rate_limit_per_account", "0/minute"),
        ("login_rate_limit_per_address", "10 per fortnight"),
        ("ratelimit_storage_url", "mysql://127.0.0.1/limits"),
        ("ratelimit_key_prefix", "has spaces"),
    ],
)
def test_a_bad_auth_setting_stops_start_up_naming_it(instance: Path, setting: str, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        create_app(settings_for(instance, **{setting: value}))
    assert setting in str(raised.value)
    assert not instance.exists()


def test_a_rejected_secret_is_not_repeated_in_the_error(instance: Path) -> None:
    short = "s3cr3t-but-short"
    with pytest.raises(ValidationError) as raised:
        create_app(settings_for(instance, token_previous_secrets=f"{SECRET_A},{short}"))
    assert "token_previous_secrets" in str(raised.value)
    assert short not in str(raised.value) and SECRET_A not in str(raised.value)


# --- the user behind a token -------------------------------------------------------------------


def bearer_for(app: Flask, user_id: uuid.UUID | str, role: str = "customer") -> dict[str, str]:
    """A genuine token of this app for ``user_id``, as the user context would have issued it."""
    token = container_of(app).tokens().issue(Principal(user_id=uuid.UUID(str(user_id)), role=role))
    return {"Authorization": f"Bearer {token.access_token}"}


def a_product(app: Flask) -> str:
    client = app.test_client()
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    container_of(app).user.register_user()(
        handlers.RegisterUser(email=admin_email, password=PASSWORD, name="Admin", role=Role.ADMIN)
    )
    admin = {"Authorization": f"Bearer {token_of(login(client, admin_email))}"}
    body = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": "5.00", "initial_stock": 10}
    created = client.post(f"{API}/products", json=body, headers=admin)
    assert created.status_code == 201, created.json
    product_id: str = created.json["id"]  # type: ignore[index]
    return product_id


def test_a_token_whose_user_does_not_exist_places_no_order(make_app: MakeApp) -> None:
    """Before: a validly signed token for a user id nobody has placed orders (whose mail then
    dead-lettered)."""
    app = make_app()
    client = app.test_client()
    product_id = a_product(app)
    ghost = bearer_for(app, uuid.uuid4())

    placed = client.post(f"{API}/orders", json={"items": [{"product_id": product_id, "quantity": 1}]}, headers=ghost)
    assert placed.status_code == 401, placed.json
    assert placed.mimetype == "application/problem+json"
    assert placed.headers["WWW-Authenticate"].startswith("Bearer")
    assert "does not exist" in placed.json["detail"]  # type: ignore[index]
    for path in ("/users/me", "/orders", "/users/me/recommendations"):
        assert client.get(f"{API}{path}", headers=ghost).status_code == 401, path


def test_the_role_comes_from_the_users_record_not_from_the_token(make_app: MakeApp) -> None:
    app = make_app(token_subject_cache_seconds=0)
    client = app.test_client()
    a_product(app)
    email = register(client)
    user_id = me(client, token_of(login(client, email))).json["id"]  # type: ignore[index]
    # A token that says admin, for a customer (as one issued before a demotion would).
    says_admin = bearer_for(app, user_id, role="admin")
    body = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": "5.00"}

    assert client.post(f"{API}/products", json=body, headers=says_admin).status_code == 403
    assert client.get(f"{API}/audit-log", headers=says_admin).status_code == 403

    set_role(app, email, Role.ADMIN)  # promoted: the same token now carries the new role
    assert client.post(f"{API}/products", json=body, headers=says_admin).status_code == 201
    set_role(app, email, Role.CUSTOMER)  # demoted again, long before the token expires
    assert client.get(f"{API}/audit-log", headers=says_admin).status_code == 403


def test_by_default_a_users_role_is_remembered_for_thirty_seconds(make_app: MakeApp) -> None:
    """Each request does not cost a query; tests/unit/test_tokens.py shows the answer expiring."""
    assert Settings(instance_path=Path("unused")).token_subject_cache_seconds == 30
    app = make_app()
    client = app.test_client()
    email = register(client)
    set_role(app, email, Role.ADMIN)
    admin = {"Authorization": f"Bearer {token_of(login(client, email))}"}
    assert client.get(f"{API}/audit-log", headers=admin).status_code == 200

    set_role(app, email, Role.CUSTOMER)

    assert client.get(f"{API}/audit-log", headers=admin).status_code == 200
