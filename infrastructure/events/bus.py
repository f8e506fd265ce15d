"""Who listens to which event, on blinker: the in-process side of event delivery.

Each bus owns its own ``Namespace`` (no state shared between app instances or tests) and
holds subscribers strongly. Publishing does not call subscribers: the outbox records one
delivery per subscriber named here, and the dispatcher later calls each subscriber on its
own through :meth:`EventBus.deliver`, so one failure never keeps the others from an event.
A subscriber is called with the event and its :class:`~infrastructure.events.delivery.Delivery`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from blinker import Namespace

from infrastructure.events.delivery import Delivery
from infrastructure.events.envelope import Envelope

E = TypeVar("E")


class UnknownSubscriber(LookupError):
    """A delivery names a subscriber this process does not have (renamed or removed)."""


@dataclass(frozen=True)
class NamedHandler:
    """A subscriber as the bus holds it: its lasting name, and what it calls with an event and
    its delivery.
    (What the shop declares, which context's subscriber takes which event, is
    ``app.placement.Subscription``.)"""

    name: str
    handler: Callable[[Any, Delivery], None]

    def __call__(self, event: Any, delivery: Delivery) -> None:
        self.handler(event, delivery)


class EventBus:
    def __init__(self) -> None:
        self._signals = Namespace()
        self._event_classes: dict[str, type[Any]] = {}
        # By (event type, name): one subscriber may take several event types of a publisher,
        # and its deliveries of one aggregate then stay in order across those types.
        self._handlers: dict[tuple[str, str], NamedHandler] = {}
        self._batched: set[str] = set()

    def subscribe(
        self, event_type: type[E], handler: Callable[[E, Delivery], None], *, name: str, batched: bool = False
    ) -> None:
        """Deliver every ``event_type`` to ``handler``; ``name`` is its lasting identity in the
        delivery records, so renaming a subscriber orphans its pending deliveries.

        ``batched``: the dispatcher may run several of its deliveries in one shared transaction
        (see ``DeliveryRunner.run_batch``). Only for a subscriber whose every effect is a write unit
        of work on a database: an effect outside one (mail, a broker) would be repeated when the
        batch is rolled back and run again one delivery at a time. A name is batched or not for
        all its event types.
        """
        key = (_type_of(event_type), name)
        if key in self._handlers:
            raise ValueError(f"a subscriber named {name!r} already takes {key[0]}")
        if any(known == name for _, known in self._handlers) and (name in self._batched) != batched:
            raise ValueError(f"the subscriber {name!r} is batched for some event types and not others")
        if batched:
            self._batched.add(name)
        named = NamedHandler(name=name, handler=handler)
        self._event_classes[key[0]] = event_type
        self._handlers[key] = named
        self._signals.signal(key[0]).connect(named, weak=False)

    def subscribers(self, event_type: type[Any] | str) -> list[str]:
        """Names of the subscribers of ``event_type``."""
        key = event_type if isinstance(event_type, str) else _type_of(event_type)
        return [cast(NamedHandler, receiver).name for receiver in self._signals.signal(key).receivers_for(self)]

    def batched(self, subscriber: str) -> bool:
        """Whether ``subscriber``'s deliveries may share a transaction (see :meth:`subscribe`)."""
        return subscriber in self._batched

    def event_class(self, event_type: str) -> type[Any]:
        return self._event_classes[event_type]

    def deliver(self, envelope: Envelope, delivery: Delivery) -> None:
        """Run the subscriber ``delivery`` names on the event of ``envelope``; its exceptions are
        the caller's to record."""
        named = self._handlers.get((envelope.type, delivery.subscriber))
        if named is None:
            raise UnknownSubscriber(
                f"no subscriber named {delivery.subscriber!r} takes {envelope.type} in this process"
            )
        named(envelope.event, delivery)


def _type_of(event_type: type[Any]) -> str:
    return str(event_type.TYPE)
