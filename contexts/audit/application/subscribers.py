"""How the audit context records other contexts' facts: each event translated into the entry
to record (:class:`~contexts.audit.application.handlers.RecordEntry`), for its delivery."""

from __future__ import annotations

from contexts.audit.application.handlers import RecordEntry, RecordEntryHandler
from contexts.order.events import CANCELLED_BY_CUSTOMER, OrderCancelled, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery
from infrastructure.serialization import to_data


def when_user_registered_audit(event: UserRegistered, delivery: Delivery, *, record: RecordEntryHandler) -> None:
    record(
        RecordEntry(
            event_type=event.TYPE,
            entity_type="user",
            entity_id=event.user_id,
            actor_id=event.user_id,
            summary=f"user {event.name} <{event.email}> registered",
            data=to_data(event),
        ),
        delivery=delivery,
    )


def when_order_placed_audit(event: OrderPlaced, delivery: Delivery, *, record: RecordEntryHandler) -> None:
    lines = len(event.lines)
    record(
        RecordEntry(
            event_type=event.TYPE,
            entity_type="order",
            entity_id=event.order_id,
            actor_id=event.user_id,
            summary=f"order placed: {lines} line{'' if lines == 1 else 's'}, {event.total:.2f} {event.currency}",
            data=to_data(event),
        ),
        delivery=delivery,
    )


def when_order_cancelled_audit(event: OrderCancelled, delivery: Delivery, *, record: RecordEntryHandler) -> None:
    # The event names the order's owner, not who cancelled: an administrator may have. Only the
    # customer's own cancellation is attributed; any other is left without an actor, not misattributed.
    record(
        RecordEntry(
            event_type=event.TYPE,
            entity_type="order",
            entity_id=event.order_id,
            actor_id=event.user_id if event.reason == CANCELLED_BY_CUSTOMER else None,
            summary=f"order cancelled ({event.reason})",
            data=to_data(event),
        ),
        delivery=delivery,
    )
