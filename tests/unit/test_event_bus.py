"""The in-process EventBus: who listens to what. It runs one named subscriber at a time with
its delivery and lets its failure through (the dispatcher records it), holds subscribers
strongly, refuses a name twice, and buses share nothing."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from infrastructure.events.bus import EventBus, UnknownSubscriber
from infrastructure.events.delivery import Delivery
from infrastructure.events.envelope import Envelope


@dataclass(frozen=True)
class Pinged:
    TYPE: ClassVar[str] = "test.Pinged"
    VERSION: ClassVar[int] = 1

    n: int


@dataclass(frozen=True)
class Ponged:
    TYPE: ClassVar[str] = "test.Ponged"
    VERSION: ClassVar[int] = 1

    n: int


def deliver(bus: EventBus, event: Any, subscriber: str) -> Delivery:
    """Deliver ``event`` to ``subscriber`` as the dispatcher would; the delivery handed to it."""
    envelope = Envelope(event=event)
    delivery = Delivery(subscriber, envelope.id)
    bus.deliver(envelope, delivery)
    return delivery


def into(received: list[Any]) -> Callable[[Any, Delivery], None]:
    """A subscriber that keeps the events it is delivered."""
    return lambda event, _delivery: received.append(event)


def test_the_subscriber_is_handed_its_delivery_with_the_event() -> None:
    bus = EventBus()
    handed: list[tuple[Any, Delivery]] = []
    bus.subscribe(Pinged, lambda event, delivery: handed.append((event, delivery)), name="history")

    delivery = deliver(bus, Pinged(3), "history")

    assert handed == [(Pinged(3), delivery)]


def test_deliver_runs_the_named_subscriber_alone_and_lets_its_failure_through() -> None:
    """The dispatcher records each subscriber's outcome on its own, so the bus must neither
    call the others nor swallow the failure."""
    bus = EventBus()
    received: list[Any] = []
    bus.subscribe(Pinged, into(received), name="healthy")
    bus.subscribe(Pinged, broken, name="broken")

    with pytest.raises(RuntimeError, match="broke on"):
        deliver(bus, Pinged(1), "broken")
    assert received == []
    deliver(bus, Pinged(2), "healthy")
    assert received == [Pinged(2)]


def broken(event: Any, _delivery: Delivery) -> None:
    raise RuntimeError(f"broke on {event}")


def test_an_unknown_subscriber_is_an_error_not_a_silent_success() -> None:
    bus = EventBus()
    with pytest.raises(UnknownSubscriber):
        deliver(bus, Pinged(1), "renamed-long-ago")


def test_a_subscriber_name_takes_an_event_type_once_but_may_take_several_types() -> None:
    """Names identify deliveries in the database; two handlers of one type sharing a name would
    each complete the other's deliveries. One name over several types is one subscriber whose
    events of an aggregate stay in order across those types."""
    bus = EventBus()
    pings: list[Any] = []
    pongs: list[Any] = []
    bus.subscribe(Pinged, into(pings), name="history")
    bus.subscribe(Ponged, into(pongs), name="history")
    with pytest.raises(ValueError, match=r"already takes test\.Pinged"):
        bus.subscribe(Pinged, print, name="history")

    deliver(bus, Ponged(2), "history")
    deliver(bus, Pinged(1), "history")
    assert (pings, pongs) == ([Pinged(1)], [Ponged(2)])


def test_subscribers_defined_in_a_function_survive_garbage_collection() -> None:
    bus = EventBus()
    received: list[Any] = []

    def subscribe_a_closure() -> None:
        def on_ping(event: Pinged, _delivery: Delivery) -> None:
            received.append(event)

        bus.subscribe(Pinged, on_ping, name="closure")
        bus.subscribe(Pinged, lambda event, _delivery: received.append(("lambda", event)), name="lambda")

    subscribe_a_closure()
    gc.collect()

    for name in bus.subscribers(Pinged):
        deliver(bus, Pinged(7), name)

    assert sorted(map(repr, received)) == sorted(map(repr, [Pinged(7), ("lambda", Pinged(7))]))
    assert sorted(bus.subscribers(Pinged)) == ["closure", "lambda"]


def test_subscribers_are_listed_per_event_type_by_class_or_type_name() -> None:
    bus = EventBus()
    bus.subscribe(Pinged, print, name="pings")
    bus.subscribe(Ponged, print, name="pongs")

    assert bus.subscribers(Pinged) == bus.subscribers("test.Pinged") == ["pings"]
    assert bus.subscribers(Ponged) == ["pongs"]
    assert bus.subscribers("test.Unheard") == []
    assert bus.event_class("test.Ponged") is Ponged


def test_two_buses_share_no_subscribers() -> None:
    one, other = EventBus(), EventBus()
    one.subscribe(Pinged, print, name="one")

    assert other.subscribers(Pinged) == []
    assert one.subscribers(Pinged) == ["one"]
    with pytest.raises(UnknownSubscriber):
        deliver(other, Pinged(1), "one")
