"""Write requests wait while their process's deliveries run behind, and only then.

Without it a shop under more orders than its deliveries keep up with admits them all, and the
delay from an order to its confirmation grows for as long as the load lasts (``bench/README.md``,
"A bounded delivery lag"). The tests hold a delivery in a subscriber that waits for the test,
so that the deliveries queued behind it age past the bound, and release it when they say.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask

from app.containers import ApplicationContainer
from app.factory import container_of
from infrastructure.events.delivery import Delivery
from infrastructure.events.dispatcher import Dispatcher
from tests.conftest import Shop
from tests.integration.test_event_delivery import (
    DEADLINE_SECONDS,
    Pinged,
    dispatcher,
    eventually,
    order_outbox,
    place_order,
    publish,
)

BOUND_SECONDS = 0.2


class Stuck:
    """A subscriber whose deliveries wait until the test lets them go."""

    def __init__(self) -> None:
        self.let_go = threading.Event()
        self.running = threading.Event()

    def __call__(self, event: Pinged, delivery: Delivery) -> None:
        self.running.set()
        self.let_go.wait(DEADLINE_SECONDS)


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    subscriber = Stuck()
    yield subscriber
    subscriber.let_go.set()  # a failed test must not leave the dispatcher's stop waiting


def held_app(make_app: Callable[..., Flask], **overrides: Any) -> tuple[Flask, Shop, dict[str, str], str]:
    """An app whose writes are held past ``BOUND_SECONDS`` of lag, one delivery worker, a
    customer and a product."""
    app = make_app(
        events_workers=1, events_poll_seconds=0.05, events_hold_writes_after_seconds=BOUND_SECONDS, **overrides
    )
    shop = Shop(app.test_client(), container_of(app))
    product = shop.product(shop.admin(), initial_stock=100)
    return app, shop, shop.customer(), str(product["id"])


def fall_behind(container: ApplicationContainer, stuck: Stuck) -> Dispatcher:
    """Start the app's dispatcher with deliveries queued behind a stuck one, until it holds writes."""
    container.event_bus().subscribe(Pinged, stuck, name="test.stuck")
    publish(container, *(Pinged(f"aggregate-{n}", n) for n in range(4)))
    background: Dispatcher = container.dispatcher()
    background.start()
    # The stuck delivery running, not only queued: a stop hands queued deliveries back at once,
    # and on a loaded machine a round may judge the lag before the worker has taken the first.
    assert stuck.running.wait(DEADLINE_SECONDS), "the stuck delivery never started"
    eventually(lambda: not background.wait_until_caught_up(0), "the queued deliveries to age past the bound")
    return background


def test_a_write_waits_while_the_deliveries_run_behind_and_goes_once_they_catch_up(
    make_app: Callable[..., Flask], stuck: Stuck
) -> None:
    app, shop, customer, product_id = held_app(make_app, events_hold_writes_max_seconds=DEADLINE_SECONDS)
    background = fall_behind(shop.container, stuck)
    try:
        with ThreadPoolExecutor(1) as pool:
            order = pool.submit(place_order, app.test_client(), customer, product_id)
            others, started = app.test_client(), time.monotonic()
            assert others.get(f"/api/v1/products/{product_id}").status_code == 200, "a read is never held"
            assert others.head(f"/api/v1/products/{product_id}").status_code == 200
            assert others.post("/api/v1/no-such-thing").status_code == 404, "what matches no endpoint is answered"
            assert time.monotonic() - started < DEADLINE_SECONDS / 2, "none of them was held to the maximum"
            time.sleep(3 * BOUND_SECONDS)
            assert not order.done(), "the order waits while the deliveries run behind"

            stuck.let_go.set()
            assert order.result(DEADLINE_SECONDS).status_code == 201
        eventually(lambda: background.wait_until_caught_up(0), "writes let go once the queue is done")
    finally:
        background.stop()


def test_a_write_is_held_no_longer_than_the_maximum_and_then_served(
    make_app: Callable[..., Flask], stuck: Stuck
) -> None:
    app, shop, customer, product_id = held_app(make_app, events_hold_writes_max_seconds=0.3)
    background = fall_behind(shop.container, stuck)
    try:
        started = time.monotonic()
        response = place_order(app.test_client(), customer, product_id)
        waited = time.monotonic() - started

        assert response.status_code == 201
        assert waited >= 0.3
        assert not background.wait_until_caught_up(0), "served while the deliveries still run behind"
    finally:
        stuck.let_go.set()
        background.stop()


def test_a_dispatcher_whose_loop_ends_holds_no_write(make_app: Callable[..., Flask], stuck: Stuck) -> None:
    """Stopping ends the loop first (no round will judge again), then waits for the stuck
    delivery: the writes go as soon as the loop has ended, not only once the delivery has."""
    _app, shop, _customer, _product_id = held_app(make_app)
    background = fall_behind(shop.container, stuck)
    loop = background._loop
    assert loop is not None
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(background.stop)
        eventually(lambda: not loop.is_alive(), "the dispatcher's loop to end")
        assert background.wait_until_caught_up(0)
        assert not stopping.done(), "stop still waits for the stuck delivery"
        stuck.let_go.set()
        stopping.result(DEADLINE_SECONDS)


def test_writes_are_not_held_where_the_dispatcher_runs_apart(make_app: Callable[..., Flask], stuck: Stuck) -> None:
    """With ``EVENTS_DISPATCH_IN_WEB`` off, the deliveries run in another process (``shop events
    relay``), whose lag this one does not see: the hook is not installed, even though this
    process's own dispatcher (started here by the test) falls behind."""
    app, shop, customer, product_id = held_app(
        make_app, events_dispatch_in_web=False, events_hold_writes_max_seconds=DEADLINE_SECONDS
    )
    background = fall_behind(shop.container, stuck)
    try:
        started = time.monotonic()
        assert place_order(app.test_client(), customer, product_id).status_code == 201
        assert time.monotonic() - started < DEADLINE_SECONDS / 2
    finally:
        stuck.let_go.set()
        background.stop()


class Idle:
    """Stands in for the dispatcher's worker pool: what is claimed stays queued, unstarted."""

    def submit(self, _work: Callable[[], None]) -> None:
        pass


def claim_once(run: Dispatcher) -> None:
    run._pool = Idle()  # type: ignore[assignment]
    run._complete_and_claim()


def queued_past_the_bound(shop: Shop, **options: Any) -> Dispatcher:
    """A dispatcher of the test's own (``options`` for it) holding one first attempt queued,
    unstarted, for twice the bound."""
    container = shop.container
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, Pinged("a", 1))
    time.sleep(2 * BOUND_SECONDS)
    run = dispatcher(container, **{"hold_writes_after": BOUND_SECONDS, **options})
    claim_once(run)
    assert len(run._queue) == 1
    return run


def test_the_lag_is_the_age_of_the_oldest_queued_first_attempt_retries_left_out(shop: Shop) -> None:
    fresh = queued_past_the_bound(shop)
    assert not fresh.wait_until_caught_up(0), "a first attempt queued past the bound holds writes"

    (claimed,) = [delivery for _, delivery in fresh._queue]
    order_outbox(shop.container).queue.fail(claimed, "failed once", retry_at=datetime.now(timezone.utc))
    retried = dispatcher(shop.container, hold_writes_after=BOUND_SECONDS)
    claim_once(retried)
    assert [delivery.attempts for _, delivery in retried._queue] == [1]
    assert retried.wait_until_caught_up(0), "a retry's event is old by design: it holds nothing"


def test_no_bound_holds_nothing(shop: Shop) -> None:
    assert queued_past_the_bound(shop, hold_writes_after=0.0).wait_until_caught_up(0)


def test_events_older_than_a_lease_are_not_this_processes_pace(shop: Shop) -> None:
    """A backlog older than a lease (claims taken over, what an outage left) is not held against
    the requests: holding them would only delay it."""
    run = queued_past_the_bound(shop, lease=timedelta(seconds=1))
    assert not run.wait_until_caught_up(0)

    time.sleep(1.0)
    run._judge_lag()
    assert run.wait_until_caught_up(0)


def test_an_event_whose_time_cannot_be_read_lets_writes_go_and_the_loop_live(shop: Shop) -> None:
    run = queued_past_the_bound(shop)
    assert not run.wait_until_caught_up(0)

    (claimed,) = [delivery for _, delivery in run._queue]
    for unreadable in ("yesterday", None, "2026-12-04T10:00:00"):  # not a time; none; no time zone
        claimed.envelope["occurred_at"] = unreadable
        run._caught_up.clear()
        run._judge_lag()
        assert run.wait_until_caught_up(0), unreadable
