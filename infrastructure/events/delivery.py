"""One event's delivery to one subscriber, handed to the subscriber with the event.

A subscriber passes it to the unit of work it makes for it, and that unit of work records the
delivery in its context's inbox with the effect (exactly-once effects for at-least-once
deliveries, :mod:`infrastructure.events.inbox`). A unit of work made without one records
nothing: a subscriber that calls another context's API in process leaves no trace of its
delivery in that context's inbox. Standard library only, so that application code may name it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Transaction(Protocol):
    """The write session the deliveries of one batch share
    (``infrastructure.db.unit_of_work.SharedTransaction``)."""

    def session(self, database: Any) -> Any: ...

    def after_commit(self, callback: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Delivery:
    subscriber: str
    event_id: uuid.UUID
    # The stored event as published (JSON), for a subscriber that passes it on as it is: the relay.
    envelope: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # 1 for the first attempt; the dispatcher counts the failed ones before it.
    attempt: int = 1
    # Set when the dispatcher runs this delivery in a batch: the units of work made for it are
    # savepoints in the batch's one transaction (``DeliveryRunner.run_batch``).
    transaction: Transaction | None = field(default=None, compare=False)
