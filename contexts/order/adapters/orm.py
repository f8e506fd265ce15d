"""The order context's tables: orders, their lines, and idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from infrastructure.db.types import Money, UtcDateTime, context_metadata
from infrastructure.events.tables import outbox_tables


class OrderBase(DeclarativeBase):
    metadata = context_metadata()


OUTBOX = outbox_tables(OrderBase.metadata, "order")


class OrderRow(OrderBase):
    __tablename__ = "order_orders"
    __table_args__ = (
        Index("ix_order_orders_user_newest", "user_id", "created_at", "id"),
        # The administrators' listing: all orders, or those of one status, newest first.
        Index("ix_order_orders_newest", "created_at", "id"),
        Index("ix_order_orders_status_newest", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lines: Mapped[list[OrderLineRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="OrderLineRow.position"
    )


class OrderLineRow(OrderBase):
    __tablename__ = "order_order_lines"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_orders.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    quantity: Mapped[int] = mapped_column(Integer)


class IdempotencyKeyRow(OrderBase):
    """A client's Idempotency-Key: in flight until ``locked_until``, or completed with its order."""

    __tablename__ = "order_idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    locked_until: Mapped[datetime] = mapped_column(UtcDateTime)
    order_snapshot: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
