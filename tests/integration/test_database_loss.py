"""The PostgreSQL server stops under a running app and starts again: meanwhile the API answers
503 problem details (never 500) and /readyz says which databases are down; afterwards the same
app serves again by itself, with no restart, and nothing committed before was lost.

This stops the real local server, and always starts it again: the tests are marked ``alone``,
so ``make test`` runs them after the parallel run, with no other test beside them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.factory import container_of
from tests.conftest import Backend, Shop, start_app, stop_app

pytestmark = pytest.mark.alone

SERVER_TIMEOUT = 60.0


def cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("stopping the server needs Debian's pg_ctlcluster, run as root")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def server(action: str) -> None:
    fast = ["-m", "fast"] if action in ("stop", "restart") else []  # don't wait for idle sessions
    subprocess.run([*cluster(), action, *fast], check=True, timeout=60)


def wait_until_accepting() -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


@pytest.fixture
def app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    app = start_app(tmp_path / "instance", database_connect_timeout_seconds=2)
    yield app
    stop_app(app)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_lost_database_is_a_503_and_the_app_recovers_when_it_is_back(app: Flask) -> None:
    client = app.test_client()
    shop = Shop(client, container_of(app))
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    customer = shop.customer()
    assert client.get("/readyz").status_code == 200

    cluster()  # skips before stopping anything when the server cannot be controlled
    server("stop")
    try:
        listed = client.get("/api/v1/products")
        ordered = client.post(
            "/api/v1/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=customer
        )
        ready = client.get("/readyz")
    finally:
        server("start")
        wait_until_accepting()

    for response in (listed, ordered, ready):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.content_type == "application/problem+json"
        assert response.headers["Retry-After"]
    assert set(ready.json["databases"].values()) == {"unavailable"}

    again = client.get(f"/api/v1/products/{product['id']}")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.json["stock"] == 5, "nothing was reserved while the server was down"
    assert client.get("/readyz").status_code == 200
    placed = client.post(
        "/api/v1/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=customer
    )
    assert placed.status_code == 201, placed.get_data(as_text=True)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_first_request_after_a_restart_while_idle_succeeds(app: Flask) -> None:
    """Pooled connections died with the server; each is tested as it is checked out, so no
    request pays for the restart with an error."""
    client = app.test_client()
    assert client.get("/api/v1/products").status_code == 200  # a connection now waits in the pool

    cluster()
    server("restart")
    wait_until_accepting()

    response = client.get("/api/v1/products")
    assert response.status_code == 200, response.get_data(as_text=True)
