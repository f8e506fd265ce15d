"""The in-process EventBus: every subscriber gets its event even when another one raises (and
the failure is logged), subscribers are held strongly, buses share nothing, and an event nobody
listens to is fine."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from infrastructure.events.bus import EventBus
from infrastructure.logging import configure_logging


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


@pytest.fixture
def app_logging() -> None:
    """Logs routed as the app routes them (structlog through the standard library), for caplog."""
    configure_logging(level="WARNING", json=True)


def failing(name: str, calls: list[str]) -> Callable[[Any], None]:
    def handler(event: Any) -> None:
        calls.append(name)
        raise RuntimeError(f"{name} broke on {event}")

    return handler


def test_a_raising_subscriber_keeps_no_other_from_its_event_and_is_logged(
    app_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Every subscriber records its call before two of them raise: whatever order the bus
    calls them in, stopping at the first failure would leave some uncalled."""
    bus = EventBus()
    calls: list[str] = []
    received: list[Any] = []
    bus.subscribe(Pinged, failing("first-broken", calls), name="first-broken")
    bus.subscribe(Pinged, received.append, name="healthy")
    bus.subscribe(Pinged, failing("second-broken", calls), name="second-broken")

    bus.publish([Pinged(1), Pinged(2)])

    assert sorted(calls) == ["first-broken", "first-broken", "second-broken", "second-broken"]
    assert received == [Pinged(1), Pinged(2)]
    failures = [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "event.delivery_failed"
    ]
    assert sorted(failure["subscriber"] for failure in failures) == sorted(["first-broken", "second-broken"] * 2)
    assert all(failure["event_type"] == "test.Pinged" for failure in failures)
    assert all(failure.get("exc_info") for failure in failures), "the traceback is kept"
    assert all(
        record.levelno >= logging.ERROR
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "event.delivery_failed"
    )


def test_subscribers_defined_in_a_function_survive_garbage_collection() -> None:
    bus = EventBus()
    received: list[Any] = []

    def subscribe_a_closure() -> None:
        def on_ping(event: Pinged) -> None:
            received.append(event)

        bus.subscribe(Pinged, on_ping, name="closure")
        bus.subscribe(Pinged, lambda event: received.append(("lambda", event)), name="lambda")

    subscribe_a_closure()
    gc.collect()

    bus.publish([Pinged(7)])

    assert sorted(map(repr, received)) == sorted(map(repr, [Pinged(7), ("lambda", Pinged(7))]))
    assert sorted(bus.subscribers(Pinged)) == ["closure", "lambda"]


def test_subscribers_get_only_the_event_type_they_subscribed_to() -> None:
    bus = EventBus()
    pings: list[Any] = []
    pongs: list[Any] = []
    bus.subscribe(Pinged, pings.append, name="pings")
    bus.subscribe(Ponged, pongs.append, name="pongs")

    bus.publish([Pinged(1), Ponged(2), Pinged(3)])

    assert pings == [Pinged(1), Pinged(3)]
    assert pongs == [Ponged(2)]


def test_two_buses_share_no_subscribers() -> None:
    one, other = EventBus(), EventBus()
    heard_by_one: list[Any] = []
    one.subscribe(Pinged, heard_by_one.append, name="one")

    other.publish([Pinged(1)])

    assert heard_by_one == []
    assert other.subscribers(Pinged) == []
    assert one.subscribers(Pinged) == ["one"]
    one.publish([Pinged(2)])
    assert heard_by_one == [Pinged(2)]


def test_publishing_with_no_subscribers_or_no_events_is_fine() -> None:
    bus = EventBus()

    bus.publish([Pinged(1)])
    bus.publish([])

    assert bus.subscribers(Pinged) == []
