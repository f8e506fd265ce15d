"""The wishlist context's tables: its wishlists, and the inbox that keeps them free of repeats."""

from __future__ import annotations

import uuid

from sqlalchemy import String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import inbox_table


class WishlistBase(DeclarativeBase):
    metadata = context_metadata()


INBOX = inbox_table(WishlistBase.metadata, "wishlist")


class WishlistRow(WishlistBase):
    __tablename__ = "wishlist_wishlists"

    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
