"""Do reads stay flat as data grows? Loads rows straight into a migrated shop and times reads.

Each scenario builds a shop the way the tests do (``create_app`` + ``upgrade_all``) on SQLite
files in a temporary folder or on throwaway PostgreSQL schemas (``bench<hex>_<context>``,
dropped at the end), bulk-loads rows with SQLAlchemy Core ``INSERT`` statements (thousands of
rows per statement, no API, no events), then times requests in process with Flask's test
client: one warm-up, then the median of ``--runs`` requests. The data only grows within a
scenario (1k, then up to 100k, then up to 1M rows), so each size is measured on the same
database, the way a shop grows.

- ``orders``: one customer owns 99% of the orders (the rest belong to 1,000 others); their
  first page, and a deep page whose cursor is the key of their order at depth ~99k (built as
  the API builds it, so no 5,000 requests to get there);
- ``products``: the catalog listing (first page, a page from the middle) and searches ``q=``
  for a rare term (3 products at every size), a medium one (0.1%), a frequent one (50%) and a
  two-character one (too short for a trigram index);
- ``audit``: the admin's audit log, first page, a page from the middle, one event type, one entity;
- ``admin_orders``: every customer's orders as an administrator lists them (the ``orders``
  rows, 1 in 100 cancelled): first page and a page ~99k deep, unfiltered, of the rare status,
  of one customer, and within a time window ending in the middle of the history;
- ``admin_users``: the accounts (random addresses, 1 in 1,000 an administrator): first page, a
  page from the middle, a prefix matching ~1 in 1,300 (three letters), the administrators and
  the administrators under a prefix;
- ``recommendations``: a customer's recommendations with 1k vs 100k co-purchase pairs (products
  have ~20 partners each, one best seller has 10% of all pairs); a customer who bought five
  ordinary products, and one who also bought the best seller.

PostgreSQL tables are ``VACUUM ANALYZE``d after each load (what autovacuum does on its own a
moment later); SQLite gets no ``ANALYZE``, as the shop never runs one.

    LOG_LEVEL=ERROR .venv/bin/python bench/scale.py [--backend sqlite postgresql]
        [--postgres URL] [--scenario orders products audit recommendations admin_orders admin_users]
        [--sizes 1000 100000 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Table, event, func, insert, select
from werkzeug.test import TestResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.containers import databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from app.registry import CONTEXTS
from contexts.audit.adapters.orm import AuditEntryRow
from contexts.audit.http import AuditCursor
from contexts.order.adapters.orm import OrderLineRow, OrderRow
from contexts.order.http import OrderCursor
from contexts.product.adapters.orm import ProductRow, StockRow
from contexts.product.http import ProductCursor
from contexts.recommendation.adapters.orm import PairRow, PopularityRow, ProfileRow, PurchaseRow
from contexts.user.adapters.orm import UserRow
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role, email_key
from contexts.user.http import UserCursor
from infrastructure.db.database import Database, quoted_schema
from infrastructure.http.pagination import encode_cursor

API = "/api/v1"
BATCH = 5_000
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8, "argon2_parallelism": 1}
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)
RARE, MEDIUM, FREQUENT, SHORT = "zephyrine", "lantern", "mug", "mu"
NOUNS = ("teapot", "kettle", "plate", "bowl", "spoon", "fork", "knife", "jar", "tray")
ADJECTIVES = ("red", "blue", "green", "steel", "oak", "glass", "small", "large", "enamel", "copper")
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


# --- the shop under test -----------------------------------------------------------------


@dataclass
class Shop:
    """A migrated shop on one backend, its test client, and its databases by context."""

    app: Flask
    client: FlaskClient
    databases: dict[str, Database]
    backend: str
    postgres_url: str | None
    runs: int
    results: Results
    explain_at: int | None = None  # the size at which to print the plans of the queries timed

    def register(self, role: Role = Role.CUSTOMER) -> tuple[uuid.UUID, dict[str, str]]:
        """A user registered through the application (not the API: no rate limit), and their token."""
        email, password = f"bench-{uuid.uuid4().hex[:10]}@example.com", "bench password"
        register = container_of(self.app).user.register_user()
        register(RegisterUser(email=email, password=password, name="Bench", role=role))
        token = json_of(self.client.post(f"{API}/auth/token", json={"email": email, "password": password}))
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        return uuid.UUID(json_of(self.client.get(f"{API}/users/me", headers=headers))["id"]), headers

    def measure(self, scenario: str, what: str, size: int, url: str, **request: Any) -> None:
        """Record the median time of GET ``url``; at ``explain_at`` rows, print the plans of its queries first."""
        if size == self.explain_at:
            with captured_queries(self.databases) as queries:
                self.client.get(url, **request)
            print_plans(f"{self.backend} {scenario}: {what} at {size:,}", queries)
        self.results.add(self.backend, scenario, what, size, median_ms(self.client, url, self.runs, **request))


@contextmanager
def shop_on(
    backend: str, postgres_url: str | None, runs: int, results: Results, explain_at: int | None = None
) -> Iterator[Shop]:
    with tempfile.TemporaryDirectory(prefix="shop-scale-") as folder:
        settings: dict[str, Any] = {
            "instance_path": Path(folder) / "instance",
            "log_level": "ERROR",
            "database_pool_size": 2,
            **FAST_HASHING,
        }
        schemas: list[str] = []
        if backend == "postgresql":
            if not postgres_url:
                raise SystemExit("PostgreSQL: pass --postgres URL or set SHOP_TEST_POSTGRES_URL")
            prefix = f"bench{uuid.uuid4().hex[:8]}"
            schemas = [f"{prefix}_{context}" for context in CONTEXTS]
            settings["database_url"] = postgres_url
            settings.update({f"{context}_database_schema": f"{prefix}_{context}" for context in CONTEXTS})
        app = create_app(settings)
        container = container_of(app)
        try:
            upgrade_all(databases(container))
            yield Shop(app, app.test_client(), databases(container), backend, postgres_url, runs, results, explain_at)
        finally:
            container.unwire()
            for database in databases(container).values():
                database.dispose()
            if schemas:
                drop_schemas(postgres_url or "", schemas)


def drop_schemas(url: str, schemas: list[str]) -> None:
    database = Database("bench-cleanup", url)
    try:
        with database.engine.begin() as connection:
            for schema in schemas:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        database.dispose()


def load(database: Database, rows: Iterable[tuple[Table, dict[str, Any]]]) -> None:
    """Insert ``(table, row)`` pairs in one transaction, ``BATCH`` rows per statement and table.

    On SQLite the loading connection gets a 256 MB page cache for the load only (random UUID
    keys touch index pages all over), then SQLite's default again, so reads are timed as served.
    """
    batches: dict[Table, list[dict[str, Any]]] = {}
    sqlite = database.engine.dialect.name == "sqlite"
    with database.connect(write=True) as connection, connection.begin():
        if sqlite:
            connection.exec_driver_sql("PRAGMA cache_size = -262144")
        for table, row in rows:
            batch = batches.setdefault(table, [])
            batch.append(row)
            if len(batch) >= BATCH:
                connection.execute(insert(table), batch)
                batch.clear()
        for table, batch in batches.items():
            if batch:
                connection.execute(insert(table), batch)
        if sqlite:
            connection.exec_driver_sql("PRAGMA cache_size = -2000")


def settle(database: Database, *tables: Table) -> None:
    """What autovacuum does after a bulk load on PostgreSQL: statistics and visibility map."""
    if database.engine.dialect.name != "postgresql":
        return
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in tables:
            # Hand-written SQL gets no schema_translate_map: name the context's schema.
            name = f"{quoted_schema(database.engine, database.schema)}.{table.name}" if database.schema else table.name
            connection.exec_driver_sql(f"VACUUM ANALYZE {name}")


def json_of(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.json)
    body: dict[str, Any] = response.json or {}
    return body


def median_ms(client: FlaskClient, url: str, runs: int, **request: Any) -> float:
    """Median wall time of ``runs`` GETs of ``url`` after one warm-up, asserting 200 each time."""
    samples = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        response = client.get(url, **request)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status_code, response.json)
        if attempt:
            samples.append(elapsed * 1000)
    return statistics.median(samples)


Query = tuple[Database, str, Any]


@contextmanager
def captured_queries(databases: dict[str, Database]) -> Iterator[list[Query]]:
    """The SELECT statements sent to any of ``databases`` inside the block, with their parameters."""
    queries: list[Query] = []
    listeners = []
    for database in databases.values():

        def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any, database: Database = database) -> None:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                queries.append((database, sql, parameters))

        event.listen(database.engine, "before_cursor_execute", record)
        listeners.append((database.engine, record))
    try:
        yield queries
    finally:
        for engine, record in listeners:
            event.remove(engine, "before_cursor_execute", record)


def print_plans(title: str, queries: list[Query]) -> None:
    print(f"\n  plans of {title}:")
    for database, sql, parameters in queries:
        sqlite = database.engine.dialect.name == "sqlite"
        with database.engine.connect() as connection:
            rows = connection.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, parameters).all()
        print("    " + " ".join(sql.split()))
        for row in rows:
            print("      " + (str(row[-1]) if sqlite else str(row[0])))
    print()


def count(database: Database, table: Table) -> int:
    with database.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)


def grow(
    database: Database, table: Table, target: int, rows: Callable[[int, int], Iterable[tuple[Table, dict[str, Any]]]]
) -> float:
    """Load ``table`` up to ``target`` rows with ``rows(first, stop)``; seconds it took."""
    have = count(database, table)
    started = time.perf_counter()
    if target > have:
        load(database, rows(have, target))
    return time.perf_counter() - started


@dataclass
class Results:
    """``{(backend, scenario, what): {size: ms}}``, printed as a table with large/small ratios."""

    timings: dict[tuple[str, str, str], dict[int, float]] = field(default_factory=dict)

    def add(self, backend: str, scenario: str, what: str, size: int, ms: float) -> None:
        self.timings.setdefault((backend, scenario, what), {})[size] = ms
        print(f"  {backend:<10} {scenario:<15} {what:<34} {size:>9,} rows  {ms:8.1f} ms", flush=True)

    def table(self) -> str:
        sizes = sorted({size for by_size in self.timings.values() for size in by_size})
        head = ["backend", "scenario", "request", *[f"{size:,}" for size in sizes], "large/small"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for (backend, scenario, what), by_size in self.timings.items():
            cells = [f"{by_size[size]:.1f}" if size in by_size else "" for size in sizes]
            measured = [by_size[size] for size in sizes if size in by_size]
            ratio = f"{measured[-1] / measured[0]:.1f}×" if len(measured) > 1 else ""
            lines.append("| " + " | ".join([backend, scenario, what, *cells, ratio]) + " |")
        return "\n".join(lines)


# --- orders ------------------------------------------------------------------------------


def order_rows(
    customer: uuid.UUID, others: list[uuid.UUID]
) -> Callable[[int, int], Iterator[tuple[Table, dict[str, Any]]]]:
    """Orders ``first..stop``: 99 in 100 the customer's, four per second (so pages meet equal
    times), one in 100 (another hundredth than the others') cancelled."""
    orders: Table = OrderRow.__table__  # type: ignore[assignment]
    lines: Table = OrderLineRow.__table__  # type: ignore[assignment]
    product = uuid.UUID(int=7)

    def rows(first: int, stop: int) -> Iterator[tuple[Table, dict[str, Any]]]:
        for number in range(first, stop):
            order_id = uuid.uuid4()
            user_id = others[number % len(others)] if number % 100 == 99 else customer
            created_at = EPOCH + timedelta(seconds=number // 4)
            yield (
                orders,
                {
                    "id": order_id,
                    "user_id": user_id,
                    "status": "cancelled" if number % 100 == 42 else "placed",
                    "currency": "USD",
                    "created_at": created_at,
                },
            )
            yield (
                lines,
                {
                    "order_id": order_id,
                    "position": 0,
                    "product_id": product,
                    "sku": "SKU-BENCH",
                    "name": "Bench thing",
                    "unit_price": Decimal("9.99"),
                    "currency": "USD",
                    "quantity": 1 + number % 3,
                },
            )

    return rows


def bench_orders(shop: Shop, sizes: list[int]) -> None:
    database = shop.databases["order"]
    orders: Table = OrderRow.__table__  # type: ignore[assignment]
    customer, headers = shop.register()
    rows = order_rows(customer, [uuid.uuid4() for _ in range(1_000)])
    for size in sizes:
        seconds = grow(database, orders, size, rows)
        settle(database, orders, OrderLineRow.__table__)  # type: ignore[arg-type]
        print(f"  loaded {size:,} orders in {seconds:.1f} s", flush=True)
        mine = size - size // 100
        depth = min(99_000, mine - 40)
        with database.engine.connect() as connection:
            created_at, order_id = connection.execute(
                select(orders.c.created_at, orders.c.id)
                .where(orders.c.user_id == customer)
                .order_by(orders.c.created_at.desc(), orders.c.id.desc())
                .offset(depth - 1)
                .limit(2)
            ).all()[0]
            expected = connection.execute(
                select(orders.c.id)
                .where(orders.c.user_id == customer)
                .order_by(orders.c.created_at.desc(), orders.c.id.desc())
                .offset(depth)
                .limit(1)
            ).scalar_one()
        cursor = encode_cursor(OrderCursor(created_at=created_at, id=order_id))
        page = json_of(shop.client.get(f"{API}/orders", query_string={"cursor": cursor}, headers=headers))
        assert page["items"][0]["id"] == str(expected), "the deep page does not start where it should"
        print(f"  deep page: {depth:,} orders deep", flush=True)
        shop.measure("orders", "first page", size, f"{API}/orders", headers=headers)
        shop.measure(
            "orders", "deep page (depth ~99k)", size, f"{API}/orders", headers=headers, query_string={"cursor": cursor}
        )


def nth_newest(database: Database, where: Any, depth: int) -> tuple[datetime, uuid.UUID, uuid.UUID]:
    """The key of the order ``depth`` deep among those matching ``where``, newest first, and the
    id of the one after it: where a cursor built from that key must start."""
    orders: Table = OrderRow.__table__  # type: ignore[assignment]
    with database.engine.connect() as connection:
        (created_at, order_id), (_, next_id) = connection.execute(
            select(orders.c.created_at, orders.c.id)
            .where(where)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .offset(depth - 1)
            .limit(2)
        ).all()
    return created_at, order_id, next_id


def bench_admin_orders(shop: Shop, sizes: list[int]) -> None:
    database = shop.databases["order"]
    orders: Table = OrderRow.__table__  # type: ignore[assignment]
    customer = uuid.uuid4()
    _, admin = shop.register(Role.ADMIN)
    rows = order_rows(customer, [uuid.uuid4() for _ in range(1_000)])
    url = f"{API}/admin/orders"
    for size in sizes:
        seconds = grow(database, orders, size, rows)
        settle(database, orders, OrderLineRow.__table__)  # type: ignore[arg-type]
        print(f"  loaded {size:,} orders in {seconds:.1f} s", flush=True)
        # A window [from, to) over the older half of the history: its first page is far from the newest.
        middle = EPOCH + timedelta(seconds=size // 8)
        window = {"from": EPOCH.isoformat(), "to": middle.isoformat()}
        filters: dict[str, tuple[dict[str, str], Any]] = {
            "all": ({}, orders.c.id.is_not(None)),
            "status=cancelled (1%)": ({"status": "cancelled"}, orders.c.status == "cancelled"),
            "customer (99%)": ({"customer": str(customer)}, orders.c.user_id == customer),
            "from/to (older half)": (window, (orders.c.created_at >= EPOCH) & (orders.c.created_at < middle)),
        }
        for what, (query, where) in filters.items():
            shop.measure("admin_orders", f"{what}, first page", size, url, headers=admin, query_string=query)
            with database.engine.connect() as connection:
                matching = int(connection.scalar(select(func.count()).select_from(orders).where(where)) or 0)
            depth = min(99_000, matching - 40)
            if depth < 1:
                continue
            created_at, order_id, expected = nth_newest(database, where, depth)
            deep = {**query, "cursor": encode_cursor(OrderCursor(created_at=created_at, id=order_id))}
            page = json_of(shop.client.get(url, query_string=deep, headers=admin))
            assert page["items"][0]["id"] == str(expected), f"{what}: the deep page does not start where it should"
            shop.measure("admin_orders", f"{what}, deep page (~99k)", size, url, headers=admin, query_string=deep)


# --- users -------------------------------------------------------------------------------

USER_PREFIX = "qzx"  # 3 letters of 36: ~1 address in 47,000 by chance, plus every 1,300th made to match


def user_rows(first: int, stop: int) -> Iterator[tuple[Table, dict[str, Any]]]:
    """Users ``first..stop``: random addresses, every 1,300th starting with ``USER_PREFIX``, every 1,000th an admin."""
    users: Table = UserRow.__table__  # type: ignore[assignment]
    chance = random.Random(first)
    for number in range(first, stop):
        local = "".join(chance.choices(TOKEN_ALPHABET, k=12))
        if number % 1300 == 5:
            local = USER_PREFIX + local
        email = f"{local}.{number}@example.com"
        if number < 10:
            assert email_key(email) == email.lower(), email
        yield (
            users,
            {
                "id": uuid.uuid4(),
                "email": email,
                # ASCII throughout, so the key is the address in lower case (checked below).
                "email_key": email.lower(),
                "name": "Bench",
                "role": "admin" if number % 1000 == 7 else "customer",
                "password_hash": "not a hash",
                "created_at": EPOCH + timedelta(seconds=number),
            },
        )


def bench_admin_users(shop: Shop, sizes: list[int]) -> None:
    database = shop.databases["user"]
    users: Table = UserRow.__table__  # type: ignore[assignment]
    _, admin = shop.register(Role.ADMIN)
    url = f"{API}/admin/users"
    for size in sizes:
        seconds = grow(database, users, size, user_rows)
        settle(database, users)
        print(f"  loaded {size:,} users in {seconds:.1f} s", flush=True)
        with database.engine.connect() as connection:
            middle = connection.scalar(select(users.c.email_key).order_by(users.c.email_key).offset(size // 2).limit(1))
        matching = json_of(
            shop.client.get(url, query_string={"email_prefix": USER_PREFIX.upper(), "limit": 100}, headers=admin)
        )
        assert matching["items"] and all(item["email"].startswith(USER_PREFIX) for item in matching["items"]), matching
        requests: dict[str, dict[str, Any]] = {
            "first page": {},
            "middle page": {"cursor": encode_cursor(UserCursor(email_key=str(middle)))},
            f"email_prefix={USER_PREFIX} (~0.08%)": {"email_prefix": USER_PREFIX},
            "role=admin (0.1%)": {"role": "admin"},
            "role=admin, email_prefix=a": {"role": "admin", "email_prefix": "a"},
        }
        for what, query in requests.items():
            shop.measure("admin_users", what, size, url, headers=admin, query_string=query)


# --- products ----------------------------------------------------------------------------


def product_rows(first: int, stop: int) -> Iterator[tuple[Table, dict[str, Any]]]:
    """Products ``first..stop``: half name a mug, 0.1% a lantern, products 10, 500 and 900 the rare term."""
    products: Table = ProductRow.__table__  # type: ignore[assignment]
    stock: Table = StockRow.__table__  # type: ignore[assignment]
    chance = random.Random(first)
    for number in range(first, stop):
        token = "".join(chance.choices(TOKEN_ALPHABET, k=5))
        noun = FREQUENT if number % 2 == 0 else chance.choice(NOUNS)
        name = f"{chance.choice(ADJECTIVES).title()} {noun} {token}"
        if number % 1000 == 7:
            name = f"{name} {MEDIUM}"
        if number in (10, 500, 900):
            name = f"{name} {RARE.title()}"
        product_id = uuid.uuid4()
        yield (
            products,
            {
                "id": product_id,
                "sku": f"SKU-{uuid.uuid4().hex[:16]}",  # 64 random bits: no repeat among 1M
                "name": name,
                "name_folded": name.casefold(),
                "description": None,
                "price": Decimal("12.50"),
                "currency": "USD",
                "created_at": EPOCH + timedelta(seconds=number),
            },
        )
        yield stock, {"product_id": product_id, "available": 10, "reserved": 0}


def bench_products(shop: Shop, sizes: list[int]) -> None:
    database = shop.databases["product"]
    products: Table = ProductRow.__table__  # type: ignore[assignment]
    for size in sizes:
        seconds = grow(database, products, size, product_rows)
        settle(database, products, StockRow.__table__)  # type: ignore[arg-type]
        print(f"  loaded {size:,} products in {seconds:.1f} s", flush=True)
        with database.engine.connect() as connection:
            middle = connection.scalar(select(products.c.sku).order_by(products.c.sku).offset(size // 2).limit(1))
        rare = json_of(shop.client.get(f"{API}/products", query_string={"q": RARE}))
        assert len(rare["items"]) == 3, rare
        requests: dict[str, dict[str, Any]] = {
            "listing, first page": {},
            "listing, middle page": {"cursor": encode_cursor(ProductCursor(sku=middle))},
            f"q={RARE} (3 rows)": {"q": RARE},
            f"q={MEDIUM} (0.1%)": {"q": MEDIUM},
            f"q={FREQUENT} (50%)": {"q": FREQUENT},
            f"q={SHORT} (2 chars, 50%)": {"q": SHORT},
        }
        for what, query in requests.items():
            shop.measure("products", what, size, f"{API}/products", query_string=query)


# --- audit log ---------------------------------------------------------------------------


AUDIT_TYPES = ("order.OrderPlaced", "order.OrderPlaced", "order.OrderPlaced", "user.UserRegistered")


def audit_rows(entity: uuid.UUID) -> Callable[[int, int], Iterator[tuple[Table, dict[str, Any]]]]:
    """Entries ``first..stop``: placed orders and registrations, every 1,000th a cancellation of ``entity``."""
    entries: Table = AuditEntryRow.__table__  # type: ignore[assignment]

    def rows(first: int, stop: int) -> Iterator[tuple[Table, dict[str, Any]]]:
        for number in range(first, stop):
            rare = number % 1000 == 3
            event_type = "order.OrderCancelled" if rare else AUDIT_TYPES[number % len(AUDIT_TYPES)]
            yield (
                entries,
                {
                    "id": uuid.uuid4(),
                    "event_id": uuid.uuid4(),
                    "event_type": event_type,
                    "entity_type": event_type.split(".")[0],
                    "entity_id": entity if rare else uuid.uuid4(),
                    "actor_id": None,
                    "summary": f"bench entry {number}",
                    "data": {"number": number},
                    "recorded_at": EPOCH + timedelta(seconds=number),
                },
            )

    return rows


def bench_audit(shop: Shop, sizes: list[int]) -> None:
    database = shop.databases["audit"]
    entries: Table = AuditEntryRow.__table__  # type: ignore[assignment]
    _, admin = shop.register(Role.ADMIN)
    entity = uuid.uuid4()
    rows = audit_rows(entity)
    for size in sizes:
        seconds = grow(database, entries, size, rows)
        settle(database, entries)
        print(f"  loaded {size:,} audit entries in {seconds:.1f} s", flush=True)
        with database.engine.connect() as connection:
            last = int(connection.scalar(select(func.max(entries.c.position))) or 0)
        requests: dict[str, dict[str, Any]] = {
            "first page": {},
            "middle page": {"cursor": encode_cursor(AuditCursor(position=last // 2))},
            "event_type=order.OrderCancelled": {"event_type": "order.OrderCancelled"},
            "entity_id (0.1%)": {"entity_id": str(entity)},
        }
        for what, query in requests.items():
            shop.measure("audit", what, size, f"{API}/audit-log", headers=admin, query_string=query)


# --- recommendations ---------------------------------------------------------------------


def recommendation_rows(
    pairs: int, ordinary: uuid.UUID, fan: uuid.UUID, product_ids: list[uuid.UUID]
) -> Iterator[tuple[Table, dict[str, Any]]]:
    """``pairs`` co-purchase rows (both directions) over ``product_ids``: the first product, the
    best seller, has a tenth of them, the others ~20 partners each; ``ordinary`` bought products
    1–5, ``fan`` the best seller and products 1–4."""
    chance = random.Random(pairs)
    pair_table: Table = PairRow.__table__  # type: ignore[assignment]
    best, rest = product_ids[0], product_ids[1:]
    seen: set[tuple[uuid.UUID, uuid.UUID]] = set()
    wanted_from_best = min(len(rest), pairs // 20)
    candidates = itertools.chain(
        ((best, other) for other in rest[:wanted_from_best]),
        ((chance.choice(rest), chance.choice(rest)) for _ in itertools.count()),
    )
    for one, other in candidates:
        if len(seen) >= pairs:
            break
        if one == other or (one, other) in seen:
            continue
        seen.update({(one, other), (other, one)})
        times = chance.randint(1, 50)
        yield pair_table, {"product_id": one, "other_product_id": other, "count": times}
        yield pair_table, {"product_id": other, "other_product_id": one, "count": times}
    for product_id in product_ids:
        yield PopularityRow.__table__, {"product_id": product_id, "orders": chance.randint(1, 500)}  # type: ignore[misc]
    for user_id, bought in ((ordinary, product_ids[1:6]), (fan, product_ids[0:5])):
        yield ProfileRow.__table__, {"user_id": user_id, "created_at": EPOCH}  # type: ignore[misc]
        for product_id in bought:
            yield PurchaseRow.__table__, {"user_id": user_id, "product_id": product_id, "units": 1, "orders": 1}  # type: ignore[misc]


def bench_recommendations(shop: Shop, sizes: list[int]) -> None:
    products: Table = ProductRow.__table__  # type: ignore[assignment]
    for pairs in sizes:
        # A shop of its own per size: pairs, popularity and profiles are written together.
        with shop_on(shop.backend, shop.postgres_url, shop.runs, shop.results, shop.explain_at) as fresh:
            ordinary, ordinary_headers = fresh.register()
            fan, fan_headers = fresh.register()
            product_count = max(60, pairs // 20)
            load(fresh.databases["product"], product_rows(0, product_count))
            with fresh.databases["product"].engine.connect() as connection:
                catalog = list(connection.scalars(select(products.c.id).order_by(products.c.created_at)))
            started = time.perf_counter()
            load(fresh.databases["recommendation"], recommendation_rows(pairs, ordinary, fan, catalog))
            settle(fresh.databases["recommendation"], PairRow.__table__, PopularityRow.__table__, PurchaseRow.__table__)  # type: ignore[arg-type]
            print(f"  loaded {pairs:,} pairs over {product_count:,} products in {time.perf_counter() - started:.1f} s")
            for what, headers in (
                ("5 ordinary products bought", ordinary_headers),
                ("best seller bought too", fan_headers),
            ):
                picks = json_of(fresh.client.get(f"{API}/users/me/recommendations", headers=headers))
                assert len(picks["items"]) == 10, picks
                fresh.measure("recommendations", what, pairs, f"{API}/users/me/recommendations", headers=headers)


# --- main --------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Shop, list[int]], None]] = {
    "orders": bench_orders,
    "products": bench_products,
    "audit": bench_audit,
    "recommendations": bench_recommendations,
    "admin_orders": bench_admin_orders,
    "admin_users": bench_admin_users,
}
DEFAULT_SIZES = {
    "orders": [1_000, 100_000, 1_000_000],
    "products": [1_000, 100_000, 1_000_000],
    "audit": [1_000, 1_000_000],
    "recommendations": [1_000, 100_000],
    "admin_orders": [1_000, 100_000, 1_000_000],
    "admin_users": [1_000, 100_000, 1_000_000],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", default=os.environ.get("SHOP_TEST_POSTGRES_URL"))
    parser.add_argument("--scenario", nargs="+", choices=tuple(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--sizes", nargs="+", type=int, help="override every scenario's sizes")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--explain", action="store_true", help="print the query plans of the requests timed at the largest size"
    )
    args = parser.parse_args()

    results = Results()
    for backend in args.backend:
        for scenario in args.scenario:
            print(f"{backend}: {scenario}", flush=True)
            sizes = args.sizes or DEFAULT_SIZES[scenario]
            with shop_on(backend, args.postgres, args.runs, results, max(sizes) if args.explain else None) as shop:
                SCENARIOS[scenario](shop, sizes)
    print()
    print(results.table())


if __name__ == "__main__":
    main()
