"""The tables that make a context's events durable, added to that context's own metadata.

Every context that publishes keeps an **outbox** (the events, written in the same transaction
as the change that raised them) and its **deliveries** (one row per event and subscriber,
tracked until that subscriber has finished: Spring Modulith's event publication registry).
Every context whose subscribers change state keeps an **inbox** (which event each subscriber
has already handled), written in the same transaction as the effect.

The column and index lists are functions so that a migration creates exactly what the
metadata declares; each is one version of the schema and changes only with a new migration.
Version 2 replaced the deliveries' two full indexes with partial ones over the deliveries not
done yet: completed deliveries pile up until pruned (a million is a few days of a busy shop),
and neither the dispatcher's claim nor ``shop events status`` should walk them.

Containers must hand these tables on through ``providers.Object``: dependency-injector
deep-copies plain provider arguments, and a copied ``Table`` is a different, half-working one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    literal_column,
    text,
)

from infrastructure.db.types import UtcDateTime

# SQLite numbers rows itself only for an INTEGER PRIMARY KEY; elsewhere a 64-bit identity.
Position = BigInteger().with_variant(Integer(), "sqlite")

# A delivery's status: due or waiting for a retry (pending), finished (done), attempts used up (dead).
PENDING = "pending"
DONE = "done"
DEAD = "dead"
LATEST_VERSION = 2


@dataclass(frozen=True)
class OutboxTables:
    outbox: Table
    deliveries: Table


def outbox_columns_v1() -> list[Column[object] | Index]:
    return [
        Column("position", Position, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("envelope", JSON, nullable=False),
    ]


def delivery_columns_v1(prefix: str) -> list[Column[object] | UniqueConstraint]:
    return [
        Column("id", Uuid, primary_key=True),
        Column("event_position", Position, ForeignKey(f"{prefix}_outbox.position"), nullable=False),
        Column("subscriber", String(100), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("available_at", UtcDateTime, nullable=False),
        Column("claimed_until", UtcDateTime, nullable=True),
        # The dispatcher ("host:pid:id") holding the claim; on a done delivery, the one that did it.
        Column("claimed_by", String(64), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("completed_at", UtcDateTime, nullable=True),
        UniqueConstraint("event_position", "subscriber"),
    ]


def delivery_indexes_v1(prefix: str) -> list[Index]:
    """Version 1: over every delivery ever made, done ones included."""
    return [
        Index(f"ix_{prefix}_deliveries_due", "status", "available_at"),
        Index(f"ix_{prefix}_deliveries_sequence", "subscriber", "aggregate_id", "event_position"),
    ]


def delivery_indexes_v2(prefix: str) -> list[Index]:
    """Version 2: only over deliveries not done, so they stay as small as the backlog.

    ``pending`` lists pending deliveries oldest event first: a claim reads it in order and stops
    after its limit. ``incomplete`` finds, per subscriber and aggregate, the earlier deliveries
    that hold a later one back, and serves ``shop events status`` and the dead letters. A query
    uses one only if its WHERE repeats the index's condition (SQLite matches it term by term).
    """
    return [
        Index(f"ix_{prefix}_deliveries_pending", "event_position", **_where(f"status = '{PENDING}'")),
        Index(
            f"ix_{prefix}_deliveries_incomplete",
            "subscriber",
            "aggregate_id",
            "event_position",
            **_where(f"status != '{DONE}'"),
        ),
    ]


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, for both backends that have them."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


def literal_status(status: str) -> ColumnElement[str]:
    """A status written into the SQL rather than bound: the partial indexes above serve a query
    only when its WHERE repeats their condition, and PostgreSQL cannot tell that a parameter of
    a prepared statement's generic plan does."""
    return literal_column(f"'{status}'", String(16))


def inbox_columns_v1() -> list[Column[object]]:
    return [
        Column("subscriber", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("handled_at", UtcDateTime, nullable=False),
    ]


def outbox_tables(metadata: MetaData, prefix: str, *, version: int = LATEST_VERSION) -> OutboxTables:
    """The tables as of schema ``version``: the latest for the app, an older one for the
    migration that created it."""
    indexes = {1: delivery_indexes_v1, 2: delivery_indexes_v2}[version](prefix)
    return OutboxTables(
        outbox=Table(f"{prefix}_outbox", metadata, *outbox_columns_v1()),
        deliveries=Table(f"{prefix}_deliveries", metadata, *delivery_columns_v1(prefix), *indexes),
    )


def inbox_table(metadata: MetaData, prefix: str) -> Table:
    return Table(f"{prefix}_inbox", metadata, *inbox_columns_v1())
