"""How the audit context records other contexts' facts: one entry per event, in one commit.

Each subscriber appends its entry in a single write unit of work; that commit also records
the delivery in the audit inbox, so a redelivered event changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from contexts.audit.application.ports import UnitOfWorkFactory
from contexts.audit.domain import model
from contexts.order.events import CANCELLED_BY_CUSTOMER, OrderCancelled, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.serialization import to_data


class NotDelivering(RuntimeError):
    """A subscriber ran outside an event delivery, so there is no event id to record."""


def when_user_registered_audit(event: UserRegistered, *, uow: UnitOfWorkFactory) -> None:
    _append(
        uow,
        event,
        entity_type="user",
        entity_id=event.user_id,
        actor_id=event.user_id,
        summary=f"user {event.name} <{event.email}> registered",
    )


def when_order_placed_audit(event: OrderPlaced, *, uow: UnitOfWorkFactory) -> None:
    lines = len(event.lines)
    _append(
        uow,
        event,
        entity_type="order",
        entity_id=event.order_id,
        actor_id=event.user_id,
        summary=f"order placed: {lines} line{'' if lines == 1 else 's'}, {event.total:.2f} {event.currency}",
    )


def when_order_cancelled_audit(event: OrderCancelled, *, uow: UnitOfWorkFactory) -> None:
    # The event names the order's owner, not who cancelled: an administrator may have. Only the
    # customer's own cancellation is attributed; any other is left without an actor, not misattributed.
    _append(
        uow,
        event,
        entity_type="order",
        entity_id=event.order_id,
        actor_id=event.user_id if event.reason == CANCELLED_BY_CUSTOMER else None,
        summary=f"order cancelled ({event.reason})",
    )


def _append(
    uow: UnitOfWorkFactory,
    event: UserRegistered | OrderPlaced | OrderCancelled,
    *,
    entity_type: model.EntityType,
    entity_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    summary: str,
) -> None:
    event_type = event.TYPE
    with uow() as unit:
        event_id = unit.delivered_event_id()
        if event_id is None:
            raise NotDelivering(f"{event_type} can only be audited while it is being delivered")
        unit.entries.append(
            model.AuditEntry(
                id=uuid.uuid4(),
                event_id=event_id,
                event_type=event_type,
                entity_type=entity_type,
                entity_id=entity_id,
                actor_id=actor_id,
                summary=summary,
                # As the event's envelope carries it, so the entry reads like the event on the wire.
                data=to_data(event),
                recorded_at=datetime.now(timezone.utc),
            )
        )
        unit.commit()
