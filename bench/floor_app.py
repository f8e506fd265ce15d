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

With ``FLOOR_DELIVER=1`` it is the *guarded* floor: what the shop's guarantees cost a bare app.
One background thread per worker claims the outbox rows (a batch at a time, with a lease, ``SKIP
LOCKED`` on PostgreSQL) and delivers each order's event to the four effects the shop's
subscribers have: the order confirmed, a confirmation mail (an ``.eml`` file written aside,
fsynced and renamed, then its record), an audit entry, the products' purchase counts upserted.
Each effect is its own transaction, committed with an inbox row unique on (subscriber, event
id), so a redelivered event changes nothing twice; the mail is checked against the inbox before
it is written, as the shop's is. The outbox row is marked delivered once all four are done; a
failure leaves it to be claimed again when its lease ends. All in the floor's one database: a
lower bound for any app that keeps these guarantees.

Its own tables (created at start) live in a SQLite file (WAL, busy timeout, write transactions
``BEGIN IMMEDIATE`` queued on a lock per process, as ``infrastructure/db/database.py`` does) or in a
PostgreSQL schema (psycopg 3, a QueuePool sized like one of the shop's pools). Served by
gunicorn's gthread workers, with the shop's gunicorn options. Configured by environment variables:

    FLOOR_DATABASE_URL      sqlite:///path/floor.db or postgresql://...  (required)
    FLOOR_DATABASE_SCHEMA   the PostgreSQL schema (default: floor)
    TOKEN_SECRET            the HMAC key the shop signs its tokens with (required)
    DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW   the pool (default 5, 10; compare.py sizes it to the threads)
    FLOOR_DELIVER           1: deliver the outbox as described above (default 0)
    FLOOR_DELIVER_THREADS   delivery threads per worker (default 1)
    FLOOR_MAIL_DIR          where the confirmation mails are written (required with FLOOR_DELIVER=1)

    .venv/bin/python bench/floor_app.py --port 8001 --workers 2 --threads 4
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from pathlib import Path
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
    bindparam,
    create_engine,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

# The shop's token rules (infrastructure/auth/tokens.py): HS256 only, these claims required, its issuer.
ALGORITHM = "HS256"
ISSUER = "modular-shop"
REQUIRED_CLAIMS = ["sub", "role", "exp", "nbf", "iat", "iss"]
LEEWAY = timedelta(seconds=5)
SQLITE_BUSY_TIMEOUT_MS = 10_000
MAX_LINES = 50
MAX_QUANTITY = 1000
DELIVERY_BATCH = 32  # outbox rows claimed at a time by a worker's delivery thread
DELIVERY_LEASE = timedelta(seconds=60)  # a claim not completed by then is taken again
DELIVERY_IDLE_WAIT_S = 0.2  # the other worker's orders do not wake this one's thread
SENDER = "floor <floor@example.com>"

logger = logging.getLogger("floor")

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
    # Used by the guarded floor only (FLOOR_DELIVER=1); the plain floor leaves them NULL.
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
)
# The guarded floor's own tables: the customers its mails go to, the inbox, the four effects.
customers = Table(
    "customers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
)
inbox = Table(
    "inbox",
    metadata,
    Column("subscriber", String(64), primary_key=True),
    Column("event_id", String(36), primary_key=True),
)
sent_mails = Table(
    "sent_mails",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("to_address", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)
audit_log = Table(
    "audit_log",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("aggregate_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
)
purchase_counts = Table(
    "purchase_counts",
    metadata,
    Column("product_id", String(36), primary_key=True),
    Column("purchases", BigInteger, nullable=False),
)


@dataclass(frozen=True)
class FloorConfig:
    database_url: str
    schema: str
    token_secret: str
    pool_size: int = 5
    max_overflow: int = 10
    deliver: bool = False
    deliver_threads: int = 1
    mail_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> FloorConfig:
        """Read from the environment, so gunicorn's workers see what the master was given."""
        return cls(
            database_url=environ["FLOOR_DATABASE_URL"],
            schema=environ.get("FLOOR_DATABASE_SCHEMA", "floor"),
            token_secret=environ["TOKEN_SECRET"],
            pool_size=int(environ.get("DATABASE_POOL_SIZE", "5")),
            max_overflow=int(environ.get("DATABASE_MAX_OVERFLOW", "10")),
            deliver=environ.get("FLOOR_DELIVER", "0") == "1",
            deliver_threads=int(environ.get("FLOOR_DELIVER_THREADS", "1")),
            mail_dir=Path(environ["FLOOR_MAIL_DIR"]) if environ.get("FLOOR_MAIL_DIR") else None,
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
        if config.deliver:  # the claim's index; the plain floor's inserts do not pay for it
            connection.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (position) WHERE delivered_at IS NULL"
            )
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


@dataclass(frozen=True)
class SeedCustomer:
    id: str
    email: str
    name: str


def seed(config: FloorConfig, items: list[SeedProduct], buyers: Sequence[SeedCustomer] = ()) -> None:
    """Load the products the benchmark orders and the customers the guarded floor mails (the
    floor has no endpoint to create them)."""
    engines = make_engines(config)
    with engines.writer.begin() as connection:
        if buyers:
            connection.execute(insert(customers), [{"id": b.id, "email": b.email, "name": b.name} for b in buyers])
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


# --- the guarded floor's deliveries ---------------------------------------------------------


class Deliverer:
    """Delivers the outbox to the four effects, each exactly once through the inbox (see the
    module's docstring). One per worker, on its threads (one by default; more overlap the waits
    for PostgreSQL's answers, their claims skipping each other's rows); ``wake`` is set by the
    worker's requests after each commit."""

    def __init__(self, engines: Engines, mail_dir: Path) -> None:
        self.engines = engines
        self.mail_dir = mail_dir
        self.wake = threading.Event()
        dialect_insert = postgresql.insert if engines.writer.dialect.name == "postgresql" else sqlite.insert
        self._record = dialect_insert(inbox).on_conflict_do_nothing()
        pending = (
            select(outbox.c.position)
            .where(
                outbox.c.delivered_at.is_(None),
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < bindparam("now")),
            )
            .order_by(outbox.c.position)
            .limit(DELIVERY_BATCH)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE serialises claims
        )
        self._claim = (
            update(outbox)
            .where(outbox.c.position.in_(pending.scalar_subquery()))
            .values(claimed_until=bindparam("until"))
            .returning(outbox.c.position, outbox.c.envelope)
        )
        self._complete = (
            update(outbox)
            .where(outbox.c.position.in_(bindparam("done", expanding=True)))
            .values(delivered_at=bindparam("now"))
        )
        self._handled = select(inbox.c.event_id).where(
            inbox.c.subscriber == bindparam("subscriber"), inbox.c.event_id == bindparam("event_id")
        )
        self._log, self._sent = insert(audit_log), insert(sent_mails)
        self._recipient = select(customers.c.email, customers.c.name).where(customers.c.id == bindparam("id"))
        self._confirm = (
            update(orders)
            .where(orders.c.id == bindparam("order_id"), orders.c.status == "placed")
            .values(status="confirmed")
        )
        upsert = dialect_insert(purchase_counts)
        self._count = upsert.on_conflict_do_update(
            index_elements=[purchase_counts.c.product_id],
            set_={"purchases": purchase_counts.c.purchases + upsert.excluded.purchases},
        )
        self._effects: tuple[tuple[str, Callable[[Connection, dict[str, Any]], None]], ...] = (
            ("confirm_order", self._confirm_order),
            ("audit", self._audit),
            ("purchases", self._purchases),
        )

    def start(self, threads: int = 1) -> None:
        for number in range(threads):
            threading.Thread(target=self._run, name=f"floor-deliverer-{number}", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                delivered = self.deliver_once()
            except Exception:  # its claims expire and are taken again; the thread lives on
                logger.exception("delivery failed")
                delivered = 0
            if not delivered:
                self.wake.wait(DELIVERY_IDLE_WAIT_S)

    def deliver_once(self) -> int:
        """Claim a batch, deliver each event to every effect, mark the batch delivered; returns
        how many events were delivered."""
        now = datetime.now(timezone.utc)
        with self.engines.writer_turn, self.engines.writer.begin() as connection:
            claimed = connection.execute(self._claim, {"now": now, "until": now + DELIVERY_LEASE}).all()
        for row in claimed:
            for subscriber, effect in self._effects:
                self._exactly_once(subscriber, row.envelope, effect)
            self._mail_confirmation(row.envelope)
        if claimed:
            done = [row.position for row in claimed]
            with self.engines.writer_turn, self.engines.writer.begin() as connection:
                connection.execute(self._complete, {"done": done, "now": datetime.now(timezone.utc)})
        return len(claimed)

    def _exactly_once(
        self, subscriber: str, envelope: dict[str, Any], effect: Callable[[Connection, dict[str, Any]], None]
    ) -> None:
        """The effect and its inbox row in one transaction; nothing if the row was there already."""
        with self.engines.writer_turn, self.engines.writer.begin() as connection:
            if connection.execute(self._record, {"subscriber": subscriber, "event_id": envelope["id"]}).rowcount:
                effect(connection, envelope)

    def _confirm_order(self, connection: Connection, envelope: dict[str, Any]) -> None:
        connection.execute(self._confirm, {"order_id": envelope["data"]["order_id"]})

    def _audit(self, connection: Connection, envelope: dict[str, Any]) -> None:
        connection.execute(
            self._log,
            {
                "event_id": envelope["id"],
                "event_type": envelope["type"],
                "aggregate_id": envelope["data"]["order_id"],
                "occurred_at": datetime.fromisoformat(envelope["occurred_at"]),
                "data": envelope["data"],
            },
        )

    def _purchases(self, connection: Connection, envelope: dict[str, Any]) -> None:
        lines = envelope["data"]["lines"]
        connection.execute(
            self._count, [{"product_id": line["product_id"], "purchases": line["quantity"]} for line in lines]
        )

    def _mail_confirmation(self, envelope: dict[str, Any]) -> None:
        """Check, write, record, as the shop's mail: sent once, twice only if a crash falls
        between the file and its record."""
        key = {"subscriber": "confirmation_mail", "event_id": envelope["id"]}
        data = envelope["data"]
        with self.engines.reader.connect() as connection:
            if connection.execute(self._handled, key).first() is not None:
                return
            recipient = connection.execute(self._recipient, {"id": data["user_id"]}).one()
        message_id = f"<{envelope['id']}.order-confirmation@floor>"
        subject = f"Your floor order {data['order_id']}"
        text = "\n".join(
            [
                f"Hello {recipient.name},",
                "",
                f"thank you for your order {data['order_id']}. You ordered:",
                *(
                    f"  {item['name']} ({item['sku']}): {item['quantity']} x {item['unit_price']}"
                    f" = {item['line_total']}"
                    for item in data["lines"]
                ),
                f"Total: {data['total']} {data['currency']}",
            ]
        )
        mail = MIMEText(text, "plain", "utf-8")
        mail["From"] = SENDER
        mail["To"] = formataddr((recipient.name, recipient.email))
        mail["Subject"] = subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id
        write_durably(self.mail_dir / f"{envelope['id']}.eml", mail.as_bytes())
        with self.engines.writer_turn, self.engines.writer.begin() as connection:
            if connection.execute(self._record, key).rowcount:
                connection.execute(
                    self._sent,
                    {
                        "message_id": message_id,
                        "event_id": envelope["id"],
                        "to_address": recipient.email,
                        "subject": subject,
                        "sent_at": datetime.now(timezone.utc),
                    },
                )


def write_durably(target: Path, data: bytes) -> None:
    """Written aside, fsynced, renamed over: the file is whole or absent, as the shop's are."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)


def create_app(config: FloorConfig | None = None) -> Flask:
    """The floor app; engines are built here, in each worker after the fork."""
    config = config or FloorConfig.from_env()
    engines = make_engines(config)
    app = Flask(__name__)
    deliverer: Deliverer | None = None
    if config.deliver:
        if config.mail_dir is None:
            raise RuntimeError("FLOOR_DELIVER=1 needs FLOOR_MAIL_DIR")
        config.mail_dir.mkdir(parents=True, exist_ok=True)
        deliverer = Deliverer(engines, config.mail_dir)
        deliverer.start(config.deliver_threads)

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
        if deliverer is not None:
            deliverer.wake.set()
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
