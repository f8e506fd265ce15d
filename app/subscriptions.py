"""Which subscriber listens to which event: the event side of the context map, in one place.

A subscription names the subscriber and the provider of its context's container class that
handles the event, by reference: a misspelt handler fails in mypy and at import, and one of
another context than its subscriber's fails at start-up (:func:`served_copy`). The name is the
subscriber's identity in the delivery records (renaming one leaves its pending deliveries to
nobody) and the unit of ordering: one name over several event types gets one aggregate's
events in the order they were recorded, so the audit log sees an order placed before it is
cancelled even when the first delivery had to be retried — when the audit context is served
with the order context; across the broker a retried message lets later ones pass.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from dependency_injector import providers

from app.placement import RELAY, Subscription
from contexts.audit.container import AuditContainer
from contexts.notification.container import NotificationContainer
from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.product.container import ProductContainer
from contexts.recommendation.container import RecommendationContainer
from contexts.user.events import UserRegistered
from infrastructure.events.inbox import current_delivery

if TYPE_CHECKING:
    from app.containers import ApplicationContainer

# One name for both order mails: a buyer is told of a cancellation only after the confirmation
# of that order went out (the name predates the cancellation notice).
ORDER_MAILS = "notification.order_confirmation_email"

SUBSCRIPTIONS: tuple[Subscription, ...] = tuple(
    Subscription(event_type, name, handler)
    for event_type, name, handler in (
        (UserRegistered, "notification.recipients", NotificationContainer.when_user_registered_remember_recipient),
        (UserRegistered, "notification.welcome_email", NotificationContainer.when_user_registered_send_welcome),
        (UserRegistered, "audit.user_log", AuditContainer.when_user_registered_audit),
        (UserRegistered, "recommendation.profile", RecommendationContainer.when_user_registered_create_profile),
        (OrderPlaced, "product.confirm_reservation", ProductContainer.when_order_placed_confirm_reservation),
        (OrderPlaced, ORDER_MAILS, NotificationContainer.when_order_placed_send_confirmation),
        (OrderCancelled, ORDER_MAILS, NotificationContainer.when_order_cancelled_send_notice),
        (OrderPlaced, "audit.order_log", AuditContainer.when_order_placed_audit),
        (OrderCancelled, "audit.order_log", AuditContainer.when_order_cancelled_audit),
        (OrderCancelled, "product.release_cancelled_order", ProductContainer.when_order_cancelled_release_stock),
        (OrderPlaced, "recommendation.purchases", RecommendationContainer.when_order_placed_record_purchase),
        (OrderCancelled, "recommendation.purchases", RecommendationContainer.when_order_cancelled_subtract_purchase),
    )
)


# Subscribers whose every effect is one write unit of work on their context's database, so that
# the dispatcher may deliver several events to them in one transaction. Not the mails (their
# effect is outside the database: a batch rolled back and run again would send them twice)
# nor the relay (the broker). Batched only on a database that runs one writer at a time
# (SQLite): there a batch saves a BEGIN IMMEDIATE, a writer turn and a commit per delivery
# and loses nothing. On PostgreSQL deliveries wait on round trips, and the dispatcher's
# workers overlap those; a batch runs one subscriber's deliveries one after the other and
# holds their row locks until its commit (measured: order-e2e fell from 0.21-0.23 to 0.15 of
# the floor, bench/README.md).
# What a batched subscriber must keep to: its writes are to its own context's database only (a
# write unit of work on another database inside a batch raises), so it must not call another
# context's write API in process; and its read units of work do not see what the earlier
# deliveries of its batch wrote (they are not committed yet), so it reads through its write unit
# of work what it needs to see of them.
BATCHED = frozenset(
    {
        "audit.user_log",
        "audit.order_log",
        "recommendation.profile",
        "recommendation.purchases",
        "notification.recipients",
        "product.confirm_reservation",
        "product.release_cancelled_order",
    }
)


def subscribe_all(container: ApplicationContainer) -> None:
    """Subscribe what this process runs: the subscribers of the contexts it serves, and the
    relay for events published here that a context served elsewhere takes."""
    bus = container.event_bus()
    placement = container.placement()
    for subscription in placement.local():
        bus.subscribe(
            subscription.event_type,
            served_copy(getattr(container, subscription.subscriber), subscription.handler),
            name=subscription.name,
            batched=subscription.name in BATCHED
            and getattr(container, f"{subscription.subscriber}_database")().serializes_writers,
        )
    relayed = placement.relayed()
    if relayed:
        publisher = container.broker_publisher()
        assert publisher is not None, "the settings require EVENTS_BROKER_URL when contexts are served apart"

        def relay(_event: object) -> None:
            delivery = current_delivery()
            assert delivery is not None, "the relay runs as a delivery"
            publisher.publish(delivery.envelope)

        for event_type in relayed:
            bus.subscribe(event_type, relay, name=RELAY)
        # After an outage, the relay's backlog goes as soon as the broker is back, not when
        # each delivery's backoff (up to EVENTS_RETRY_MAX_SECONDS) runs out.
        publisher.when_back(partial(container.dispatcher().hasten, RELAY))


def served_copy(context: providers.Container[Any], handler: providers.Provider[Any]) -> providers.Provider[Any]:
    """The app's own copy of ``handler``, a provider of the class of ``context``'s container:
    the class holds templates, and each app's container copies them, wired to its settings."""
    declared = context.container.declarative_parent
    # ``providers``, not ``cls_providers``: a provider inherited from a base container counts too.
    names = [name for name, provider in (declared.providers if declared else {}).items() if provider is handler]
    if not names:
        raise LookupError(f"{handler!r} is not a provider of {declared!r}, its subscriber's context's container")
    copy: providers.Provider[Any] = getattr(context, names[0])
    return copy
