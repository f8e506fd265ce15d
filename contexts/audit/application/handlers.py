"""Reading the audit log: pages of entries, newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contexts.audit.application.ports import UnitOfWorkFactory
from contexts.audit.domain import model


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
