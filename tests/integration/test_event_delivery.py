"""The delivery guarantees of the outbox, the dispatcher and the inbox, on real SQLite files.

Most tests publish a test event (``test.Pinged``) into the order context's outbox, so that only
the test's own subscribers get deliveries, and run their own :class:`Dispatcher` on the app's
outboxes with a retry delay of an hour: a failed delivery is then due again only when the
test says so (:func:`make_due`), and no assertion depends on how long anything takes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.containers import ApplicationContainer, databases
from app.factory import container_of
from app.registry import SUBSCRIPTIONS
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.product.adapters.orm import INBOX as PRODUCT_INBOX
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.adapters.orm import StockAdjustmentRow
from contexts.product.application.handlers import GetProduct
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from contexts.user.events import UserRegistered
from infrastructure.db.unit_of_work import shared_transaction
from infrastructure.events import delivery_runner as runner_module
from infrastructure.events import dispatcher as dispatcher_module
from infrastructure.events.delivery import Delivery
from infrastructure.events.dispatcher import Dispatcher
from infrastructure.events.inbox import AlreadyHandled
from infrastructure.events.outbox import Outbox
from infrastructure.events.retry_policy import RetryPolicy
from infrastructure.events.tables import DEAD, DONE, PENDING, OutboxTables
from tests.conftest import Backend, Shop

TABLES: dict[str, OutboxTables] = {"user": USER_OUTBOX, "product": PRODUCT_OUTBOX, "order": ORDER_OUTBOX}
CONFIRM = "product.confirm_reservation"
DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Pinged:
    TYPE: ClassVar[str] = "test.Pinged"
    VERSION: ClassVar[int] = 1

    key: str
    n: int


class Broken(Exception):
    """What the tests' failing subscribers raise."""


# -- helpers -------------------------------------------------------------------------------


def publish(container: ApplicationContainer, *events: Pinged) -> None:
    """Record events in the order outbox, in one transaction, as a use case would; the
    aggregate of each is its ``key``."""
    with container.order.uow() as uow:
        container.order.outbox().record(uow.session, [(event.key, event) for event in events])
        uow.commit()


def order_outbox(container: ApplicationContainer) -> Outbox:
    outbox: Outbox = container.order.outbox()
    return outbox


def dispatcher(
    container: ApplicationContainer, *, max_attempts: int = 5, retry_seconds: float = 3600.0, **options: Any
) -> Dispatcher:
    """A dispatcher of its own (its own owner id) on the app's outboxes and bus."""
    return Dispatcher(
        container.dispatcher().outboxes,
        container.event_bus(),
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=retry_seconds, max_delay=retry_seconds),
        **options,
    )


def deliveries(container: ApplicationContainer, subscriber: str | None = None, context: str = "order") -> list[Any]:
    """Delivery rows with their event's id and envelope, oldest event first."""
    d, o = TABLES[context].deliveries, TABLES[context].outbox
    query = (
        select(d, o.c.event_id, o.c.envelope)
        .join(o, o.c.position == d.c.event_position)
        .order_by(d.c.event_position, d.c.subscriber)
    )
    if subscriber is not None:
        query = query.where(d.c.subscriber == subscriber)
    with databases(container)[context].session(write=False) as session:
        return list(session.execute(query))


def delivery(container: ApplicationContainer, subscriber: str, n: int) -> Any:
    (row,) = [row for row in deliveries(container, subscriber) if row.envelope["data"]["n"] == n]
    return row


def events_in(container: ApplicationContainer, context: str) -> list[dict[str, Any]]:
    o = TABLES[context].outbox
    with databases(container)[context].session(write=False) as session:
        return list(session.scalars(select(o.c.envelope).order_by(o.c.position)))


def make_due(container: ApplicationContainer, context: str = "order") -> None:
    """Every pending delivery due now: a retry's backoff has passed, without waiting for it."""
    d = TABLES[context].deliveries
    with databases(container)[context].session(write=True) as session:
        due = datetime.now(timezone.utc) - timedelta(seconds=1)
        session.execute(update(d).where(d.c.status == PENDING).values(available_at=due))
        session.commit()


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def place_order(client: FlaskClient, headers: dict[str, str], product_id: str, quantity: int = 1) -> Any:
    response = client.post(
        "/api/v1/orders", json={"items": [{"product_id": product_id, "quantity": quantity}]}, headers=headers
    )
    return response


def available(container: ApplicationContainer, product_id: str) -> int:
    return int(container.product.get_product()(GetProduct(uuid.UUID(product_id))).stock)


class RecordingLogger:
    """Stands in for the dispatcher's structlog logger: what it reported, with bound values;
    DEBUG lines only if ``debug``."""

    def __init__(
        self, records: list[tuple[str, dict[str, Any]]], context: dict[str, Any] | None = None, *, debug: bool = True
    ) -> None:
        self.records = records
        self._context = context or {}
        self._debug = debug

    def bind(self, **values: Any) -> RecordingLogger:
        return RecordingLogger(self.records, {**self._context, **values}, debug=self._debug)

    def is_enabled_for(self, level: int) -> bool:
        return self._debug or level > logging.DEBUG

    def __getattr__(self, _level: str) -> Callable[..., None]:
        def log(event: str, **values: Any) -> None:
            self.records.append((event, {**self._context, **values}))

        return log


# -- 1. transactional outbox ---------------------------------------------------------------


def test_a_committed_change_has_its_event_and_one_pending_delivery_per_subscriber(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    bus = container.event_bus()
    bus.subscribe(UserRegistered, lambda event, _delivery: None, name="test.extra_listener")
    product = shop.product(shop.admin())
    customer = shop.customer("buyer@example.com")

    order = place_order(client, customer, product["id"], 2).json

    (registered,) = [e for e in events_in(container, "user") if e["data"]["email"] == "buyer@example.com"]
    buyer = [row for row in deliveries(container, context="user") if row.event_id == uuid.UUID(registered["id"])]
    (placed,) = [e for e in events_in(container, "order") if e["type"] == "order.OrderPlaced"]
    assert placed["data"]["order_id"] == order["id"]
    order_rows = deliveries(container, context="order")
    for rows, event_type in ((buyer, UserRegistered), (order_rows, OrderPlaced)):
        assert sorted(row.subscriber for row in rows) == sorted(bus.subscribers(event_type))
        assert {(row.status, row.attempts, row.claimed_until, row.completed_at) for row in rows} == {
            (PENDING, 0, None, None)
        }
    assert "test.extra_listener" in {row.subscriber for row in buyer}
    assert {row.aggregate_id for row in order_rows} == {order["id"]}
    reserved = [e for e in events_in(container, "product") if e["type"] == "product.StockReserved"]
    assert [e["data"]["reservation_id"] for e in reserved] == [order["id"]]


def test_a_refused_use_case_records_no_event_and_no_delivery(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=1)
    customer = shop.customer("once@example.com")
    before = {
        context: (len(events_in(container, context)), len(deliveries(container, context=context))) for context in TABLES
    }

    short = place_order(client, customer, product["id"], 2)
    twice = client.post("/api/v1/users", json={"email": "ONCE@example.com", "password": "long enough", "name": "X"})

    assert (short.status_code, twice.status_code) == (409, 409)
    after = {
        context: (len(events_in(container, context)), len(deliveries(container, context=context))) for context in TABLES
    }
    assert after == before


def test_a_unit_of_work_made_without_the_delivery_leaves_nothing_in_the_inbox(
    shop: Shop, container: ApplicationContainer
) -> None:
    """A subscriber of one context that calls another context's API during its delivery: the
    other context's units of work are not made for that delivery, so they record nothing in
    their inbox, or a redelivery would be refused there and the subscriber's own effect lost."""
    product = shop.product(shop.admin(), initial_stock=10)
    for _ in range(2):
        with container.product.uow() as uow:
            assert not uow.already_handled()
            uow.stock.adjust(uuid.UUID(product["id"]), -1, "on behalf of audit")
            uow.commit()

    assert available(container, product["id"]) == 8
    with databases(container)["product"].session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(PRODUCT_INBOX)) == 0


def test_a_subscribers_own_constraint_error_is_a_failure_not_an_earlier_delivery(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The inbox insert flushes the subscriber's changes first: an integrity error of theirs
    must not be mistaken for the inbox's primary key, or the effect would be lost as 'done'."""
    with container.product.uow(delivery=Delivery("product.test_broken_write", uuid.uuid4())) as uow:
        uow.session.add(StockAdjustmentRow(product_id=uuid.uuid4(), delta=1, reason=None, created_at=None))
        with pytest.raises(IntegrityError):
            uow.commit()
    with databases(container)["product"].session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(PRODUCT_INBOX)) == 0


def test_changes_and_events_of_a_commit_that_fails_late_are_rolled_back_together(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The inbox insert comes after the outbox insert in the same transaction: when it fails,
    neither the change nor its event may remain."""
    product = shop.product(shop.admin(), initial_stock=10)
    delivery = Delivery("product.test_publishes", uuid.uuid4())
    for n in (1, 2):
        with container.product.uow(delivery=delivery) as uow:
            uow.stock.adjust(uuid.UUID(product["id"]), -n, f"change {n}")
            uow.seen.append(SimpleNamespace(id=f"aggregate-{n}", events=[Pinged(f"aggregate-{n}", n)]))
            if n == 1:
                uow.commit()
            else:
                with pytest.raises(AlreadyHandled):
                    uow.commit()

    assert [e["data"]["n"] for e in events_in(container, "product") if e["type"] == Pinged.TYPE] == [1]
    assert available(container, product["id"]) == 9


# -- 2. per-subscriber tracking and isolation ----------------------------------------------


def test_each_subscriber_is_tracked_on_its_own_until_it_completes_or_dies(container: ApplicationContainer) -> None:
    bus = container.event_bus()
    healthy: list[int] = []
    flaky: list[int] = []
    doomed: list[int] = []
    broken = {"flaky": True}

    def on_flaky(event: Pinged, delivery: Delivery) -> None:
        if broken["flaky"]:
            raise Broken("flaky is down")
        flaky.append(event.n)

    def on_doomed(event: Pinged, delivery: Delivery) -> None:
        doomed.append(event.n)
        raise Broken(f"doomed failed attempt {len(doomed)}")

    bus.subscribe(Pinged, lambda event, _delivery: healthy.append(event.n), name="test.healthy")
    bus.subscribe(Pinged, on_flaky, name="test.flaky")
    bus.subscribe(Pinged, on_doomed, name="test.doomed")
    run = dispatcher(container, max_attempts=3)
    publish(container, Pinged("a", 1))

    assert run.run_until_idle() == 3
    assert healthy == [1]
    done = delivery(container, "test.healthy", 1)
    assert (done.status, done.attempts, done.last_error, done.claimed_until) == (DONE, 1, None, None)
    assert done.completed_at is not None
    for name in ("test.flaky", "test.doomed"):
        failed = delivery(container, name, 1)
        assert (failed.status, failed.attempts, failed.completed_at) == (PENDING, 1, None)
        assert "Broken" in failed.last_error
    assert "flaky is down" in delivery(container, "test.flaky", 1).last_error
    assert run.run_until_idle() == 0, "a retry waits for its backoff"

    broken["flaky"] = False
    make_due(container)
    assert run.run_until_idle() == 2
    recovered = delivery(container, "test.flaky", 1)
    assert (recovered.status, recovered.attempts, recovered.last_error) == (DONE, 2, None)
    assert flaky == [1]

    make_due(container)
    assert run.run_until_idle() == 1
    dead = delivery(container, "test.doomed", 1)
    assert (dead.status, dead.attempts, dead.completed_at) == (DEAD, 3, None)
    assert dead.last_error.strip().splitlines()[-1].endswith("doomed failed attempt 3"), "the last error is kept"

    make_due(container)
    assert run.run_until_idle() == 0, "a dead letter is not retried by itself"
    assert (healthy, flaky, doomed) == ([1], [1], [1, 1, 1])
    assert delivery(container, "test.healthy", 1).attempts == 1


def test_a_delivery_dies_after_the_configured_attempts_with_short_backoff(make_app: Callable[..., Flask]) -> None:
    """The app's own dispatcher, as configured by EVENTS_*: retried by itself, dead at the max."""
    container = container_of(
        make_app(events_retry_base_seconds=0.01, events_retry_max_seconds=0.05, events_max_attempts=3)
    )
    calls: list[int] = []

    def always_broken(event: Pinged, delivery: Delivery) -> None:
        calls.append(event.n)
        raise Broken(f"attempt {len(calls)}")

    container.event_bus().subscribe(Pinged, always_broken, name="test.always_broken")
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.fine")
    publish(container, Pinged("a", 1))

    def dead() -> bool:
        container.dispatcher().run_until_idle()
        return bool(delivery(container, "test.always_broken", 1).status == DEAD)

    eventually(dead, "the delivery to be dead")
    row = delivery(container, "test.always_broken", 1)
    assert (row.attempts, calls) == (3, [1, 1, 1])
    assert row.last_error.strip().endswith("attempt 3")
    assert delivery(container, "test.fine", 1).status == DONE


# -- 3. backoff ----------------------------------------------------------------------------


def test_a_failed_delivery_is_not_due_before_its_backoff_which_grows(container: ApplicationContainer) -> None:
    calls: list[int] = []

    def broken(event: Pinged, delivery: Delivery) -> None:
        calls.append(event.n)
        raise Broken("still down")

    container.event_bus().subscribe(Pinged, broken, name="test.broken")
    run = Dispatcher(
        container.dispatcher().outboxes,
        container.event_bus(),
        retry=RetryPolicy(max_attempts=10, base_delay=10.0, max_delay=1000.0),
    )
    publish(container, Pinged("a", 1))

    delays: list[float] = []
    for attempt in (1, 2, 3):
        assert run.run_until_idle() == 1
        row = delivery(container, "test.broken", 1)
        assert (row.status, row.attempts) == (PENDING, attempt)
        delays.append((row.available_at - datetime.now(timezone.utc)).total_seconds())
        assert run.run_until_idle() == 0, "not due before available_at"
        assert order_outbox(container).queue.claim(10, owner="someone-else", lease=timedelta(seconds=60)) == []
        assert len(calls) == attempt
        make_due(container)

    # base 10 s doubling per failure, each drawn from the upper half of its ceiling.
    assert 4 < delays[0] <= 10
    assert 9 < delays[1] <= 20
    assert 19 < delays[2] <= 40
    assert delays[0] < delays[1] < delays[2]


# -- 4. inbox: exactly-once effects --------------------------------------------------------


def inbox_rows(container: ApplicationContainer, subscriber: str) -> list[Any]:
    table = PRODUCT_INBOX
    with databases(container)["product"].session(write=False) as session:
        return list(session.execute(select(table).where(table.c.subscriber == subscriber)))


def test_a_repeated_delivery_is_reported_already_handled_and_has_no_second_effect(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = shop.product(shop.admin(), initial_stock=5)
    order = place_order(client, shop.customer(), product["id"], 2).json
    container.dispatcher().run_until_idle()

    (first,) = deliveries(container, CONFIRM)
    assert (first.status, first.attempts) == (DONE, 1)
    (handled,) = inbox_rows(container, CONFIRM)
    assert handled.event_id == first.event_id
    assert first.envelope["data"]["order_id"] == order["id"]

    d = ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=True) as session:  # as if its outcome was lost
        session.execute(
            update(d)
            .where(d.c.id == first.id)
            .values(status=PENDING, completed_at=None, available_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        )
        session.commit()
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))

    assert container.dispatcher().run_until_idle() >= 1

    (again,) = deliveries(container, CONFIRM)
    assert (again.status, again.attempts, again.last_error) == (DONE, 2, None)
    assert inbox_rows(container, CONFIRM) == [handled]
    assert [event for event, values in records if values.get("subscriber") == CONFIRM] == ["event.already_handled"]
    assert available(container, product["id"]) == 3


def test_running_the_same_claimed_delivery_twice_has_one_effect(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What happens when a lease runs out while the first run is still going: two runs."""
    product = shop.product(shop.admin(), initial_stock=5)
    place_order(client, shop.customer(), product["id"], 1)
    outbox = order_outbox(container)
    (claimed,) = [
        claim
        for claim in outbox.queue.claim(100, owner="test", lease=timedelta(seconds=60))
        if claim.subscriber == CONFIRM
    ]
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))
    run = container.dispatcher()

    assert run.runner.run_delivery(outbox, claimed), "the first run succeeds"
    assert run.runner.run_delivery(outbox, claimed), "the second is a success too: the work was done"
    outbox.queue.complete([claimed])

    assert [event for event, _ in records] == ["event.delivered", "event.already_handled"]
    assert len(inbox_rows(container, CONFIRM)) == 1
    (row,) = deliveries(container, CONFIRM)
    assert (row.status, row.last_error) == (DONE, None)


def test_a_second_commit_in_one_delivery_is_refused_and_rolled_back(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=10)
    product_id = uuid.UUID(product["id"])
    event_id = uuid.uuid4()

    delivery = Delivery("product.test_direct", event_id)

    with container.product.uow() as uow:  # made for no delivery, it records none
        uow.stock.adjust(product_id, -1, "no delivery")
        uow.commit()
    with container.product.uow(delivery=delivery) as uow:
        assert not uow.already_handled()
        uow.stock.adjust(product_id, -2, "first commit")
        uow.commit()
    with container.product.uow(delivery=delivery) as uow:
        assert uow.already_handled()
        uow.stock.adjust(product_id, -3, "second commit")
        with pytest.raises(AlreadyHandled):
            uow.commit()

    assert available(container, product["id"]) == 7
    assert [(row.subscriber, row.event_id) for row in inbox_rows(container, "product.test_direct")] == [
        ("product.test_direct", event_id)
    ]
    with databases(container)["product"].session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(PRODUCT_INBOX)) == 1


# -- 4b. batched subscribers: one transaction for many deliveries ---------------------------

BATCHED = "product.test_batched"


def subscribe_batched(
    container: ApplicationContainer, product_id: str, calls: Counter[int], failing: set[int], sessions: list[Session]
) -> None:
    """A batched subscriber taking one unit of the product's stock per event in the product
    context (so its inbox records it), failing for the events numbered in ``failing`` after
    its change, as a subscriber whose own rule refuses the event would."""

    def take_one(event: Pinged, delivery: Delivery) -> None:
        calls[event.n] += 1
        with container.product.uow(delivery=delivery) as uow:
            sessions.append(uow.session)
            uow.stock.adjust(uuid.UUID(product_id), -1, f"ping {event.n}")
            if event.n in failing:
                raise Broken(f"ping {event.n}")
            uow.commit()

    container.event_bus().subscribe(Pinged, take_one, name=BATCHED, batched=True)
    container.dispatcher().run_until_idle()  # what creating the product and its admin caused


def test_a_batched_subscriber_gets_the_deliveries_of_a_claim_in_one_transaction(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=100)
    calls: Counter[int] = Counter()
    sessions: list[Session] = []
    subscribe_batched(container, product["id"], calls, set(), sessions)
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(6)))

    assert dispatcher(container).run_until_idle() == 6

    assert len(sessions) == 6 and len(set(sessions)) == 1, "the six units of work shared one session"
    assert runner_module.MAX_BATCH >= 6
    assert calls == Counter(range(6))
    assert [(row.status, row.attempts) for row in deliveries(container, BATCHED)] == [(DONE, 1)] * 6
    assert len(inbox_rows(container, BATCHED)) == 6
    assert available(container, product["id"]) == 94


def test_run_until_idle_batches_no_more_than_the_workers_would(shop: Shop, container: ApplicationContainer) -> None:
    """A claim of more deliveries than ``MAX_BATCH`` runs as the workers run it: in batches of
    at most ``MAX_BATCH``, one transaction each."""
    product = shop.product(shop.admin(), initial_stock=100)
    sessions: list[Session] = []
    subscribe_batched(container, product["id"], Counter(), set(), sessions)
    count = runner_module.MAX_BATCH + 2
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(count)))

    assert dispatcher(container).run_until_idle() == count

    assert len(sessions) == count
    assert Counter(Counter(sessions).values()) == Counter({runner_module.MAX_BATCH: 1, 2: 1})
    assert available(container, product["id"]) == 100 - count


def test_a_failure_inside_a_batch_is_retried_alone_and_the_others_take_effect_once(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=100)
    calls: Counter[int] = Counter()
    failing = {3}
    subscribe_batched(container, product["id"], calls, failing, [])
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(6)))
    run = dispatcher(container)

    run.run_until_idle()

    # The batch ran up to the failure and was rolled back, then each delivery ran on its own.
    assert calls == Counter({0: 2, 1: 2, 2: 2, 3: 2, 4: 1, 5: 1})
    rows = {row.envelope["data"]["n"]: row for row in deliveries(container, BATCHED)}
    assert {n: (row.status, row.attempts) for n, row in rows.items()} == {
        n: (PENDING, 1) if n == 3 else (DONE, 1) for n in range(6)
    }
    assert "Broken: ping 3" in rows[3].last_error
    assert {row.event_id for row in inbox_rows(container, BATCHED)} == {rows[n].event_id for n in (0, 1, 2, 4, 5)}
    assert available(container, product["id"]) == 95, "the failed one's change rolled back, the others' made once"

    failing.clear()
    make_due(container)
    assert run.run_until_idle() == 1, "only the failed delivery is due again"
    assert calls == Counter({0: 2, 1: 2, 2: 2, 3: 3, 4: 1, 5: 1})
    assert {row.status for row in deliveries(container, BATCHED)} == {DONE}
    assert available(container, product["id"]) == 94


def test_a_poison_event_in_a_batch_dies_alone(shop: Shop, container: ApplicationContainer) -> None:
    product = shop.product(shop.admin(), initial_stock=100)
    subscribe_batched(container, product["id"], Counter(), {2}, [])
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(4)))

    dispatcher(container, max_attempts=1).run_until_idle()

    assert [(row.envelope["data"]["n"], row.status) for row in deliveries(container, BATCHED)] == [
        (0, DONE),
        (1, DONE),
        (2, DEAD),
        (3, DONE),
    ]
    assert available(container, product["id"]) == 97


def test_a_batch_that_crashed_before_its_completions_has_its_effects_once_when_taken_over(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch committed its effects and inbox rows, then its process died before the
    dispatcher recorded the deliveries done: once the lease lapses, another dispatcher runs
    them again, still as a batch, and each repeat is refused by the inbox in its own savepoint."""
    app = make_app(events_claim_timeout_seconds=1)
    container = container_of(app)
    shop = Shop(app.test_client(), container)
    product = shop.product(shop.admin(), initial_stock=100)
    calls: Counter[int] = Counter()
    subscribe_batched(container, product["id"], calls, set(), [])
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(5)))
    outbox = order_outbox(container)
    lease = timedelta(seconds=container.settings().events_claim_timeout_seconds)
    claimed = outbox.queue.claim(10, owner="crashed-host:1", lease=lease)
    assert dispatcher(container).runner.run_batch(outbox, claimed) == [True] * 5  # and never completed
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))

    eventually(lambda: container.dispatcher().run_until_idle() == 5, "the lapsed claims to be taken over")

    assert calls == Counter({n: 2 for n in range(5)})
    assert [event for event, _ in records] == ["event.already_handled"] * 5, "refused one by one, not run apart"
    assert {row.status for row in deliveries(container, BATCHED)} == {DONE}
    assert len(inbox_rows(container, BATCHED)) == 5
    assert available(container, product["id"]) == 95


def test_the_background_workers_take_a_batched_subscribers_queued_deliveries_together(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=100)
    sessions: list[Session] = []
    subscribe_batched(container, product["id"], Counter(), set(), sessions)
    others: list[int] = []
    container.event_bus().subscribe(Pinged, lambda event, _delivery: others.append(event.n), name="test.listener")
    count = runner_module.MAX_BATCH + 2
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(count)))
    run = dispatcher(container, workers=4, poll_interval=0.02)  # its first claim: 32, all of them
    try:
        run.start()
        eventually(lambda: {row.status for row in deliveries(container)} == {DONE}, "every delivery of the ten events")
    finally:
        run.stop()

    assert len(sessions) == count and len(set(sessions)) == 2, "one claim, two batches: a full one and the rest"
    assert sorted(others) == list(range(count)), "the unbatched subscriber's deliveries kept their places"
    assert available(container, product["id"]) == 100 - count


def test_a_batch_logs_each_delivery_once_it_has_committed(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``event.delivered`` per delivery at DEBUG, as when they run one by one."""
    product = shop.product(shop.admin(), initial_stock=100)
    subscribe_batched(container, product["id"], Counter(), set(), [])
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(3)))
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))

    assert dispatcher(container).run_until_idle() == 3

    delivered = [values for event, values in records if event == "event.delivered"]
    assert sorted((values["subscriber"], values["attempt"]) for values in delivered) == [(BATCHED, 1)] * 3
    assert {values["event_id"] for values in delivered} == {
        row.envelope["id"] for row in deliveries(container, BATCHED)
    }


def test_a_broker_message_is_logged_as_a_dispatcher_delivery_is(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker consumer's handler delivers through the dispatcher's helper: a first delivery
    logs ``event.delivered`` at DEBUG, a redelivered message ``event.already_handled``."""
    product = shop.product(shop.admin(), initial_stock=10)
    subscribe_batched(container, product["id"], Counter(), set(), [])
    publish(container, Pinged("aggregate", 1))
    (envelope,) = [envelope for envelope in events_in(container, "order") if envelope["type"] == Pinged.TYPE]
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))
    handle = runner_module.deliver_from_broker(container.event_bus())

    handle(BATCHED, envelope, 1)
    handle(BATCHED, envelope, 2)

    assert [(event, values["subscriber"], values["event_id"], values["attempt"]) for event, values in records] == [
        ("event.delivered", BATCHED, envelope["id"], 1),
        ("event.already_handled", BATCHED, envelope["id"], 2),
    ]
    assert available(container, product["id"]) == 9


def test_a_failing_after_commit_callback_does_not_run_a_committed_batch_again(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What waits for the commit (waking the dispatcher for the events the batch published)
    runs after it: its failure is logged, and the batch, which took effect, is not retried."""
    product = shop.product(shop.admin(), initial_stock=100)
    calls: Counter[int] = Counter()

    def publish_one(event: Pinged, delivery: Delivery) -> None:
        calls[event.n] += 1
        with container.product.uow(delivery=delivery) as uow:
            uow.stock.adjust(uuid.UUID(product["id"]), -1, f"ping {event.n}")
            uow.seen.append(SimpleNamespace(id=event.key, events=[Pinged(event.key, event.n + 100)]))
            uow.commit()

    def wake_up_that_fails() -> None:
        raise Broken("wake-up")

    container.event_bus().subscribe(Pinged, publish_one, name=BATCHED, batched=True)
    container.product.outbox().on_commit(wake_up_that_fails)
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(3)))
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records))
    outbox = order_outbox(container)
    claimed = [
        claim
        for claim in outbox.queue.claim(100, owner="test", lease=timedelta(seconds=60))
        if claim.subscriber == BATCHED
    ]

    assert dispatcher(container).runner.run_batch(outbox, claimed) == [True] * 3

    assert calls == Counter(range(3)), "each delivery ran once"
    assert "events.batch_run_one_by_one" not in [event for event, _ in records]
    assert [event for event, _ in records].count("events.after_commit_failed") == 1
    assert available(container, product["id"]) == 97


def test_a_batch_whose_rollback_fails_still_gives_the_write_turn_back(
    shop: Shop, container: ApplicationContainer
) -> None:
    """A rollback that raises (a lost connection, a disk I/O error) must not keep the SQLite
    write turn: every later write of the process would wait for it, and time out."""
    product = shop.product(shop.admin(), initial_stock=10)
    product_id = uuid.UUID(product["id"])

    with (
        pytest.raises(Broken, match="disk I/O"),
        shared_transaction() as transaction,
        container.product.uow(delivery=Delivery(BATCHED, uuid.uuid4(), transaction=transaction)) as uow,
    ):
        uow.stock.adjust(product_id, -1, "never committed")

        def failing_rollback() -> None:
            raise Broken("disk I/O error")

        uow.session.rollback = failing_rollback

    started = time.monotonic()
    with container.product.uow() as uow:
        uow.stock.adjust(product_id, -2, "the next write")
        uow.commit()
    assert time.monotonic() - started < 1.0, "the next write waited for the write turn"
    assert available(container, product["id"]) == 8


def test_a_shared_transaction_refuses_a_write_on_a_second_database(shop: Shop, container: ApplicationContainer) -> None:
    """A batched subscriber writes its own context's database: a second one could not commit
    with the first, so it is refused rather than joined, and nothing is written."""
    product = shop.product(shop.admin(), initial_stock=10)
    product_id = uuid.UUID(product["id"])

    with shared_transaction() as transaction:
        delivery = Delivery(BATCHED, uuid.uuid4(), transaction=transaction)
        with container.product.uow(delivery=delivery) as uow:
            uow.stock.adjust(product_id, -1, "in the batch")
            uow.commit()
        with pytest.raises(RuntimeError, match="writes one database"), container.audit.uow(delivery=delivery):
            pass
        with container.order.uow(write=False):
            pass  # reading another database is allowed: reads do not join the transaction

    assert available(container, product["id"]) == 10, "never committed"


def test_the_app_batches_its_database_only_subscribers_on_sqlite_only(
    container: ApplicationContainer, backend: Backend
) -> None:
    """Where writers run one at a time a batch saves commits; on PostgreSQL it would serialise
    what the workers overlap. Never the mails, whose effect is outside the database."""
    bus = container.event_bus()
    on_sqlite = backend.name == "sqlite"
    batched_in_app = {subscription.name for subscription in SUBSCRIPTIONS if subscription.batched}
    assert batched_in_app
    assert {name: bus.batched(name) for name in batched_in_app} == {name: on_sqlite for name in batched_in_app}
    assert not bus.batched("notification.order_confirmation_email")
    assert not bus.batched("notification.welcome_email")


# -- 5. order per aggregate ----------------------------------------------------------------


def test_a_subscriber_gets_one_aggregates_events_in_order_others_are_not_held_back(
    container: ApplicationContainer,
) -> None:
    bus = container.event_bus()
    seen: list[tuple[str, int]] = []
    other: list[tuple[str, int]] = []
    failures = {("a", 1): 1}

    def picky(event: Pinged, delivery: Delivery) -> None:
        seen.append((event.key, event.n))
        if failures.get((event.key, event.n), 0) > 0:
            failures[(event.key, event.n)] -= 1
            raise Broken(f"not yet {event.key}{event.n}")

    bus.subscribe(Pinged, picky, name="test.picky")
    bus.subscribe(Pinged, lambda event, _delivery: other.append((event.key, event.n)), name="test.other")
    run = dispatcher(container)
    publish(container, Pinged("a", 1), Pinged("a", 2), Pinged("b", 3), Pinged("a", 4))

    run.run_until_idle()
    assert seen == [("a", 1), ("b", 3)], "a2 and a4 wait for a1; b is another aggregate"
    assert sorted(other) == [("a", 1), ("a", 2), ("a", 4), ("b", 3)], "the other subscriber is not held back"
    assert [entry for entry in other if entry[0] == "a"] == [("a", 1), ("a", 2), ("a", 4)]
    assert (delivery(container, "test.picky", 2).attempts, delivery(container, "test.picky", 4).attempts) == (0, 0)

    make_due(container)
    run.run_until_idle()
    assert seen == [("a", 1), ("b", 3), ("a", 1), ("a", 2), ("a", 4)]
    assert {row.status for row in deliveries(container)} == {DONE}


def test_a_dead_delivery_holds_back_the_aggregates_later_events_until_retried(
    container: ApplicationContainer,
) -> None:
    seen: list[tuple[str, int]] = []
    down = {"a1": True}

    def picky(event: Pinged, delivery: Delivery) -> None:
        seen.append((event.key, event.n))
        if (event.key, event.n) == ("a", 1) and down["a1"]:
            raise Broken("a1 cannot be handled")

    container.event_bus().subscribe(Pinged, picky, name="test.picky")
    run = dispatcher(container, max_attempts=1)
    publish(container, Pinged("a", 1), Pinged("a", 2), Pinged("b", 3))

    run.run_until_idle()
    assert delivery(container, "test.picky", 1).status == DEAD
    make_due(container)
    assert run.run_until_idle() == 0
    assert seen == [("a", 1), ("b", 3)]
    later = delivery(container, "test.picky", 2)
    assert (later.status, later.attempts) == (PENDING, 0)

    down["a1"] = False
    assert order_outbox(container).ledger.retry() == 1
    run.run_until_idle()
    assert seen == [("a", 1), ("b", 3), ("a", 1), ("a", 2)]


def test_a_subscriber_of_both_order_events_gets_the_cancellation_only_after_the_placement(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    """OrderPlaced then OrderCancelled for one order; the subscriber fails OrderPlaced's first
    attempt. It must not see the cancellation of an order it has not seen placed.

    Fails today: a subscriber name is refused for a second event type (``EventBus.subscribe``),
    and ordering is kept per subscriber name, so a consumer of both events (two names) gets
    OrderCancelled first. See the report for the suggested change to the bus.
    """
    bus = container.event_bus()
    history: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    failures = {"order.OrderPlaced": 1}

    def order_history(event: OrderPlaced | OrderCancelled, delivery: Delivery) -> None:
        history.append((event.TYPE, str(event.order_id)))
        if failures.get(event.TYPE, 0) > 0:
            failures[event.TYPE] -= 1
            raise Broken("history store unavailable")

    def remember(event: OrderPlaced | OrderCancelled, delivery: Delivery) -> None:
        other.append((event.TYPE, str(event.order_id)))

    for event_type in (OrderPlaced, OrderCancelled):
        bus.subscribe(event_type, order_history, name="test.order_history")
        bus.subscribe(event_type, remember, name="test.other")
    product = shop.product(shop.admin())
    customer = shop.customer()
    first = place_order(client, customer, product["id"]).json
    assert client.post(f"/api/v1/orders/{first['id']}/cancel", headers=customer).status_code == 200
    run = dispatcher(container)

    run.run_until_idle()
    assert other == [("order.OrderPlaced", first["id"]), ("order.OrderCancelled", first["id"])]
    assert history == [("order.OrderPlaced", first["id"])]

    second = place_order(client, customer, product["id"]).json
    run.run_until_idle()
    assert history[-1] == ("order.OrderPlaced", second["id"]), "another order is not held back"

    make_due(container)
    run.run_until_idle()
    assert [entry for entry in history if entry[1] == first["id"]] == [
        ("order.OrderPlaced", first["id"]),
        ("order.OrderPlaced", first["id"]),
        ("order.OrderCancelled", first["id"]),
    ]


# -- 6. claims and leases ------------------------------------------------------------------


def test_two_dispatchers_never_run_one_delivery_twice_or_at_once(container: ApplicationContainer) -> None:
    lock = threading.Lock()
    calls: Counter[int] = Counter()
    running: set[int] = set()
    overlapping: list[int] = []
    # Four at once is more than either dispatcher's two workers: both must be running.
    together = threading.Barrier(4)
    met: list[bool] = []

    def slow(event: Pinged, delivery: Delivery) -> None:
        with lock:
            if event.n in running:
                overlapping.append(event.n)
            running.add(event.n)
            calls[event.n] += 1
            first_four = sum(calls.values()) <= 4
        try:
            if first_four:
                together.wait(DEADLINE_SECONDS)
                met.append(True)
            time.sleep(0.005)
        finally:
            with lock:
                running.discard(event.n)

    container.event_bus().subscribe(Pinged, slow, name="test.slow")
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(40)))
    one = dispatcher(container, workers=2, poll_interval=0.02)
    other = dispatcher(container, workers=2, poll_interval=0.02)
    assert one.owner != other.owner
    try:
        one.start()
        other.start()
        eventually(
            lambda: {row.status for row in deliveries(container, "test.slow")} == {DONE}, "all 40 to be delivered"
        )
    finally:
        together.abort()
        one.stop()
        other.stop()

    assert met == [True] * 4, "the two dispatchers ran deliveries at the same time"
    assert overlapping == []
    assert calls == Counter(range(40))
    assert {row.attempts for row in deliveries(container, "test.slow")} == {1}


def test_a_claim_is_not_taken_by_another_dispatcher_while_its_lease_runs(container: ApplicationContainer) -> None:
    calls: list[int] = []
    container.event_bus().subscribe(Pinged, lambda event, _delivery: calls.append(event.n), name="test.listener")
    publish(container, Pinged("a", 1))
    (claimed,) = order_outbox(container).queue.claim(10, owner="crashed-host:1", lease=timedelta(hours=1))

    assert container.dispatcher().run_until_idle() == 0
    assert order_outbox(container).queue.claim(10, owner="another", lease=timedelta(seconds=60)) == []
    row = delivery(container, "test.listener", 1)
    assert (row.id, row.status, row.claimed_by, row.attempts) == (claimed.id, PENDING, "crashed-host:1", 0)
    assert row.claimed_until > datetime.now(timezone.utc)
    assert calls == []


def test_a_claim_whose_owner_died_is_taken_over_once_its_lease_expires(make_app: Callable[..., Flask]) -> None:
    container = container_of(make_app(events_claim_timeout_seconds=1))
    calls: list[int] = []
    container.event_bus().subscribe(Pinged, lambda event, _delivery: calls.append(event.n), name="test.listener")
    publish(container, Pinged("a", 1))
    lease = timedelta(seconds=container.settings().events_claim_timeout_seconds)
    (claimed,) = order_outbox(container).queue.claim(10, owner="crashed-host:1", lease=lease)  # and never settled

    eventually(lambda: container.dispatcher().run_until_idle() == 1, "the expired claim to be taken over")

    assert calls == [1]
    row = delivery(container, "test.listener", 1)
    assert (row.id, row.status, row.attempts, row.claimed_until) == (claimed.id, DONE, 1, None)
    assert row.claimed_by == container.dispatcher().owner, "delivered by the dispatcher that took over"


def test_released_claims_are_due_at_once_for_anyone_and_settled_ones_stay_settled(
    container: ApplicationContainer,
) -> None:
    calls: list[int] = []
    container.event_bus().subscribe(Pinged, lambda event, _delivery: calls.append(event.n), name="test.listener")
    publish(container, Pinged("a", 1), Pinged("b", 2))
    outbox = order_outbox(container)
    first, second = outbox.queue.claim(10, owner="stopping-host", lease=timedelta(hours=1))
    outbox.queue.complete([first])

    outbox.queue.release([first, second])

    assert delivery(container, "test.listener", 1).status == DONE
    row = delivery(container, "test.listener", 2)
    assert (row.status, row.claimed_by, row.claimed_until, row.attempts) == (PENDING, None, None, 0)
    assert container.dispatcher().run_until_idle() == 1
    assert calls == [2]


def test_a_dispatcher_whose_lease_ran_out_cannot_overwrite_the_outcome_of_the_one_that_took_over(
    container: ApplicationContainer,
) -> None:
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, Pinged("a", 1))
    outbox = order_outbox(container)
    (stale,) = outbox.queue.claim(10, owner="slow-host", lease=timedelta(seconds=-1))  # lapsed at once
    (current,) = outbox.queue.claim(10, owner="other-host", lease=timedelta(hours=1))
    assert current.id == stale.id
    outbox.queue.complete([current])

    outbox.queue.fail(stale, "too late to matter", retry_at=None)
    outbox.queue.complete([stale])
    outbox.queue.release([stale])

    row = delivery(container, "test.listener", 1)
    assert (row.status, row.attempts, row.last_error, row.claimed_by) == (DONE, 1, None, "other-host")


def test_a_delivery_running_longer_than_its_lease_is_not_run_again(make_app: Callable[..., Flask]) -> None:
    """The dispatcher renews the leases of what it holds; without that, its own next claim
    would take the still-running delivery again (and so would any other dispatcher)."""
    container = container_of(make_app(events_claim_timeout_seconds=1, events_poll_seconds=0.05))
    calls: list[int] = []

    def slow(event: Pinged, delivery: Delivery) -> None:
        calls.append(event.n)
        time.sleep(2.5)

    container.event_bus().subscribe(Pinged, slow, name="test.slow")
    background = container.dispatcher()
    background.start()
    try:
        publish(container, Pinged("a", 1))
        eventually(lambda: delivery(container, "test.slow", 1).status == DONE, "the slow delivery to complete")
    finally:
        background.stop()
    assert calls == [1]


# -- 7. the background dispatcher ----------------------------------------------------------


def test_a_request_does_not_wait_for_its_subscribers(client: FlaskClient, container: ApplicationContainer) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def blocking(event: UserRegistered, delivery: Delivery) -> None:
        entered.set()
        release.wait(DEADLINE_SECONDS)
        finished.set()

    container.event_bus().subscribe(UserRegistered, blocking, name="test.blocking")
    background = container.dispatcher()
    background.start()
    try:
        response = client.post(
            "/api/v1/users", json={"email": "quick@example.com", "password": "long enough", "name": "Q"}
        )
        assert response.status_code == 201
        assert entered.wait(DEADLINE_SECONDS), "the dispatcher runs the subscriber"
        assert not finished.is_set(), "the response came back while the subscriber was still running"
        (row,) = deliveries(container, "test.blocking", context="user")
        assert (row.status, row.claimed_by) == (PENDING, background.owner)
        assert row.claimed_until is not None

        release.set()
        eventually(
            lambda: deliveries(container, "test.blocking", context="user")[0].status == DONE,
            "the delivery to complete once released",
        )
    finally:
        release.set()
        background.stop()
    assert finished.is_set()


class HeldSubscriber:
    """A subscriber that notes each event's ``n`` and holds its delivery until ``release``."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[int] = []

    def __call__(self, event: Pinged, delivery: Delivery) -> None:
        self.calls.append(event.n)
        self.entered.set()
        self.release.wait(DEADLINE_SECONDS)


def started(background: Dispatcher) -> threading.Thread:
    """Start ``background``; its loop's thread, to wait for its end (not any of that name: one
    another test left would do)."""
    before = set(threading.enumerate())
    background.start()
    (loop,) = [thread for thread in set(threading.enumerate()) - before if thread.name == "event-dispatcher"]
    return loop


def test_stop_lets_the_running_delivery_finish_and_leaves_the_rest_unclaimed(
    make_app: Callable[..., Flask],
) -> None:
    container = container_of(make_app(events_workers=1, events_poll_seconds=0.05))
    blocking = HeldSubscriber()
    container.event_bus().subscribe(Pinged, blocking, name="test.blocking")
    background = container.dispatcher()
    loop = started(background)
    stopper = threading.Thread(target=background.stop)
    try:
        publish(container, Pinged("a", 1), Pinged("b", 2), Pinged("c", 3))
        assert blocking.entered.wait(DEADLINE_SECONDS)
        stopper.start()
        eventually(lambda: not loop.is_alive(), "the dispatcher to stop claiming")
    finally:
        blocking.release.set()
        if stopper.ident is not None:
            stopper.join(DEADLINE_SECONDS)
        background.stop()

    assert blocking.calls == [1]
    rows = deliveries(container, "test.blocking")
    assert [(row.status, row.claimed_by, row.claimed_until) for row in rows] == [
        (DONE, background.owner, None),
        (PENDING, None, None),
        (PENDING, None, None),
    ]
    assert dispatcher(container).run_until_idle() == 2, "another dispatcher takes the rest at once"
    assert blocking.calls == [1, 2, 3]


def test_stop_keeps_renewing_the_leases_of_what_it_holds_until_the_running_delivery_finishes(
    container: ApplicationContainer,
) -> None:
    """The loop, which renews the leases, ends first on stopping: without renewals while the
    running delivery finishes, another dispatcher would take it and run it again (a mail sent
    twice), and the queued one meanwhile; both stay this dispatcher's until it settles them."""
    blocking = HeldSubscriber()
    container.event_bus().subscribe(Pinged, blocking, name="test.blocking")
    background = dispatcher(container, workers=1, lease=timedelta(seconds=1), poll_interval=0.05)
    loop = started(background)
    stopper = threading.Thread(target=background.stop)
    try:
        publish(container, Pinged("a", 1), Pinged("b", 2))  # one claim: 1 runs, 2 waits in the queue
        assert blocking.entered.wait(DEADLINE_SECONDS)
        stopper.start()
        eventually(lambda: not loop.is_alive(), "the dispatcher to stop claiming")
        lease_ends = max(row.claimed_until for row in deliveries(container, "test.blocking"))
        while datetime.now(timezone.utc) < lease_ends + timedelta(seconds=0.3):
            time.sleep(0.05)

        assert stopper.is_alive(), "stop() waits for the running delivery"
        taken = order_outbox(container).queue.claim(10, owner="another-host", lease=timedelta(hours=1))
        assert [claim.envelope["data"]["n"] for claim in taken] == [], "claims taken over while stop() waited"
    finally:
        blocking.release.set()
        if stopper.ident is not None:
            stopper.join(DEADLINE_SECONDS)
        background.stop()

    assert not stopper.is_alive()
    assert blocking.calls == [1]
    rows = deliveries(container, "test.blocking")
    assert [(row.status, row.attempts, row.claimed_by, row.claimed_until) for row in rows] == [
        (DONE, 1, background.owner, None),
        (PENDING, 0, None, None),
    ]


class SlowToStartPool:
    """A thread pool whose workers take up submitted work only once ``gate`` opens, or at
    shutdown: deliveries claimed and queued behind busy workers, made to last."""

    def __init__(self, gate: threading.Event, max_workers: int, thread_name_prefix: str = "") -> None:
        self._gate = gate
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        def gated() -> Any:
            self._gate.wait()
            return fn(*args)

        return self._pool.submit(gated)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._gate.set()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def test_stop_hands_back_claims_that_were_queued_but_not_started(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    monkeypatch.setattr(
        dispatcher_module,
        "ThreadPoolExecutor",
        lambda max_workers, thread_name_prefix: SlowToStartPool(gate, max_workers, thread_name_prefix),
    )
    container = container_of(make_app(events_workers=2, events_poll_seconds=0.05))
    calls: list[int] = []
    container.event_bus().subscribe(Pinged, lambda event, _delivery: calls.append(event.n), name="test.listener")
    background = container.dispatcher()
    background.start()
    try:
        publish(container, Pinged("a", 1), Pinged("b", 2), Pinged("c", 3))
        eventually(
            lambda: [row.claimed_by for row in deliveries(container, "test.listener")].count(background.owner) == 3,
            "all three deliveries to be claimed (the workers' prefetch holds more than three)",
        )
    finally:
        background.stop()

    assert calls == [], "nothing queued was started after stop"
    rows = deliveries(container, "test.listener")
    assert [(row.status, row.attempts, row.claimed_by, row.claimed_until) for row in rows] == [
        (PENDING, 0, None, None)
    ] * 3
    assert dispatcher(container).run_until_idle() == 3, "another dispatcher takes them at once, no lease to wait for"
    assert sorted(calls) == [1, 2, 3]


def count_write_transactions(container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts, by thread name, the write transactions begun on the order database from now on."""
    counts: Counter[str] = Counter()
    database = databases(container)["order"]
    session = database.session

    def counting(*, write: bool) -> Any:
        if write:
            counts[threading.current_thread().name] += 1
        return session(write=write)

    monkeypatch.setattr(database, "session", counting)
    return counts


def record_claims(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every claim that took something, from now on."""
    sizes: list[int] = []
    claim = outbox.queue.claim

    def recording(limit: int, **options: Any) -> Any:
        claimed = claim(limit, **options)
        if claimed:
            sizes.append(len(claimed))
        return claimed

    monkeypatch.setattr(outbox.queue, "claim", recording)
    return sizes


def test_a_burst_of_commits_is_claimed_together_not_one_claim_each(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every commit that records events wakes the dispatcher; in a burst of orders, the wake-ups
    are coalesced: at most one write transaction (claim and completions together) per
    COALESCE_SECONDS, not one claim and one completion per commit competing with the orders'."""
    container = container_of(make_app(events_poll_seconds=10))  # only the commits wake it
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    background = container.dispatcher()
    writes = count_write_transactions(container, monkeypatch)
    background.start()
    try:
        started = time.monotonic()
        for n in range(40):
            publish(container, Pinged(f"aggregate-{n}", n))  # a commit of its own, each a wake-up
        burst = time.monotonic() - started
        eventually(lambda: {row.status for row in deliveries(container, "test.listener")} == {DONE}, "all 40 delivered")
    finally:
        background.stop()

    assert writes["MainThread"] == 40, "one per commit"
    windows = burst / dispatcher_module.COALESCE_SECONDS
    assert windows < 20, f"the burst took {burst:.2f} s: too slow to tell coalesced wake-ups from others"
    assert writes["event-dispatcher"] <= windows + 4, (writes, burst)  # + the first, the last, and slack


def test_a_claim_that_finds_nothing_due_runs_outside_any_transaction(container: ApplicationContainer) -> None:
    """Most claims find nothing: every round looks at every outbox, also those nobody publishes
    to. Such a claim is one statement outside any transaction (on PostgreSQL a BEGIN and a
    ROLLBACK around it are two more round trips per outbox and round), and begins no write."""
    dbapi_connections: list[Any] = []

    def observe(connection: Any, *_args: Any) -> None:
        dbapi = connection.connection.dbapi_connection
        dbapi_connections.append(
            dbapi.in_transaction if isinstance(dbapi, sqlite3.Connection) else dbapi.info.transaction_status
        )

    event.listen(Engine, "after_cursor_execute", observe)
    try:
        claimed = order_outbox(container).queue.claim(10, owner="test", lease=timedelta(seconds=60))
    finally:
        event.remove(Engine, "after_cursor_execute", observe)

    assert claimed == []
    assert len(dbapi_connections) == 1, "one statement"
    assert not dbapi_connections[0], "run outside a transaction (SQLite: False; psycopg: IDLE, 0)"


def test_a_backlog_of_quick_deliveries_is_claimed_in_batches_of_hundreds(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = container_of(make_app(events_workers=2))
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(1500)))
    background = container.dispatcher()
    sizes = record_claims(order_outbox(container), monkeypatch)
    background.start()
    try:
        eventually(lambda: not deliveries_pending(container), "the backlog to be delivered")
    finally:
        background.stop()

    assert sum(sizes) == 1500
    assert sizes[0] == 2 * dispatcher_module.PREFETCH_PER_WORKER, "the first claim knows nothing of the pace"
    assert max(sizes) >= 200, sizes
    assert len(sizes) <= 12, sizes


def test_the_workers_know_of_a_backlog_before_they_start_on_its_first_claim(container: ApplicationContainer) -> None:
    """A claim that took all it asked for means more is waiting. The workers must know it when
    they start: the first of them to run the queue half empty then asks the loop for the next
    claim at once. Learning it only after the loop's round, quick workers that finished first
    took the dispatcher for idle, and the backlog waited for the next coalesced wake-up."""
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(100)))
    run = dispatcher(container, workers=2)
    known_at_start: list[bool] = []

    class Workers:
        def submit(self, _work: Callable[[], None]) -> None:
            known_at_start.append(run._backlog)

    run._pool = Workers()  # type: ignore[assignment]  # records what a worker would see, runs nothing
    run._complete_and_claim()

    assert known_at_start == [True, True]


def test_slow_deliveries_are_claimed_a_few_at_a_time_leaving_the_rest_to_other_dispatchers(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = container_of(make_app(events_workers=2, events_poll_seconds=0.05))
    container.event_bus().subscribe(Pinged, lambda event, _delivery: time.sleep(0.05), name="test.slow")
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(40)))
    background = container.dispatcher()
    sizes = record_claims(order_outbox(container), monkeypatch)
    background.start()
    try:
        eventually(lambda: not deliveries_pending(container), "all 40 delivered")
    finally:
        background.stop()

    assert max(sizes) <= 2 * dispatcher_module.PREFETCH_PER_WORKER, sizes


def test_a_delivery_that_succeeds_logs_nothing_unless_debug_is_on(
    container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building and filtering a log line per delivery cost as much as the rest of a quick one."""
    records: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(runner_module, "logger", RecordingLogger(records, debug=False))
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, Pinged("a", 1), Pinged("b", 2))

    assert dispatcher(container).run_until_idle() == 2

    assert records == []


def deliveries_pending(container: ApplicationContainer) -> int:
    d = ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=False) as session:
        return int(session.scalar(select(func.count()).where(d.c.status == PENDING)) or 0)


# -- 8. pruning ----------------------------------------------------------------------------


def test_prune_deletes_completed_deliveries_and_events_nothing_waits_for(container: ApplicationContainer) -> None:
    def fails_for_2_and_3(event: Pinged, delivery: Delivery) -> None:
        if event.n in (2, 3):
            raise Broken(f"cannot handle {event.n}")

    bus = container.event_bus()
    bus.subscribe(Pinged, lambda event, _delivery: None, name="test.ok")
    bus.subscribe(Pinged, fails_for_2_and_3, name="test.bad")
    run = dispatcher(container, max_attempts=2)
    publish(container, Pinged("a", 1), Pinged("b", 2), Pinged("c", 3))
    run.run_until_idle()
    d = ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=True) as session:  # 2 fails again: dead
        session.execute(
            update(d)
            .where(d.c.id == delivery(container, "test.bad", 2).id)
            .values(available_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        )
        session.commit()
    run.run_until_idle()
    assert delivery(container, "test.bad", 2).status == DEAD
    assert delivery(container, "test.bad", 3).status == PENDING
    cutoff = datetime.now(timezone.utc)
    publish(container, Pinged("d", 4))
    run.run_until_idle()  # completed after the cutoff

    pruned = order_outbox(container).ledger.prune(cutoff)

    assert pruned == 4  # 1 for both subscribers, 2 and 3 for test.ok
    assert sorted((row.envelope["data"]["n"], row.subscriber, row.status) for row in deliveries(container)) == [
        (2, "test.bad", DEAD),
        (3, "test.bad", PENDING),
        (4, "test.bad", DONE),
        (4, "test.ok", DONE),
    ]
    assert [event["data"]["n"] for event in events_in(container, "order")] == [2, 3, 4]
    assert order_outbox(container).ledger.prune(cutoff) == 0


def test_a_persistent_subscriber_is_retried_past_the_attempts_and_never_dead(container: ApplicationContainer) -> None:
    """The relay's deliveries fail while the broker is away, however long: they must resume by
    themselves when it is back, not wait in the dead letters for an operator."""
    away = {"broker": True}

    def relay(event: Pinged, delivery: Delivery) -> None:
        if away["broker"]:
            raise ConnectionError("broker unreachable")

    container.event_bus().subscribe(Pinged, relay, name="test.relay")
    container.event_bus().subscribe(Pinged, relay, name="test.ordinary")
    run = dispatcher(container, max_attempts=2, persistent=("test.relay",))
    publish(container, Pinged("a", 1))

    for _ in range(5):
        make_due(container)
        run.run_until_idle()
    assert delivery(container, "test.ordinary", 1).status == DEAD
    kept = delivery(container, "test.relay", 1)
    assert (kept.status, kept.attempts) == (PENDING, 5)

    away["broker"] = False
    make_due(container)
    assert run.run_until_idle() == 1
    assert delivery(container, "test.relay", 1).status == DONE
