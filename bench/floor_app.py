"""The floor: the least a competent bare Flask + SQLAlchemy app does for the shop's two hot requests.

``bench/compare.py`` measures the shop against this app in the same run, so the shop's cost is
read as a multiple of what the job itself costs on this machine, at this moment. The floor does
the same work as the shop, minus everything the shop adds on top (contexts, published
interfaces, dependency injection, unit of work, reservations, problem details, logging ...):

- ``GET /api/v1/products/<id>``: one SELECT of product and stock, JSON shaped like the shop's;
- ``POST /api/v1/orders``: bearer JWT verified with PyJWT (HS256, the shop's secret, issuer and
  required claims), the body validated with pydantic, then ONE transaction in ONE database:
  prices read, a conditional ``UPDATE stock ... WHERE available >= qty`` per line, the order,
  its lines and one outbox row (the shop's event envelope, as JSON), commit, 201 with a body
  shaped like the shop's order.

Its own tables (created at start) live in a SQLite file (WAL, busy timeout, write transactions
``BEGIN IMMEDIATE`` queued on a lock per process, as ``infrastructure/db.py`` does) or in a
PostgreSQL schema (psycopg 3, a QueuePool sized like one of the shop's pools). Served by
gunicorn's gthread workers, with the shop's gunicorn options. Configured by environment variables:

    FLOOR_DATABASE_URL      sqlite:///path/floor.db or postgresql://...  (required)
    FLOOR_DATABASE_SCHEMA   the PostgreSQL schema (default: floor)
    TOKEN_SECRET            the HMAC key the shop signs its tokens with (required)
    DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW   as the shop's settings (default 5, 10)

    .venv/bin/python bench/floor_app.py --port 8001 --workers 2 --threads 4
"""

from __future__ import annotations

import argparse
import os
import threading
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import jwt
from flask import Flask, Response, jsonify, request
from gunicorn.app.base import BaseApplication
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url

# The shop's token rules (infrastructure/auth.py): HS256 only, these claims required, its issuer.
ALGORITHM = "HS256"
ISSUER = "modular-shop"
REQUIRED_CLAIMS = ["sub", "role", "exp", "nbf", "iat", "iss"]
LEEWAY = timedelta(seconds=5)
SQLITE_BUSY_TIMEOUT_MS = 10_000
MAX_LINES = 50
MAX_QUANTITY = 1000

metadata = MetaData()
products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("price_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
)
stock = Table(
    "stock",
    metadata,
    Column("product_id", String(36), ForeignKey("products.id"), primary_key=True),
    Column("available", BigInteger, nullable=False),
)
orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(36), ForeignKey("orders.id"), primary_key=True),
    Column("product_id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
)
outbox = Table(
    "outbox",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(100), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("envelope", JSON, nullable=False),
)


@dataclass(frozen=True)
class FloorConfig:
    database_url: str
    schema: str
    token_secret: str
    pool_size: int = 5
    max_overflow: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FloorConfig:
        """Read from the environment, so gunicorn's workers see what the master was given."""
        return cls(
            database_url=environ["FLOOR_DATABASE_URL"],
            schema=environ.get("FLOOR_DATABASE_SCHEMA", "floor"),
            token_secret=environ["TOKEN_SECRET"],
            pool_size=int(environ.get("DATABASE_POOL_SIZE", "5")),
            max_overflow=int(environ.get("DATABASE_MAX_OVERFLOW", "10")),
        )


@dataclass(frozen=True)
class Engines:
    """Readers run deferred transactions; writers lock up front on SQLite and queue for their turn
    on a lock of the process, as the shop's do (without it SQLite's busy handler makes waiting
    writers sleep and poll, and the tail latency is the busy handler's)."""

    reader: Engine
    writer: Engine
    writer_turn: AbstractContextManager[Any] = field(default_factory=nullcontext)


def make_engines(config: FloorConfig) -> Engines:
    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        _configure_sqlite(engine)
        writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        return Engines(reader=engine, writer=writer, writer_turn=threading.Lock())
    engine = create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        # search_path set by the server at connect time: no extra round trip per checkout.
        connect_args={"options": f"-csearch_path={config.schema}"},
    )
    return Engines(reader=engine, writer=engine)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and explicit BEGINs: the shop's SQLite setup, so neither side is favoured."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(f"BEGIN {connection.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


def init_db(config: FloorConfig) -> None:
    """Create the schema (PostgreSQL) and the tables if missing; run once, before the workers fork."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite":
        admin = create_engine(url.set(drivername="postgresql+psycopg"))
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{config.schema}"')
        admin.dispose()
    engines = make_engines(config)
    with engines.writer.begin() as connection:
        metadata.create_all(connection)
    engines.reader.dispose()


@dataclass(frozen=True)
class SeedProduct:
    id: str
    sku: str
    name: str
    description: str | None
    price: str  # "12.50"
    currency: str
    stock: int


def seed(config: FloorConfig, items: list[SeedProduct]) -> None:
    """Load the products the benchmark orders (the floor has no endpoint to create them)."""
    engines = make_engines(config)
    with engines.writer.begin() as connection:
        connection.execute(
            insert(products),
            [
                {
                    "id": item.id,
                    "sku": item.sku,
                    "name": item.name,
                    "description": item.description,
                    "price_cents": to_cents(item.price),
                    "currency": item.currency,
                }
                for item in items
            ],
        )
        connection.execute(insert(stock), [{"product_id": item.id, "available": item.stock} for item in items])
    engines.reader.dispose()


def to_cents(price: str) -> int:
    units, _, fraction = price.partition(".")
    return int(units) * 100 + int(fraction.ljust(2, "0")[:2])


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def rfc3339(moment: datetime) -> str:
    """Pydantic's JSON form of an aware UTC datetime, which the shop's responses use."""
    return moment.isoformat().replace("+00:00", "Z")


# --- requests ------------------------------------------------------------------------------


class Item(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class NewOrder(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    items: Annotated[list[Item], Field(min_length=1, max_length=MAX_LINES)]


class Refused(Exception):
    """A request the floor answers with a problem response; raised inside the transaction to roll it back."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def problem(status: int, detail: str) -> Response:
    response = jsonify({"type": "about:blank", "title": detail, "status": status, "detail": detail})
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def caller_id(secret: str) -> str:
    """The verified token's subject, as the shop checks it (signature, issuer, required claims)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "a bearer token is required")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": REQUIRED_CLAIMS}, leeway=LEEWAY
        )
        return str(uuid.UUID(claims["sub"]))
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise Refused(401, "invalid token") from error


def merged_quantities(body: NewOrder) -> dict[str, int]:
    """Lines for one product are merged, as the shop does, so one UPDATE per product."""
    wanted: dict[str, int] = {}
    for item in body.items:
        key = str(item.product_id)
        wanted[key] = wanted.get(key, 0) + item.quantity
        if wanted[key] > MAX_QUANTITY:
            raise Refused(400, f"the quantity of product {key} must be 1 to {MAX_QUANTITY} in all")
    return wanted


def place_order(engines: Engines, user_id: str, wanted: dict[str, int]) -> dict[str, Any]:
    """Read prices, take the stock, write order + lines + one outbox row: one transaction."""
    order_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    with engines.writer_turn, engines.writer.begin() as connection:
        rows = connection.execute(
            select(products.c.id, products.c.sku, products.c.name, products.c.price_cents, products.c.currency)
            .where(products.c.id.in_(wanted))
            .order_by(products.c.id)  # one locking order on PostgreSQL: no deadlocks between orders
        ).all()
        if len(rows) != len(wanted):
            raise Refused(400, "unknown products")
        if len({row.currency for row in rows}) != 1:
            raise Refused(400, "an order's lines must share one currency")
        for row in rows:
            taken = connection.execute(
                update(stock)
                .where(stock.c.product_id == row.id, stock.c.available >= wanted[row.id])
                .values(available=stock.c.available - wanted[row.id])
            )
            if taken.rowcount != 1:
                raise Refused(409, f"not enough stock for product {row.id}")
        lines = [
            {
                "product_id": row.id,
                "sku": row.sku,
                "name": row.name,
                "unit_price": money(row.price_cents),
                "quantity": wanted[row.id],
                "line_total": money(row.price_cents * wanted[row.id]),
            }
            for row in rows
        ]
        total = money(sum(row.price_cents * wanted[row.id] for row in rows))
        currency = rows[0].currency
        connection.execute(
            insert(orders).values(
                id=order_id,
                user_id=user_id,
                status="placed",
                total_cents=to_cents(total),
                currency=currency,
                created_at=now,
            )
        )
        connection.execute(
            insert(order_lines),
            [
                {
                    "order_id": order_id,
                    "product_id": row.id,
                    "sku": row.sku,
                    "name": row.name,
                    "unit_price_cents": row.price_cents,
                    "quantity": wanted[row.id],
                }
                for row in rows
            ],
        )
        event_id = str(uuid.uuid4())
        envelope = {
            "id": event_id,
            "type": "order.OrderPlaced",
            "version": 1,
            "occurred_at": rfc3339(now),
            "data": {"order_id": order_id, "user_id": user_id, "lines": lines, "total": total, "currency": currency},
            "trace": {},
        }
        connection.execute(
            insert(outbox).values(
                event_id=event_id,
                event_type="order.OrderPlaced",
                aggregate_id=order_id,
                occurred_at=now,
                envelope=envelope,
            )
        )
    return {
        "id": order_id,
        "user_id": user_id,
        "status": "placed",
        "items": lines,
        "total": total,
        "currency": currency,
        "created_at": rfc3339(now),
    }


def create_app(config: FloorConfig | None = None) -> Flask:
    """The floor app; engines are built here, in each worker after the fork."""
    config = config or FloorConfig.from_env()
    engines = make_engines(config)
    app = Flask(__name__)

    @app.errorhandler(Refused)
    def _refused(error: Refused) -> Response:
        return problem(error.status, error.detail)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/products/<product_id>")
    def get_product(product_id: str) -> dict[str, Any]:
        try:
            key = str(uuid.UUID(product_id))
        except ValueError as error:
            raise Refused(404, "no such product") from error
        with engines.reader.connect() as connection:
            row = connection.execute(
                select(products, stock.c.available)
                .join(stock, stock.c.product_id == products.c.id)
                .where(products.c.id == key)
            ).first()
        if row is None:
            raise Refused(404, "no such product")
        return {
            "id": row.id,
            "sku": row.sku,
            "name": row.name,
            "description": row.description,
            "price": money(row.price_cents),
            "currency": row.currency,
            "stock": row.available,
        }

    @app.post("/api/v1/orders")
    def post_order() -> tuple[dict[str, Any], int, dict[str, str]]:
        user_id = caller_id(config.token_secret)
        try:
            body = NewOrder.model_validate_json(request.get_data())
        except ValidationError as error:
            raise Refused(400, f"invalid order: {error.error_count()} error(s)") from error
        order = place_order(engines, user_id, merged_quantities(body))
        return order, 201, {"Location": f"/api/v1/orders/{order['id']}"}

    return app


# --- serving -------------------------------------------------------------------------------


class FloorServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn with the options ``app/production.py`` gives the shop (gthread, same timeouts)."""

    def __init__(self, *, host: str, port: int, workers: int, threads: int) -> None:
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 30,
            "keepalive": 5,
            "proc_name": "floor-app",
            "control_socket_disable": True,
            "loglevel": "warning",
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args()
    init_db(FloorConfig.from_env())
    FloorServer(host=options.host, port=options.port, workers=options.workers, threads=options.threads).run()


if __name__ == "__main__":
    main()
