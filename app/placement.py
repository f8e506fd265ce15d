"""Which contexts this process serves, and how events cross to the contexts it does not.

A subscription is local when its subscriber's context is served here: its deliveries are
recorded in the publisher's outbox and run by this process's dispatcher, as in the monolith.
An event type that a context served here publishes, and that a context served elsewhere
subscribes to, gets one more local subscriber, the relay, which publishes the event to the
broker. A subscriber served here that takes events published elsewhere consumes them from its
broker queue. The subscriber code is the same in every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dependency_injector import providers

RELAY = "broker.relay"


def context_of(name: str) -> str:
    """``"order.OrderPlaced"`` or ``"audit.order_log"`` → ``"order"`` / ``"audit"``."""
    return name.split(".", 1)[0]


@dataclass(frozen=True)
class Subscription:
    event_type: type[Any]
    name: str  # the subscriber's identity in delivery records, inboxes and broker queues
    handler: providers.Provider[Any]  # a provider of the subscriber's context's container class
    # Deliveries to it may share one transaction on a database with one writer (app/registry.py).
    batched: bool = False

    @property
    def publisher(self) -> str:
        return context_of(self.event_type.TYPE)

    @property
    def subscriber(self) -> str:
        return context_of(self.name)


@dataclass(frozen=True)
class Placement:
    """The subscriptions seen from a process serving ``served``."""

    subscriptions: tuple[Subscription, ...]
    served: frozenset[str]

    def local(self) -> list[Subscription]:
        """Subscriptions this process runs itself: its subscribers' events, from wherever."""
        return [s for s in self.subscriptions if s.subscriber in self.served]

    def relayed(self) -> list[type[Any]]:
        """Event types published here that a subscriber served elsewhere takes."""
        crossing = [s for s in self.subscriptions if s.publisher in self.served and s.subscriber not in self.served]
        return sorted({s.event_type for s in crossing}, key=lambda event_type: event_type.TYPE)

    def consumed(self) -> list[str]:
        """Subscribers served here that take events published elsewhere: they consume from
        their broker queues."""
        return sorted({s.name for s in self.local() if s.publisher not in self.served})

    def fed_by_outboxes(self) -> list[str]:
        """The subscribers this process's outboxes deliver to: its own subscribers of the events
        published here, and the relay when some of those go to other services."""
        names = {s.name for s in self.local() if s.publisher in self.served}
        return sorted(names | ({RELAY} if self.relayed() else set()))

    def broker_map(self) -> dict[str, set[str]]:
        """The queues this process declares on the broker, subscriber → event types bound: those
        of every subscription that crosses its boundary, either way. A publisher declares its
        remote subscribers' queues (it may start before them, and the broker would drop an event
        no queue takes); a consumer its own. A subscriber served with its publisher gets no
        queue, or its events would pile up there unread."""
        types: dict[str, set[str]] = {}
        for s in self.subscriptions:
            if (s.publisher in self.served) != (s.subscriber in self.served):
                types.setdefault(s.name, set()).add(s.event_type.TYPE)
        return types
