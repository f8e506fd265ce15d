"""Fixtures shared by the suite: an app on fresh SQLite files, its client, and a shopper's helpers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.containers import ApplicationContainer, databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role

# Argon2 at its cheapest: the suite registers many users; production keeps the defaults.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8, "argon2_parallelism": 1}


def settings_for(instance: Path, **overrides: Any) -> dict[str, Any]:
    return {"instance_path": instance, "log_level": "WARNING", **FAST_HASHING, **overrides}


def start_app(instance: Path, **overrides: Any) -> Flask:
    """An app on ``instance`` with every context's database migrated."""
    app = create_app(settings_for(instance, **overrides))
    upgrade_all(databases(container_of(app)))
    return app


def stop_app(app: Flask) -> None:
    """Undo what building the app did to shared state: its wiring and its connections."""
    container = container_of(app)
    container.unwire()
    for database in databases(container).values():
        database.dispose()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = start_app(tmp_path / "instance")
    yield app
    stop_app(app)


@pytest.fixture
def container(app: Flask) -> ApplicationContainer:
    return container_of(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Shop:
    """A caller of the HTTP API, for tests that need users, tokens and products quickly."""

    def __init__(self, client: FlaskClient, container: ApplicationContainer) -> None:
        self.client = client
        self.container = container

    def customer(self, email: str | None = None, password: str = "correct horse") -> dict[str, str]:
        email = email or f"{uuid.uuid4().hex[:12]}@example.com"
        response = self.client.post("/api/v1/users", json={"email": email, "password": password, "name": "Cus Tomer"})
        assert response.status_code == 201, response.json
        return self.bearer(email, password)

    def admin(self) -> dict[str, str]:
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        register = self.container.user.register_user()
        register(RegisterUser(email=email, password="admin password", name="Admin", role=Role.ADMIN))
        return self.bearer(email, "admin password")

    def bearer(self, email: str, password: str) -> dict[str, str]:
        response = self.client.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}

    def product(self, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "Thing", "price": "10.00", "initial_stock": 10}
        body.update(fields)
        response = self.client.post("/api/v1/products", json=body, headers=admin)
        assert response.status_code == 201, response.json
        product: dict[str, Any] = response.json
        return product


@pytest.fixture
def shop(client: FlaskClient, container: ApplicationContainer) -> Shop:
    return Shop(client, container)
