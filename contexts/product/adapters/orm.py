"""The product context's tables: catalog, stock levels, their ledger, and reservations."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from infrastructure.db.types import Money, UtcDateTime, context_metadata
from infrastructure.events.tables import inbox_table, outbox_tables


class ProductBase(DeclarativeBase):
    metadata = context_metadata()


OUTBOX = outbox_tables(ProductBase.metadata, "product")
INBOX = inbox_table(ProductBase.metadata, "product")


class ProductRow(ProductBase):
    __tablename__ = "product_products"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # The name case-folded by Python: databases' lower() knows only ASCII (SQLite) or a collation.
    name_folded: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# A sku is unique whatever its case: MUG-1 and mug-1 would be one product to a person.
Index("uq_product_products_sku_lower", func.lower(ProductRow.sku), unique=True)


class StockRow(ProductBase):
    """Units ``available`` to order now, and units ``reserved`` by live reservations."""

    __tablename__ = "product_stock"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_products.id"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)


class StockAdjustmentRow(ProductBase):
    __tablename__ = "product_stock_adjustments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_products.id"), index=True)
    delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReservationRow(ProductBase):
    __tablename__ = "product_reservations"
    # The expiry sweep looks for old reservations still in status "reserved".
    __table_args__ = (Index("ix_product_reservations_status_created_at", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lines: Mapped[list[ReservationLineRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ReservationLineRow.product_id"
    )


class ReservationLineRow(ProductBase):
    __tablename__ = "product_reservation_lines"

    reservation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_reservations.id"), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("product_products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
