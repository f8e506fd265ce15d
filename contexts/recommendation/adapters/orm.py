"""The recommendation context's tables: profiles and the purchase counts they are ranked by.

Product and user ids belong to other contexts and are stored by value, never as foreign keys.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infrastructure.db.types import UtcDateTime, context_metadata
from infrastructure.events.tables import inbox_table


class RecommendationBase(DeclarativeBase):
    metadata = context_metadata()


INBOX = inbox_table(RecommendationBase.metadata, "recommendation")


class ProfileRow(RecommendationBase):
    __tablename__ = "recommendation_profiles"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PurchaseRow(RecommendationBase):
    """How much of a product a user bought: units in all, and in how many orders."""

    __tablename__ = "recommendation_purchases"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(BigInteger)


class PopularityRow(RecommendationBase):
    """In how many orders a product appeared."""

    __tablename__ = "recommendation_popularity"

    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)


# The most popular products, in ranking order (orders first, highest first, then id): read
# from the top and stopped at the first few not bought, instead of sorting every product.
Index("ix_recommendation_popularity_ranked", PopularityRow.orders.desc(), PopularityRow.product_id)


class PairRow(RecommendationBase):
    """In how many orders ``product_id`` and ``other_product_id`` appeared together (both ways stored)."""

    __tablename__ = "recommendation_pairs"

    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    other_product_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class CountedOrderRow(RecommendationBase):
    """An order the counts know of, with its lines (below) while they are counted: a cancelled
    order's lines are subtracted again and dropped. A cancellation that arrives before its
    order (events of two deliveries are not ordered across a broker) leaves the order here,
    cancelled and without lines, so that the order is then never counted."""

    __tablename__ = "recommendation_orders"

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    cancelled: Mapped[bool] = mapped_column(Boolean)


class CountedOrderLineRow(RecommendationBase):
    __tablename__ = "recommendation_order_lines"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recommendation_orders.order_id"), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
