"""Which subscriber listens to which event: the event side of the context map, in one place.

A subscription names the subscriber and the provider of a context's container that handles
the event. The name is the subscriber's identity in the delivery records (renaming one leaves
its pending deliveries to nobody) and the unit of ordering: one name over several event types
gets one aggregate's events in the order they were recorded, so the audit log sees an order
placed before it is cancelled even when the first delivery had to be retried.
"""

from __future__ import annotations

from typing import Any

from app.containers import ApplicationContainer
from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.user.events import UserRegistered

SUBSCRIPTIONS: tuple[tuple[type[Any], str, str], ...] = (
    # (event type, subscriber name, "<context>.<provider>")
    (UserRegistered, "notification.recipients", "notification.when_user_registered_remember_recipient"),
    (UserRegistered, "notification.welcome_email", "notification.when_user_registered_send_welcome"),
    (UserRegistered, "audit.user_log", "audit.when_user_registered_audit"),
    (UserRegistered, "recommendation.profile", "recommendation.when_user_registered_create_profile"),
    (OrderPlaced, "product.confirm_reservation", "product.when_order_placed_confirm_reservation"),
    (OrderPlaced, "notification.order_confirmation_email", "notification.when_order_placed_send_confirmation"),
    (OrderPlaced, "audit.order_log", "audit.when_order_placed_audit"),
    (OrderCancelled, "audit.order_log", "audit.when_order_cancelled_audit"),
    (OrderCancelled, "product.release_cancelled_order", "product.when_order_cancelled_release_stock"),
    (OrderPlaced, "recommendation.purchases", "recommendation.when_order_placed_record_purchase"),
)


def subscribe_all(container: ApplicationContainer) -> None:
    bus = container.event_bus()
    for event_type, name, handler in SUBSCRIPTIONS:
        context, provider = handler.split(".")
        bus.subscribe(event_type, getattr(getattr(container, context), provider), name=name)
