"""The audit log's use cases: recording an entry per delivered fact, and reading pages of
entries, newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from contexts.audit.application.ports import UnitOfWorkFactory
from contexts.audit.domain import model
from infrastructure.events.delivery import Delivery


@dataclass(frozen=True)
class RecordEntry:
    """What to log about one event: which entity it is about, who acted, and its data as the
    event's envelope carries it, so the entry reads like the event on the wire."""

    event_type: str
    entity_type: model.EntityType
    entity_id: uuid.UUID
    actor_id: uuid.UUID | None
    summary: str
    data: dict[str, Any]


class RecordEntryHandler:
    """Append one entry in one write unit of work, made for the delivery of the event it
    records: its commit also records the delivery in the audit inbox, so a redelivered event
    changes nothing. Every entry is the record of a delivered event (its id is the entry's
    ``event_id``), hence the delivery is required."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: RecordEntry, *, delivery: Delivery) -> None:
        with self._uow(delivery=delivery) as unit:
            unit.entries.append(
                model.AuditEntry(
                    id=uuid.uuid4(),
                    event_id=delivery.event_id,
                    event_type=command.event_type,
                    entity_type=command.entity_type,
                    entity_id=command.entity_id,
                    actor_id=command.actor_id,
                    summary=command.summary,
                    data=command.data,
                    recorded_at=datetime.now(timezone.utc),
                )
            )
            unit.commit()


@dataclass(frozen=True)
class ListAuditEntries:
    limit: int
    before_position: int | None = None
    event_type: str | None = None
    entity_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AuditPage:
    items: list[model.AuditEntry]
    last_position: int | None
    has_more: bool


class ListAuditEntriesHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: ListAuditEntries) -> AuditPage:
        # One more than asked tells whether another page follows without counting.
        with self._uow(write=False) as uow:
            logged = uow.entries.list(
                limit=query.limit + 1,
                before_position=query.before_position,
                event_type=query.event_type,
                entity_id=query.entity_id,
            )
        page = logged[: query.limit]
        return AuditPage(
            items=[item.entry for item in page],
            last_position=page[-1].position if page else None,
            has_more=len(logged) > query.limit,
        )
