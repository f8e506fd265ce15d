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
from infrastructure.events.delivery import Delivery
from infrastructure.serialization import to_data


def when_user_registered_audit(event: UserRegistered, delivery: Delivery, *, uow: UnitOfWorkFactory) -> None:
    _append(
        uow,
        event,
        delivery,
        entity_type="user",
        entity_id=event.user_id,
        actor_id=event.user_id,
        summary=f"user {event.name} <{event.email}> registered",
    )


def when_order_placed_audit(event: OrderPlaced, delivery: Delivery, *, uow: UnitOfWorkFactory) -> None:
    lines = len(event.lines)
    _append(
        uow,
        event,
        delivery,
        entity_type="order",
        entity_id=event.order_id,
        actor_id=event.user_id,
        summary=f"order placed: {lines} line{'' if lines == 1 else 's'}, {event.total:.2f} {event.currency}",
    )


def when_order_cancelled_audit(event: OrderCancelled, delivery: Delivery, *, uow: UnitOfWorkFactory) -> None:
    # The event names the order's owner, not who cancelled: an administrator may have. Only the
    # customer's own cancellation is attributed; any other is left without an actor, not misattributed.
    _append(
        uow,
        event,
        delivery,
        entity_type="order",
        entity_id=event.order_id,
        actor_id=event.user_id if event.reason == CANCELLED_BY_CUSTOMER else None,
        summary=f"order cancelled ({event.reason})",
    )


def _append(
    uow: UnitOfWorkFactory,
    event: UserRegistered | OrderPlaced | OrderCancelled,
    delivery: Delivery,
    *,
    entity_type: model.EntityType,
    entity_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    summary: str,
) -> None:
    with uow(delivery=delivery) as unit:
        unit.entries.append(
            model.AuditEntry(
                id=uuid.uuid4(),
                event_id=delivery.event_id,
                event_type=event.TYPE,
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
