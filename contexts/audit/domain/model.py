"""An audit entry: one fact another context published, recorded once and never changed."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

EntityType = Literal["user", "order"]


@dataclass(frozen=True)
class AuditEntry:
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    entity_type: EntityType
    entity_id: uuid.UUID
    actor_id: uuid.UUID | None
    summary: str
    data: dict[str, Any]
    recorded_at: datetime


def primitives(value: Any) -> Any:
    """``value`` (an event or any part of one) as JSON-ready primitives.

    The conventions are the API's and the event envelope's, so an entry's ``data`` reads as the
    event's ``data`` on the wire: money as a two-place decimal string, ids as UUID strings,
    times as RFC 3339 UTC.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: primitives(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return primitives(value.value)
    if isinstance(value, Mapping):
        return {str(key): primitives(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [primitives(item) for item in value]
    return value
