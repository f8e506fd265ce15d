"""The audit log stored with SQLAlchemy. Append-only: rows are inserted and read, never changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from contexts.audit.adapters.orm import AuditEntryRow
from contexts.audit.application.ports import LoggedEntry
from contexts.audit.domain import model
from infrastructure.db.unit_of_work import Stage

_ENTRIES = cast(Table, AuditEntryRow.__table__)
_INSERT_ENTRY = insert(_ENTRIES)  # built once: every event's audit entry runs it


class SqlAlchemyAuditEntryRepository:
    """``stage`` and ``write_staged`` are the unit of work's (see ``SqlAlchemyUnitOfWork.stage``):
    an entry is written once and never read back in the same unit of work, so its INSERT waits
    for the commit, which may send it with the delivery's inbox row as one statement."""

    def __init__(self, session: Session, *, stage: Stage, write_staged: Callable[[], None]) -> None:
        self._session = session
        self._stage = stage
        self._write_staged = write_staged

    def append(self, entry: model.AuditEntry) -> None:
        self._stage(
            _INSERT_ENTRY,
            {
                "id": entry.id,
                "event_id": entry.event_id,
                "event_type": entry.event_type,
                "entity_type": entry.entity_type,
                "entity_id": entry.entity_id,
                "actor_id": entry.actor_id,
                "summary": entry.summary,
                "data": entry.data,
                "recorded_at": entry.recorded_at,
            },
        )

    def list(
        self,
        *,
        limit: int,
        before_position: int | None = None,
        event_type: str | None = None,
        entity_id: uuid.UUID | None = None,
    ) -> list[LoggedEntry]:
        self._write_staged()
        statement = select(AuditEntryRow).order_by(AuditEntryRow.position.desc()).limit(limit)
        if before_position is not None:
            statement = statement.where(AuditEntryRow.position < before_position)
        if event_type is not None:
            statement = statement.where(AuditEntryRow.event_type == event_type)
        if entity_id is not None:
            statement = statement.where(AuditEntryRow.entity_id == entity_id)
        return [LoggedEntry(position=row.position, entry=_entry(row)) for row in self._session.scalars(statement)]


def _entry(row: AuditEntryRow) -> model.AuditEntry:
    return model.AuditEntry(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        entity_type=cast(model.EntityType, row.entity_type),
        entity_id=row.entity_id,
        actor_id=row.actor_id,
        summary=row.summary,
        data=row.data,
        recorded_at=row.recorded_at,
    )
