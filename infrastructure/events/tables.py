"""The tables that make a context's events durable, added to that context's own metadata.

Every context that publishes keeps an **outbox** (the events, written in the same transaction
as the change that raised them) and its **deliveries** (one row per event and subscriber,
tracked until that subscriber has finished: Spring Modulith's event publication registry).
Every context whose subscribers change state keeps an **inbox** (which event each subscriber
has already handled), written in the same transaction as the effect.

The column lists are functions so that a migration creates exactly what the metadata
declares; they are version 1 of the schema and change only together with a new migration.

Containers must hand these tables on through ``providers.Object``: dependency-injector
deep-copies plain provider arguments, and a copied ``Table`` is a different, half-working one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from infrastructure.db_types import UtcDateTime

# SQLite numbers rows itself only for an INTEGER PRIMARY KEY; elsewhere a 64-bit identity.
Position = BigInteger().with_variant(Integer(), "sqlite")


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


def delivery_columns_v1(prefix: str) -> list[Column[object] | Index | UniqueConstraint]:
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
        Index(f"ix_{prefix}_deliveries_due", "status", "available_at"),
        Index(f"ix_{prefix}_deliveries_sequence", "subscriber", "aggregate_id", "event_position"),
    ]


def inbox_columns_v1() -> list[Column[object]]:
    return [
        Column("subscriber", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("handled_at", UtcDateTime, nullable=False),
    ]


def outbox_tables(metadata: MetaData, prefix: str) -> OutboxTables:
    return OutboxTables(
        outbox=Table(f"{prefix}_outbox", metadata, *outbox_columns_v1()),
        deliveries=Table(f"{prefix}_deliveries", metadata, *delivery_columns_v1(prefix)),
    )


def inbox_table(metadata: MetaData, prefix: str) -> Table:
    return Table(f"{prefix}_inbox", metadata, *inbox_columns_v1())
