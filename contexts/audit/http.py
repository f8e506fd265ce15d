"""HTTP endpoint of the audit context: the log, page by page, for administrators."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from dependency_injector.wiring import Provide, inject
from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contexts.audit.application import handlers
from contexts.audit.domain import model
from infrastructure.http.openapi import Access, endpoint
from infrastructure.http.pagination import CursorKey, decode_cursor, encode_cursor
from infrastructure.http.schemas import ResponseModel

bp = Blueprint("audit", __name__)

# The facts the log records: what its subscribers listen to (a test holds the two together).
AuditedEventType = Literal["user.UserRegistered", "order.OrderPlaced", "order.OrderCancelled"]


class AuditLogQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_type: AuditedEventType | None = Field(None, description="only entries of this event type")
    entity_id: uuid.UUID | None = Field(None, description="only entries about this user or order")
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None


class AuditEntryOut(ResponseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="the id of the event the entry records")
    event_type: AuditedEventType
    entity_type: Literal["user", "order"]
    entity_id: uuid.UUID
    actor_id: uuid.UUID | None = Field(description="the user who caused the fact, when the event tells")
    summary: str
    data: dict[str, Any] = Field(description="the event's fields, as in its envelope")
    recorded_at: datetime = Field(description="when the audit log recorded the fact")


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


class AuditCursor(CursorKey):
    """The log is read newest first; a page ends at the position of the last entry shown."""

    # Positions are signed 64-bit integers in every database; a larger one cannot even be bound
    # as a query parameter (the driver overflows), so it is a cursor this API never returned.
    position: Annotated[int, Field(ge=1, le=2**63 - 1)]


def _entry(entry: model.AuditEntry) -> dict[str, Any]:
    return AuditEntryOut.model_validate(entry).model_dump(mode="json")


@bp.get("/audit-log")
@endpoint(
    summary="Read the audit log, newest first",
    tag="audit",
    access=Access.ADMIN,
    query=AuditLogQuery,
    responses={200: AuditPageOut},
    description=(
        "One entry per fact published by the user and order contexts (registrations, orders placed "
        "and cancelled), recorded once however often the event is delivered. Filters combine."
    ),
)
@inject
def list_audit_entries(
    query: AuditLogQuery,
    list_page: handlers.ListAuditEntriesHandler = Provide["audit.list_entries"],
) -> dict[str, Any]:
    before = decode_cursor(query.cursor, AuditCursor).position if query.cursor else None
    page = list_page(
        handlers.ListAuditEntries(
            limit=query.limit, before_position=before, event_type=query.event_type, entity_id=query.entity_id
        )
    )
    next_cursor = (
        encode_cursor(AuditCursor(position=page.last_position))
        if page.has_more and page.last_position is not None
        else None
    )
    return {"items": [_entry(item) for item in page.items], "next_cursor": next_cursor}
