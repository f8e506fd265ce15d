"""Subscribing a process's subscribers to the event bus: the subscriptions of the registry
(``app/registry.py``) whose subscriber this process serves, and the relay to the broker for
the events published here that a context served elsewhere takes."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from dependency_injector import providers

from app.placement import RELAY
from infrastructure.events.delivery import Delivery

if TYPE_CHECKING:
    from app.containers import ApplicationContainer


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
            batched=subscription.batched
            and getattr(container, f"{subscription.subscriber}_database")().serializes_writers,
        )
    relayed = placement.relayed()
    if relayed:
        publisher = container.broker_publisher()
        assert publisher is not None, "the settings require EVENTS_BROKER_URL when contexts are served apart"

        def relay(_event: object, delivery: Delivery) -> None:
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
