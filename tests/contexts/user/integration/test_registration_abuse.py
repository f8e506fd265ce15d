"""Registration under abuse: it is throttled per client address, the argon2 work of a process
is bounded however many registrations and logins arrive at once (``/healthz`` keeps answering),
and what registration answers and accepts gives an attacker as little as login does."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.config import Settings
from tests.conftest import MakeApp
from tests.http_servers import serve_app
from tests.problems import assert_problem, invalid_fields

API = "/api/v1"
PASSWORD = "correct horse"


def register(client: FlaskClient, email: str | None = None, address: str = "127.0.0.1", **fields: Any) -> TestResponse:
    body = {"email": email or f"{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD, "name": "Some One"}
    body.update(fields)
    return client.post(f"{API}/users", json=body, environ_base={"REMOTE_ADDR": address})


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    return client.post(f"{API}/auth/token", json={"email": email, "password": password})


# --- throttling ------------------------------------------------------------------------------


def test_registrations_are_limited_per_client_address(make_app: MakeApp) -> None:
    client = make_app(registration_rate_limit_per_address="2/minute").test_client()

    assert register(client, address="192.0.2.1").status_code == 201
    assert register(client, address="192.0.2.1", password="short").status_code == 400  # failures count too
    refused = assert_problem(register(client, address="192.0.2.1"), 429, f"{API}/users")
    assert "address" in refused["detail"]

    assert register(client, address="192.0.2.2").status_code == 201


def test_the_default_registration_limit_is_five_a_minute_per_address(make_app: MakeApp) -> None:
    default = Settings(instance_path=Path("unused")).registration_rate_limit_per_address
    assert default == "5/minute;20/hour"
    client = make_app(registration_rate_limit_per_address=default).test_client()
    assert all(register(client, address="192.0.2.9").status_code == 201 for _ in range(5))
    assert_problem(register(client, address="192.0.2.9"), 429)


# --- bounded hashing -------------------------------------------------------------------------


class Gate:
    """Wraps argon2's own hash and verify: counts how many run at once (and the peak), and holds
    each one until the gate opens, so a test can look at the process while hashing is saturated."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self.changed = threading.Condition()
        self.opened = threading.Event()

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            with self.changed:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
                self.changed.notify_all()
            try:
                self.opened.wait(timeout=30)
                return real(*args, **kwargs)
            finally:
                with self.changed:
                    self.inside -= 1
                    self.changed.notify_all()

        return gated

    def wait_for_more_than(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.inside > count, timeout=timeout)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    gate.opened.set()  # until the test closes it
    monkeypatch.setattr(argon2.PasswordHasher, "hash", gate.wrap(argon2.PasswordHasher.hash))
    monkeypatch.setattr(argon2.PasswordHasher, "verify", gate.wrap(argon2.PasswordHasher.verify))
    yield gate
    gate.opened.set()  # whatever the test's outcome, nothing stays held


def test_parallel_registrations_and_logins_hash_at_most_the_configured_number_at_once(
    make_app: MakeApp, gate: Gate
) -> None:
    # Every request here is to wait for its slot, however slowly the machine runs.
    app: Flask = make_app(password_hashing_concurrency=2, password_hashing_wait_seconds=60)
    existing = register(app.test_client()).json["email"]  # type: ignore[index]
    gate.opened.clear()

    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(12) as pool:
        registrations = [
            pool.submit(
                http.post,
                f"{API}/users",
                json={"email": f"{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD, "name": "N"},
            )
            for _ in range(8)
        ]
        logins = [
            pool.submit(http.post, f"{API}/auth/token", json={"email": existing, "password": PASSWORD})
            for _ in range(4)
        ]
        assert gate.wait_for_more_than(1, timeout=10), "no hashing started"

        # Hashing is saturated (and the other requests wait for a slot): the process still answers.
        health = http.get("/healthz", timeout=10)
        assert health.status_code == 200
        # Given time, no third hash starts while two are running.
        more = gate.wait_for_more_than(2, timeout=1)

        gate.opened.set()
        statuses = [future.result().status_code for future in registrations + logins]

    assert not more and gate.peak == 2, gate.peak
    assert statuses == [201] * 8 + [200] * 4


def test_a_request_that_waits_too_long_for_a_hashing_slot_gets_a_503_and_changes_nothing(
    make_app: MakeApp, gate: Gate
) -> None:
    """Waiting without limit, requests for a slot would hold every server thread, and
    ``/healthz`` would queue behind them."""
    app: Flask = make_app(password_hashing_concurrency=1, password_hashing_wait_seconds=0.2)
    gate.opened.clear()
    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(register, app.test_client())
        assert gate.wait_for_more_than(0, timeout=10), "no hashing started"

        waited = register(app.test_client(), "late@example.com")
        login = app.test_client().post(f"{API}/auth/token", json={"email": "late@example.com", "password": PASSWORD})

        gate.opened.set()
        assert holding.result().status_code == 201

    for response in (waited, login):
        assert "service is busy" in assert_problem(response, 503)["detail"]
        assert response.headers["Retry-After"] == "1"
    # Nothing was written: the address is still free.
    assert register(app.test_client(), "late@example.com").status_code == 201


# --- what registration accepts -----------------------------------------------------------------


@pytest.mark.parametrize("local_part", ["ａdmin", "admın", "ſtraße", "zoë"], ids=repr)
def test_an_address_the_shop_could_not_mail_is_refused(make_app: MakeApp, local_part: str) -> None:
    """Mail goes out without SMTPUTF8: these were accepted, then every welcome mail failed."""
    client = make_app().test_client()
    assert invalid_fields(register(client, f"{local_part}@example.com")) == {"email"}


def test_emails_are_compared_after_nfkc_and_internationalised_domains_are_stored_mailable(
    make_app: MakeApp,
) -> None:
    client = make_app().test_client()
    assert register(client, "admin@example.com").status_code == 201
    # Fullwidth letters are the same letters: the account's owner logs in with them, and…
    assert login(client, "ａdmin@example.com").status_code == 200

    created = register(client, "zoe@bücher.example")
    assert created.status_code == 201, created.json
    assert created.json["email"] == "zoe@xn--bcher-kva.example"  # type: ignore[index]
    assert login(client, "zoe@bücher.example").status_code == 200
    assert login(client, "ZOE@XN--BCHER-KVA.example").status_code == 200
    assert_problem(register(client, "zoe@BÜCHER.example"), 409)


@pytest.mark.parametrize(
    ("address", "variant"),
    [("ada@straße.example", "ADA@Straße.EXAMPLE"), ("ada@σς.example", "Ada@Σς.EXAMPLE")],
    ids=repr,
)
def test_an_idna_2008_domain_logs_in_as_it_was_registered(make_app: MakeApp, address: str, variant: str) -> None:
    """Registration stores the domain as email_validator spells it in ASCII (IDNA 2008: ``ß`` and
    final ``ς`` are letters of their own); logins folded it as IDNA 2003 does (``ss``, ``σ``), found
    another key and answered 401."""
    client = make_app().test_client()
    assert register(client, address).status_code == 201
    assert login(client, address).status_code == 200
    assert login(client, variant).status_code == 200
    assert_problem(register(client, variant), 409)


@pytest.mark.parametrize(
    "name",
    ["Ada\u2028Bcc: x@example.com", "Ada\u2029", "Ada\u0085Lovelace", "Ada\u202eecalevol", "\u2066Ada", "Ada\u200f"],
    ids=repr,
)
def test_a_name_that_would_break_a_mail_header_is_refused(make_app: MakeApp, name: str) -> None:
    client = make_app().test_client()
    assert invalid_fields(register(client, name=name)) == {"name"}


@pytest.mark.parametrize(
    "password", [" " * 8, "\t" * 8, "\u3000" * 8, "\u2028" * 8, "\x85" * 8, "\u200b" * 8, "\ufeff" * 8, " \t\n\r" * 2]
)
def test_a_password_of_only_white_space_or_control_characters_is_refused(make_app: MakeApp, password: str) -> None:
    client = make_app().test_client()
    body = assert_problem(register(client, password=password), 400)
    assert {error["field"] for error in body["errors"]} == {"password"}
    assert "white space" in body["errors"][0]["message"]


def test_a_password_with_white_space_around_something_typed_is_fine(make_app: MakeApp) -> None:
    client = make_app().test_client()
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    assert register(client, email, password="   x    ").status_code == 201
    assert login(client, email, "   x    ").status_code == 200


def test_a_taken_address_gets_a_409_that_neither_repeats_it_nor_says_it_exists(make_app: MakeApp) -> None:
    client = make_app().test_client()
    assert register(client, "taken@example.com").status_code == 201

    body = assert_problem(register(client, "TAKEN@example.com"), 409)

    assert "taken" not in body["detail"].lower()
    assert "exist" not in body["detail"]
    assert body["detail"] == "this email address cannot be used to register a new account"
