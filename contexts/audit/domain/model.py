"""An audit entry: one fact another context published, recorded once and never changed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
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

