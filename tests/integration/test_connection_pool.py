"""One engine and pool per database server and process, shared by the contexts on it.

Contexts whose URLs name the same PostgreSQL server share one pool (each still in its own
schema); a context given a URL of its own gets a pool of its own; disposing one context never
closes the pool under another. A pooled connection the server closed while idle is replaced at
checkout without an error; a request that finds every connection busy waits for one, and after
``DATABASE_POOL_TIMEOUT_SECONDS`` gets a 503 problem with ``Retry-After``.

The server tests need ``SHOP_TEST_POSTGRES_URL``; they skip without it, naming the variable.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

from app.config import SERVER_DELIVERY_WORKERS, Settings
from app.containers import databases
from app.factory import container_of
from infrastructure.db.database import Database, Engines
from tests.conftest import MakeApp, Shop, postgres_url_or_skip


@pytest.fixture
def server_url() -> str:
    return postgres_url_or_skip()


def test_contexts_on_one_server_share_a_pool_and_a_context_with_its_own_url_gets_its_own(server_url: str) -> None:
    engines = Engines()
    other_url = make_url(server_url).set(database="elsewhere")  # never connected to here
    user, order, audit = (
        Database("user", server_url, engines=engines),
        Database("order", server_url, engines=engines),
        Database("audit", other_url, engines=engines),
    )
    try:
        assert user.engine.pool is order.engine.pool
        assert audit.engine.pool is not user.engine.pool
        assert (user.schema, order.schema) == ("user", "order")
    finally:
        for database in (user, order, audit):
            database.dispose()


def test_disposing_a_context_keeps_the_pool_another_context_uses(server_url: str) -> None:
    engines = Engines()
    user, order = Database("user", server_url, engines=engines), Database("order", server_url, engines=engines)
    pool = order.engine.pool
    assert isinstance(pool, QueuePool)
    order.ping()
    assert pool.checkedin() == 1

    user.dispose()
    assert order.engine.pool is pool and pool.checkedin() == 1, "the pooled connection was closed"
    order.ping()

    order.dispose()
    assert pool.checkedin() == 0, "the last context on the server closes the pool"


def test_sqlite_keeps_an_engine_per_file_and_one_write_turn_per_file(tmp_path: Path) -> None:
    engines = Engines()
    user = Database("user", f"sqlite:///{tmp_path / 'user.db'}", engines=engines)
    order = Database("order", f"sqlite:///{tmp_path / 'order.db'}", engines=engines)
    audit, notification = (
        Database(name, f"sqlite:///{tmp_path / 'shared.db'}", engines=engines) for name in ("audit", "notification")
    )
    turns: list[float] = []

    def write_on_the_same_file() -> None:
        with notification.session(write=True):
            turns.append(time.monotonic())

    try:
        assert user.engine.pool is not order.engine.pool
        assert audit.engine.pool is notification.engine.pool
        with order.session(write=True), user.session(write=True):
            pass  # two files, two writers at once
        with audit.session(write=True):
            other = threading.Thread(target=write_on_the_same_file)
            other.start()
            time.sleep(0.2)
            released = time.monotonic()
        other.join()
        assert turns and turns[0] >= released, "the file's one writer was busy: the other context waited"
    finally:
        for database in (user, order, audit, notification):
            database.dispose()


def _app_connections(server_url: str, application_name: str) -> list[int]:
    """The backend pids of the connections an app named ``application_name`` holds open."""
    with psycopg.connect(server_url, autocommit=True, application_name="connection-pool-test") as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [pid for (pid,) in rows]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_every_context_of_an_app_uses_one_pool_and_a_connection_the_server_closed_is_replaced(
    make_app: MakeApp, server_url: str
) -> None:
    name = f"shop-test-{uuid.uuid4().hex[:12]}"
    app = make_app(database_application_name=name)
    container = container_of(app)
    assert len({database.engine.pool for database in databases(container).values()}) == 1
    shop = Shop(app.test_client(), container)
    product = shop.product(shop.admin())
    customer = shop.customer()
    held = _app_connections(server_url, name)
    assert held, "the app's connections carry its application_name"

    # As a restart would, but for this app's connections alone: the server ends them while idle.
    with psycopg.connect(server_url, autocommit=True) as connection:
        for pid in held:
            connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while set(_app_connections(server_url, name)) & set(held):
        assert time.monotonic() < deadline, "the server did not end the connections"
        time.sleep(0.05)

    replaced: list[BaseException | None] = []
    pool = databases(container)["order"].engine.pool
    event.listen(pool, "invalidate", lambda _connection, _record, error: replaced.append(error))
    ordered = shop.client.post(
        "/api/v1/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=customer
    )
    assert ordered.status_code == 201, ordered.get_data(as_text=True)
    assert replaced and all(isinstance(error, DisconnectionError) for error in replaced), (
        "each dead connection was found at checkout, none by a statement failing on it"
    )
    assert shop.client.get("/readyz").status_code == 200


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_request_waits_for_a_busy_pool_and_gets_a_503_when_none_is_freed_in_time(make_app: MakeApp) -> None:
    app = make_app(database_pool_size=1, database_max_overflow=0, database_pool_timeout_seconds=1.5)
    client = app.test_client()
    user = databases(container_of(app))["user"]

    # Another context holds the server's only connection: product's requests wait for it.
    with user.connect(write=False) as holder:
        holder.execute(text("SELECT 1"))
        timer = threading.Timer(0.3, holder.close)
        timer.start()
        waited = client.get("/api/v1/products")
        timer.join()
    assert waited.status_code == 200, waited.get_data(as_text=True)

    with user.connect(write=False) as holder:
        holder.execute(text("SELECT 1"))
        started = time.monotonic()
        busy = client.get("/api/v1/products")
        assert time.monotonic() - started >= 1.4, "it waited for DATABASE_POOL_TIMEOUT_SECONDS"
    assert busy.status_code == 503, busy.get_data(as_text=True)
    assert busy.content_type == "application/problem+json"
    assert busy.headers["Retry-After"]
    assert busy.json is not None and busy.json["status"] == 503
    assert client.get("/api/v1/products").status_code == 200, "served again once a connection is free"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_readiness_asks_each_server_once_and_answers_for_every_context_on_it(make_app: MakeApp) -> None:
    app = make_app()
    checkouts: list[object] = []
    event.listen(databases(container_of(app))["user"].engine.pool, "checkout", lambda *args: checkouts.append(args))

    ready = app.test_client().get("/readyz")

    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert ready.json is not None and set(ready.json["databases"]) == set(databases(container_of(app)))
    assert len(checkouts) == 1, "six contexts on one server: one ping"


def test_a_worker_busy_at_its_default_concurrency_reuses_its_connections(server_url: str) -> None:
    """The default pool holds what a production worker on a server runs at once (its request
    threads and its delivery workers): a connection beyond the pool is closed when returned, so
    a smaller pool opened a server connection for every such burst (bench/README.md, "Pool churn")."""
    settings = Settings()
    concurrency = settings.web_threads + SERVER_DELIVERY_WORKERS
    database = Database("user", server_url, pool=settings.database_pool())
    opened: list[object] = []
    event.listen(database.engine, "connect", lambda connection, record: opened.append(connection))

    def hold_one(barrier: threading.Barrier) -> None:
        with database.reading() as connection:
            connection.execute(text("SELECT 1"))
            barrier.wait(timeout=10)  # all of them held at once

    try:
        for _burst in range(3):
            barrier = threading.Barrier(concurrency)
            threads = [threading.Thread(target=hold_one, args=(barrier,)) for _ in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len(opened) == concurrency, f"{len(opened)} connections opened for 3 bursts of {concurrency}"
    finally:
        database.dispose()
