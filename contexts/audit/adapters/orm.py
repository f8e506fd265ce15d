"""The audit context's tables: the log itself, and the inbox that keeps it free of repeats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from infrastructure.db.types import UtcDateTime, context_metadata
from infrastructure.events.tables import Position, inbox_table


class AuditBase(DeclarativeBase):
    metadata = context_metadata()


INBOX = inbox_table(AuditBase.metadata, "audit")


class AuditEntryRow(AuditBase):
    """One entry; ``position`` numbers them in the order they were appended (the keyset of pages)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_event_type_position", "event_type", "position"),
        Index("ix_audit_entries_entity_id_position", "entity_id", "position"),
    )

    position: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
