"""Fixtures shared by the suite: an app on fresh databases, its client, and a shopper's helpers.

Database-touching fixtures run once per backend: SQLite files in the test's folder, and
PostgreSQL when ``SHOP_TEST_POSTGRES_URL`` names a server (schemas of each test's own, named
apart so that runs never collide, and afterwards emptied for a later test of the worker or
dropped: ``tests/schema_pool.py``). A test that builds apps itself with :func:`start_app` runs on
both by asking for the ``backend`` fixture (e.g. ``pytestmark = pytest.mark.usefixtures("backend")``).
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from werkzeug.test import TestResponse

from app.containers import ApplicationContainer, databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from app.registry import CONTEXTS
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role
from infrastructure.db.database import Database
from tests.schema_pool import SchemaPool

# Argon2 at its cheapest: the suite registers many users; production keeps the defaults.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8, "argon2_parallelism": 1}
# Every test client registers from 127.0.0.1, and many tests register dozens of users; the
# tests of the registration limit set their own.
MANY_REGISTRATIONS = {"registration_rate_limit_per_address": "100000/minute"}


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the run imported and collected lives until it ends: frozen out of the garbage
    collector's rounds (``gc.freeze``, as ``app/collector.py`` does for a shop process), which
    otherwise walk all of it at every full collection. Two in-process test files: 2.4 → 1.4 s of
    garbage collection, 12.5 → 11.2 s in all (2026-12-05)."""
    gc.freeze()


POSTGRES_URL_VARIABLE = "SHOP_TEST_POSTGRES_URL"
AMQP_URL_VARIABLE = "SHOP_TEST_AMQP_URL"
BACKENDS = ("sqlite", "postgresql")


class Backend:
    """Where a test's databases live: SQLite files in the instance folder."""

    name = "sqlite"

    def settings(self, instance: Path) -> dict[str, Any]:
        """Every database setting, set: here to none (SQLite files in the instance folder), so
        that a ``DATABASE_URL`` in the developer's environment or ``.env`` cannot move a test's
        databases (``shop_env`` keeps them from the test's processes)."""
        return {
            "database_url": None,
            **{f"{context}_database_url": None for context in CONTEXTS},
            **{f"{context}_database_schema": None for context in CONTEXTS},
        }

    def database(self, context: str, instance: Path) -> Database:
        """A ``Database`` of its own for ``context``, as an app on ``instance`` would get it."""
        return Database(context, f"sqlite:///{instance.resolve() / context}.db")

    def migrate(self, instance: Path, served: dict[str, Database]) -> dict[str, Database]:
        """Migrate what it can of an app's databases quicker than Alembic; return the rest."""
        return {
            context: database
            for context, database in served.items()
            if not _migrated_sqlite.copy_into(context, database)
        }

    def cleanup(self) -> None:
        """Remove what the test created beyond its folder."""


class PostgresBackend(Backend):
    """Schemas named ``t<hex>_<context>`` on the server, one prefix per instance folder: apps
    started again on the same folder see the same data, as they would on SQLite files."""

    name = "postgresql"

    def __init__(self, url: str, *, pooled: bool = True) -> None:
        self.url = url
        self._pooled = pooled  # whether apps take schemas from the pool, or always new ones
        self._prefixes: dict[Path, str] = {}
        self._migrated: set[str] = set()

    def schema(self, context: str, instance: Path) -> str:
        prefix = self._prefixes.setdefault(instance.resolve(), f"t{uuid.uuid4().hex[:12]}")
        return f"{prefix}_{context}"

    def settings(self, instance: Path) -> dict[str, Any]:
        schemas = {f"{context}_database_schema": self.schema(context, instance) for context in CONTEXTS}
        return {**super().settings(instance), "database_url": self.url, **schemas}

    def database(self, context: str, instance: Path) -> Database:
        return Database(context, self.url, schema=self.schema(context, instance))

    def migrate(self, instance: Path, served: dict[str, Database]) -> dict[str, Database]:
        """Migrate the schemas of an instance's first app when they are the backend's own: taken
        from the process's pool of emptied ones where it has them (:class:`SchemaPool`), else by
        replaying what migrating them ran (:class:`_RecordedMigrations`); what is left to migrate
        (an app started again, a database moved by its settings)."""
        prefix = self._prefixes.get(instance.resolve())
        if (
            prefix is None
            or prefix in self._migrated
            or any(database.schema != f"{prefix}_{context}" for context, database in served.items())
        ):
            return served
        self._migrated.add(prefix)
        pool = _schema_pool(self.url)
        taken = pool.take(prefix, served) if self._pooled else set()
        migrating = {context: database for context, database in served.items() if context not in taken}
        if migrating:
            _recorded_migrations.migrate(prefix, migrating)
            pool.learn(prefix, migrating)
        return {}

    def cleanup(self) -> None:
        """Give the test's schemas back to the pool, which keeps those it can reuse (emptied)
        and drops the rest."""
        schemas = [
            (f"{prefix}_{context}", context) for prefix in self._prefixes.values() for context in (*CONTEXTS, "shared")
        ]
        self._prefixes.clear()
        self._migrated.clear()
        _schema_pool(self.url).give_back(schemas)


class _RecordedMigrations:
    """What migrating a set of contexts' fresh PostgreSQL schemas runs, recorded once per server
    and set of contexts in a test run, and replayed for the next app's schemas, renamed: each
    statement sent to the driver as Alembic sent it (with the same empty parameters, so that
    ``%`` is read the same way), in one transaction, without Alembic's Python around each.

    Recorded in order: every statement but the SELECTs (Alembic's and the migrations' questions,
    whose answers are the same for every fresh schema on one server, and advisory locks), the
    transactions' ``SET LOCAL search_path`` included, so hand-written SQL finds its tables on
    replay too. Left out: ``CREATE EXTENSION``, which changes the server, not the schemas: a
    recording that ran it leaves the extension there for every replay, where running it again
    would fail. A history that binds parameters to a statement that changes something cannot be
    replayed as recorded: its contexts are migrated by Alembic every time instead."""

    def __init__(self) -> None:
        self._scripts: dict[tuple[str, tuple[str, ...]], list[tuple[str, Any]] | None] = {}

    def migrate(self, prefix: str, served: dict[str, Database]) -> None:
        """Migrate the fresh schemas ``<prefix>_<context>`` of ``served``: by Alembic the first
        time for these contexts on this server (recording what it runs), by the recording after."""
        engine = next(iter(served.values())).engine
        key = (engine.url.render_as_string(hide_password=True), tuple(served))
        if key not in self._scripts:
            self._scripts[key] = self._record(prefix, served)
            return
        script = self._scripts[key]
        if script is None:
            upgrade_all(served)
            return
        with engine.begin() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                for statement, parameters in script:
                    cursor.execute(statement.replace(_PREFIX, prefix), parameters)
            finally:
                cursor.close()

    @staticmethod
    def _record(prefix: str, served: dict[str, Database]) -> list[tuple[str, Any]] | None:
        """Migrate ``served`` with Alembic; what it ran, its prefix made a placeholder."""
        thread = threading.get_ident()
        statements: list[tuple[str, Any]] = []
        bound: list[str] = []

        def record(_c: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
            words = statement.lstrip()[:16].upper()
            if threading.get_ident() != thread or words.startswith(("SELECT", "CREATE EXTENSION")):
                return
            if parameters:
                bound.append(statement)
            statements.append((statement.replace(prefix, _PREFIX), parameters))

        engines = list({id(database.engine): database.engine for database in served.values()}.values())
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        try:
            upgrade_all(served)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)
        return None if bound else statements


_PREFIX = "{schema-prefix}"
_recorded_migrations = _RecordedMigrations()
_schema_pools: dict[str, SchemaPool] = {}


def _schema_pool(url: str) -> SchemaPool:
    """The process's pool of emptied schemas on the server at ``url``."""
    pool = _schema_pools.get(url)
    if pool is None:
        pool = _schema_pools[url] = SchemaPool(url)
    return pool


_SQLITE = Backend()
# The backend of the running test: its ``backend`` fixture sets it, SQLite otherwise.
_current: Backend = _SQLITE


def amqp_url_or_skip() -> str:
    """The RabbitMQ server ``SHOP_TEST_AMQP_URL`` names; the test skipped, naming the variable,
    when it names none."""
    url = os.environ.get(AMQP_URL_VARIABLE)
    if not url:
        pytest.skip(f"RabbitMQ: set {AMQP_URL_VARIABLE} (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    return url


def postgres_url_or_skip() -> str:
    """The PostgreSQL server ``SHOP_TEST_POSTGRES_URL`` names; the test skipped, naming the
    variable, when it names none."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.skip(f"PostgreSQL: set {POSTGRES_URL_VARIABLE} (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        chosen = _SQLITE
    else:
        url = postgres_url_or_skip()
        # A test that reads query plans gets new schemas: a pooled one's tables and indexes
        # still hold the pages of the rows earlier tests left dead, which cost-based plans see.
        chosen = PostgresBackend(url, pooled=request.node.get_closest_marker("fresh_schemas") is None)
    with on_backend(chosen):
        yield chosen


@contextmanager
def on_backend(chosen: Backend) -> Iterator[Backend]:
    """``chosen`` is the current backend within the block and cleaned up after it: what the
    ``backend`` fixture does, for code that runs outside pytest (``bench/split.py``)."""
    global _current
    _current = chosen
    try:
        yield chosen
    finally:
        _current = _SQLITE
        chosen.cleanup()


def settings_for(instance: Path, **overrides: Any) -> dict[str, Any]:
    """Settings of an app on ``instance``, its databases on the current test's backend."""
    return {
        "instance_path": instance,
        "log_level": "WARNING",
        **FAST_HASHING,
        **MANY_REGISTRATIONS,
        **_current.settings(instance),
        **overrides,
    }


def env_for(instance: Path) -> dict[str, str]:
    """The environment variables that put a ``shop`` process on ``instance`` on the current
    test's backend (the process-level twin of :func:`settings_for`)."""
    return {name.upper(): str(value) for name, value in _current.settings(instance).items() if value is not None}


def database_for(context: str, instance: Path) -> Database:
    """A ``Database`` of ``context`` for an app on ``instance`` on the current test's backend, so a
    test can read that context's tables (unqualified names) wherever they live. Dispose it after."""
    return _current.database(context, instance)


def start_app(instance: Path, **overrides: Any) -> Flask:
    """An app on ``instance`` with every context's database migrated."""
    app = create_app(settings_for(instance, **overrides))
    upgrade_all(_current.migrate(instance, databases(container_of(app))))
    return app


def prepare_instance(instance: Path, *, admin: tuple[str, str] | None = None) -> None:
    """What ``shop db upgrade`` and ``shop users create-admin EMAIL --password PASSWORD`` leave
    on ``instance`` (the ``admin`` pair), done in this process: the databases from the migrated
    templates, the administrator by the use case the command runs. For the end-to-end tests
    whose subject is not those commands (``tests/e2e/test_cli.py`` runs them): two ``shop``
    processes spared, seconds each on a busy machine."""
    app = start_app(instance)
    try:
        if admin is not None:
            register_admin(container_of(app), *admin)
    finally:
        stop_app(app)


def register_admin(container: ApplicationContainer, email: str, password: str) -> None:
    register = container.user.register_user()
    register(RegisterUser(email=email, password=password, name="Administrator", role=Role.ADMIN))


def set_role(app: Flask, email: str, role: Role) -> None:
    """Promote or demote the account behind ``email``, as no endpoint does: tokens already issued
    must follow the stored role."""
    with container_of(app).user.uow() as uow:
        user = uow.users.get_by_email(email)
        assert user is not None
        user.role = role
        uow.users.save(user)
        uow.commit()


class _MigratedSqlite:
    """Each context's SQLite file migrated once per test run, in a folder removed at exit, and
    copied into every new app's instance folder: a file copy where Alembic takes tens of
    milliseconds a context to migrate it, for each of the suite's ~1,500 apps."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._templates: dict[str, Path] = {}

    def copy_into(self, context: str, database: Database) -> bool:
        """Whether ``database`` was a new SQLite file of ``context`` and now holds the migrated
        content. A file that exists already, or a database on a server, is left to migrate."""
        target = database.engine.url.database
        if database.engine.dialect.name != "sqlite" or target in (None, "", ":memory:") or Path(target).exists():
            return False
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._template(context), target)
        return True

    def _template(self, context: str) -> Path:
        template = self._templates.get(context)
        if template is not None:
            return template
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="shop-test-templates-"))
            atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
        template = self._folder / f"{context}.db"
        migrating = Database(context, f"sqlite:///{template}")
        try:
            upgrade_all({context: migrating})
        finally:
            migrating.dispose()
        # The last connection's close folds the write-ahead log into the file: the file alone
        # is the whole database.
        assert not template.with_name(f"{template.name}-wal").exists(), f"{template}: its WAL was not folded in"
        self._templates[context] = template
        return template


_migrated_sqlite = _MigratedSqlite()


def stop_app(app: Flask) -> None:
    """Undo what building the app did to shared state: its wiring and its connections."""
    container = container_of(app)
    container.unwire()
    # Every context's, served or not: the last one on a server closes the pool they share.
    for context in CONTEXTS:
        getattr(container, f"{context}_database")().dispose()


MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, backend: Backend) -> Iterator[MakeApp]:
    """Apps with settings overrides, each on a fresh instance folder, all stopped at the end."""
    built: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = start_app(tmp_path / f"instance-{len(built)}", **overrides)
        built.append(app)
        return app

    yield make
    for app in built:
        stop_app(app)


@pytest.fixture
def app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
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
        register_admin(self.container, email, "admin password")
        return self.bearer(email, "admin password")

    def bearer(self, email: str, password: str) -> dict[str, str]:
        response = self.client.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}

    def order(
        self, customer: dict[str, str], product: dict[str, Any], quantity: int = 1, **headers: str
    ) -> TestResponse:
        """``POST /orders`` of one line, as ``customer``; the response, whatever it is."""
        return self.client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": product["id"], "quantity": quantity}]},
            headers={**customer, **headers},
        )

    def placed(self, customer: dict[str, str], product: dict[str, Any], quantity: int = 1, **headers: str) -> Any:
        """:meth:`order`, which must be placed (201): the order."""
        response = self.order(customer, product, quantity, **headers)
        assert response.status_code == 201, response.json
        return response.json

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
