"""The notification context's tables: whom it can write to, what it sent, which events it handled."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infrastructure.db.types import UtcDateTime, context_metadata
from infrastructure.events.tables import inbox_table


class NotificationBase(DeclarativeBase):
    metadata = context_metadata()


INBOX = inbox_table(NotificationBase.metadata, "notification")


class RecipientRow(NotificationBase):
    """A copy of the user context's facts, by value: no reference crosses the boundary."""

    __tablename__ = "notification_recipients"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SentMailRow(NotificationBase):
    __tablename__ = "notification_sent_mail"

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime)
