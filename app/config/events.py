"""Event delivery in this process: the dispatcher's workers, retries, leases, back-pressure and
retention, and the periodic housekeeping beside it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from app.config.base import SettingsGroup

# EVENTS_WORKERS when unset (see Settings.delivery_workers).
SQLITE_DELIVERY_WORKERS = 4
SERVER_DELIVERY_WORKERS = 8


class EventsSettings(SettingsGroup):
    events_dispatch_in_web: bool = Field(
        True, description="run the event dispatcher inside `shop serve`; false when `shop events relay` runs apart"
    )
    events_workers: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None,
        description=(
            "deliveries run at the same time per dispatcher; unset: 4 when the contexts it serves are"
            " on SQLite, 8 when any is on PostgreSQL"
        ),
    )
    events_max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="attempts before a delivery becomes a dead letter"
    )
    events_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        1.0, description="delay before the first retry; doubles per failure, with jitter"
    )
    events_retry_max_seconds: Annotated[float, Field(gt=0)] = Field(
        300.0, description="the longest delay between two attempts of a delivery"
    )
    events_claim_timeout_seconds: Annotated[float, Field(ge=1)] = Field(
        60.0, description="after this, a delivery claimed by a dispatcher that died is taken over"
    )
    events_poll_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0, description="how often the dispatcher looks for work committed by other processes"
    )
    events_hold_writes_after_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        0.5,
        description=(
            "write requests wait while the dispatcher of their process runs more than this behind"
            " the events it delivers, so that under more load than it keeps up with the delivery"
            " lag stays bounded; 0: never (only where the dispatcher runs in `shop serve`)"
        ),
    )
    events_hold_writes_max_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        2.0, description="the longest a write request waits for that; then it is served all the same"
    )
    events_retention_hours: Annotated[float, Field(ge=0)] = Field(
        168.0, description="completed deliveries (and their events) are pruned after this"
    )
    reservation_ttl_seconds: Annotated[int, Field(ge=1)] = Field(
        900, description="a stock reservation no placed order confirmed is released after this"
    )
    maintenance_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0, description="how often expired reservations are released and old deliveries pruned"
    )
