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
from tests.problems import assert_problem

API = "/api/v1"
PASSWORD = "correct horse"


def register(client: FlaskClient, email: str | None = None, address: str = "127.0.0.1", **fields: Any) -> TestResponse:
    body = {"email": email or f"{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD, "name": "Some One"}
    body.update(fields)
    return client.post(f"{API}/users", json=body, environ_base={"REMOTE_ADDR": address})


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
    app: Flask = make_app(password_hashing_concurrency=2)
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
