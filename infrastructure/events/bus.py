"""In-process delivery of events to subscribers, on blinker.

Blinker's ``send`` stops at the first raising receiver and holds receivers weakly; here each
bus owns its own ``Namespace`` (no state shared between app instances or tests), subscribers
are held strongly, and every subscriber is called on its own so that one failure is logged
and never keeps the others from their event.

Publishers see only :class:`EventPublisher`; a durable outbox can later sit behind that port
without publishers or subscribers changing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import structlog
from blinker import Namespace

from infrastructure.events.envelope import Envelope, Event

E = TypeVar("E")

logger = structlog.get_logger(__name__)


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Deliver facts that have just been committed."""


@dataclass(frozen=True)
class Subscription:
    name: str
    handler: Callable[[Any], None]

    def __call__(self, envelope: Envelope) -> None:
        self.handler(envelope.event)


class EventBus:
    def __init__(self) -> None:
        self._signals = Namespace()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None], *, name: str) -> None:
        """Call ``handler`` with every published ``event_type``; ``name`` identifies it in logs."""
        signal = self._signals.signal(_type_of(event_type))
        signal.connect(Subscription(name=name, handler=handler), weak=False)

    def subscribers(self, event_type: type[Any]) -> list[str]:
        signal = self._signals.signal(_type_of(event_type))
        return [_subscription(receiver).name for receiver in signal.receivers_for(self)]

    def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            self._deliver(Envelope.wrap(event))

    def _deliver(self, envelope: Envelope) -> None:
        log = logger.bind(event_id=str(envelope.id), event_type=envelope.type)
        log.info("event.published", data=envelope.to_dict()["data"])
        for receiver in self._signals.signal(envelope.type).receivers_for(self):
            subscription = _subscription(receiver)
            try:
                subscription(envelope)
            except Exception:
                log.exception("event.delivery_failed", subscriber=subscription.name)
            else:
                log.debug("event.delivered", subscriber=subscription.name)


def _subscription(receiver: Callable[..., Any]) -> Subscription:
    return cast(Subscription, receiver)


def _type_of(event_type: type[Any]) -> str:
    return str(event_type.TYPE)
