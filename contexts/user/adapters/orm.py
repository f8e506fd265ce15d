"""The user context's tables. Its own ``MetaData``: nothing here can reference another context."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infrastructure.db.types import UtcDateTime, context_metadata
from infrastructure.events.tables import outbox_tables


class UserBase(DeclarativeBase):
    metadata = context_metadata()


OUTBOX = outbox_tables(UserBase.metadata, "user")


class UserRow(UserBase):
    __tablename__ = "user_users"
    # The administrators' listing by email key, of one role.
    __table_args__ = (Index("ix_user_users_role_key", "role", "email_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # Compared by code point on PostgreSQL too, so that a prefix is a range of the index.
    email_key: Mapped[str] = mapped_column(
        String(320).with_variant(String(320, collation="C"), "postgresql"), unique=True
    )
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
