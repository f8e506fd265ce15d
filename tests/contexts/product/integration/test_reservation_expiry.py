"""Stock reservations that no placed order confirmed are released by the expiry sweep, and a
placement delivered late (after the sweep) takes the stock again, or fails visibly when it is
gone: never an oversell. Reservations are made old by moving their ``created_at`` back.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.background import BackgroundWork
from app.containers import ApplicationContainer, databases
from app.factory import container_of
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.adapters.orm import ReservationRow, StockRow
from contexts.product.api import ReservationLine
from contexts.product.application.handlers import ConfirmReservation, ExpireReservations
from contexts.product.domain.model import ReservationStatus
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from infrastructure.events.delivery import Delivery
from infrastructure.events.inbox import AlreadyHandled
from infrastructure.events.tables import DEAD, DONE
from tests.conftest import Shop
from tests.round_trips import counted

CONFIRM = "product.confirm_reservation"
DEADLINE_SECONDS = 30.0


def shop_of(app: Flask) -> Shop:
    return Shop(app.test_client(), container_of(app))


def age(container: ApplicationContainer, reservation_id: uuid.UUID | str, by: timedelta = timedelta(hours=1)) -> None:
    """Make a reservation older than the time-to-live, as if it had been made ``by`` ago."""
    with databases(container)["product"].session(write=True) as session:
        session.execute(
            update(ReservationRow)
            .where(ReservationRow.id == uuid.UUID(str(reservation_id)))
            .values(created_at=datetime.now(timezone.utc) - by)
        )
        session.commit()


def status(container: ApplicationContainer, reservation_id: uuid.UUID | str) -> ReservationStatus:
    with container.product.uow(write=False) as uow:
        reservation = uow.reservations.get(uuid.UUID(str(reservation_id)))
    assert reservation is not None
    found: ReservationStatus = reservation.status
    return found


def stock(container: ApplicationContainer, product: dict[str, Any]) -> tuple[int, int]:
    """(available, reserved) of a product."""
    with databases(container)["product"].session(write=False) as session:
        row = session.get_one(StockRow, uuid.UUID(product["id"]))
        return row.available, row.reserved


def product_events(container: ApplicationContainer, event_type: str) -> list[dict[str, Any]]:
    o = PRODUCT_OUTBOX.outbox
    with databases(container)["product"].session(write=False) as session:
        envelopes = session.scalars(select(o.c.envelope).order_by(o.c.position)).all()
    return [envelope["data"] for envelope in envelopes if envelope["type"] == event_type]


def reserved_events(container: ApplicationContainer) -> list[dict[str, Any]]:
    return product_events(container, "product.StockReserved")


def released_events(container: ApplicationContainer) -> list[dict[str, Any]]:
    return product_events(container, "product.StockReleased")


def confirmations(container: ApplicationContainer) -> list[Any]:
    d, o = ORDER_OUTBOX.deliveries, ORDER_OUTBOX.outbox
    query = (
        select(d, o.c.envelope)
        .join(o, o.c.position == d.c.event_position)
        .where(d.c.subscriber == CONFIRM)
        .order_by(d.c.event_position)
    )
    with databases(container)["order"].session(write=False) as session:
        return list(session.execute(query))


def test_a_reservation_no_order_confirmed_is_released_once_past_its_ttl(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=10)
    product_id = uuid.UUID(product["id"])
    stale, fresh = uuid.uuid4(), uuid.uuid4()
    api = container.product.api()
    api.reserve(stale, [ReservationLine(product_id, 3)])
    api.reserve(fresh, [ReservationLine(product_id, 2)])
    age(container, stale)
    age(container, fresh, by=timedelta(seconds=container.settings().reservation_ttl_seconds - 60))
    expire = container.product.expire_reservations()

    assert expire(ExpireReservations()) == 1
    assert status(container, stale) is ReservationStatus.EXPIRED
    assert status(container, fresh) is ReservationStatus.RESERVED
    assert stock(container, product) == (8, 2)
    assert released_events(container) == [
        {"reservation_id": str(stale), "lines": [{"product_id": product["id"], "quantity": 3}], "reason": "expired"}
    ]

    assert expire(ExpireReservations()) == 0, "the sweep is idempotent"
    assert stock(container, product) == (8, 2)
    assert len(released_events(container)) == 1


def test_a_reservation_confirmed_by_its_placed_order_never_expires(shop: Shop, container: ApplicationContainer) -> None:
    product = shop.product(shop.admin(), initial_stock=10)
    order = shop.placed(shop.customer(), product, 2)
    container.dispatcher().run_until_idle()
    assert status(container, order["id"]) is ReservationStatus.CONFIRMED
    age(container, order["id"], by=timedelta(days=30))

    assert container.product.expire_reservations()(ExpireReservations()) == 0

    assert status(container, order["id"]) is ReservationStatus.CONFIRMED
    assert stock(container, product) == (8, 2)
    assert released_events(container) == []


def test_confirming_a_reservation_still_reserved_is_one_update_beside_its_inbox_row(
    shop: Shop, container: ApplicationContainer
) -> None:
    """Every placed order's confirmation: one conditional UPDATE, not a read of the reservation
    and its lines before the write (two round trips more on PostgreSQL, per order); on
    PostgreSQL with the inbox row in the same statement, on its own (the UPDATE in a WITH)."""
    product = shop.product(shop.admin(), initial_stock=10)
    reservation = uuid.uuid4()
    container.product.api().reserve(reservation, [ReservationLine(uuid.UUID(product["id"]), 3)])

    with counted() as confirming:
        container.product.confirm_reservation()(
            ConfirmReservation(reservation), delivery=Delivery(CONFIRM, uuid.uuid4())
        )

    if databases(container)["product"].engine.dialect.name == "postgresql":
        assert (confirming.kinds(), confirming.alone, confirming.transactions) == (["WITH"], 1, 0)
    else:
        assert (confirming.kinds(), confirming.alone, confirming.transactions) == (["UPDATE", "INSERT"], 0, 1)
    assert status(container, reservation) is ReservationStatus.CONFIRMED
    assert stock(container, product) == (7, 3)
    assert reserved_events(container) == [
        {"reservation_id": str(reservation), "lines": [{"product_id": product["id"], "quantity": 3}]}
    ], "confirmed as it was reserved: no second StockReserved"


def test_a_confirmation_delivered_again_changes_nothing_and_is_refused_by_the_inbox(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The repeat finds the reservation confirmed already: the one-statement path changes no row
    and records nothing, and the reservation read whole is refused by the inbox at its commit."""
    product = shop.product(shop.admin(), initial_stock=10)
    reservation = uuid.uuid4()
    container.product.api().reserve(reservation, [ReservationLine(uuid.UUID(product["id"]), 3)])
    delivery = Delivery(CONFIRM, uuid.uuid4())

    container.product.confirm_reservation()(ConfirmReservation(reservation), delivery=delivery)
    with pytest.raises(AlreadyHandled):
        container.product.confirm_reservation()(ConfirmReservation(reservation), delivery=delivery)

    assert status(container, reservation) is ReservationStatus.CONFIRMED
    assert stock(container, product) == (7, 3)


def test_an_order_placed_delivered_after_the_sweep_takes_the_stock_again(
    shop: Shop, container: ApplicationContainer
) -> None:
    product = shop.product(shop.admin(), initial_stock=10)
    order = shop.placed(shop.customer(), product, 3)
    age(container, order["id"])  # the dispatcher was down longer than the time-to-live
    assert container.product.expire_reservations()(ExpireReservations()) == 1
    assert (status(container, order["id"]), stock(container, product)) == (ReservationStatus.EXPIRED, (10, 0))

    container.dispatcher().run_until_idle()

    assert status(container, order["id"]) is ReservationStatus.CONFIRMED
    assert stock(container, product) == (7, 3)
    taken = {"reservation_id": order["id"], "lines": [{"product_id": product["id"], "quantity": 3}]}
    assert reserved_events(container) == [taken, taken], "taking the stock again is a fact, as the release was"
    (confirmed,) = confirmations(container)
    assert (confirmed.status, confirmed.attempts, confirmed.last_error) == (DONE, 1, None)


def test_an_order_cancelled_after_the_sweep_is_not_taken_again_by_its_late_placement(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The confirmation was held up past the time-to-live (its subscriber elsewhere, the broker
    away), and the customer cancelled meanwhile: the late confirmation must not take stock."""
    product = shop.product(shop.admin(), initial_stock=10)
    customer = shop.customer()
    order = shop.placed(customer, product, 3)
    age(container, order["id"])
    assert container.product.expire_reservations()(ExpireReservations()) == 1

    container.product.api().release(uuid.UUID(order["id"]), "order_cancelled")
    container.product.confirm_reservation()(ConfirmReservation(uuid.UUID(order["id"])))

    assert status(container, order["id"]) is ReservationStatus.RELEASED
    assert stock(container, product) == (10, 0)


def test_a_lapsed_reservation_whose_stock_was_sold_ends_dead_and_never_oversells(
    make_app: Any,
) -> None:
    app = make_app(events_retry_base_seconds=0.01, events_retry_max_seconds=0.05, events_max_attempts=3)
    container, shop = container_of(app), shop_of(app)
    product = shop.product(shop.admin(), initial_stock=3)
    late = shop.placed(shop.customer(), product, 3)
    age(container, late["id"])
    assert container.product.expire_reservations()(ExpireReservations()) == 1
    sold = shop.placed(shop.customer(), product, 3)  # the released stock is sold to someone else
    assert stock(container, product) == (0, 3)

    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        container.dispatcher().run_until_idle()
        seen.append(stock(container, product))
        lapsed = next(row for row in confirmations(container) if row.envelope["data"]["order_id"] == late["id"])
        if lapsed.status == DEAD:
            break
        assert time.monotonic() < deadline, "the lapsed confirmation never became a dead letter"
        time.sleep(0.02)

    assert lapsed.attempts == 3
    assert "ReservationLapsed" in lapsed.last_error
    assert f"reservation {late['id']} expired" in lapsed.last_error
    assert all(available >= 0 for available, _ in seen)
    assert stock(container, product) == (0, 3)
    assert status(container, late["id"]) is ReservationStatus.EXPIRED
    assert status(container, sold["id"]) is ReservationStatus.CONFIRMED


def test_maintenance_expires_reservations_and_prunes_completed_deliveries(make_app: Any) -> None:
    app = make_app(events_retention_hours=0)
    container, shop = container_of(app), shop_of(app)
    product = shop.product(shop.admin(), initial_stock=10)
    order = shop.placed(shop.customer(), product, 1)
    container.dispatcher().run_until_idle()
    stranded = uuid.uuid4()
    container.product.api().reserve(stranded, [ReservationLine(uuid.UUID(product["id"]), 4)])
    age(container, stranded)

    def done_deliveries() -> int:
        count = 0
        for context, tables in (("user", USER_OUTBOX), ("order", ORDER_OUTBOX)):
            d = tables.deliveries
            with databases(container)[context].session(write=False) as session:
                count += len(session.execute(select(d.c.id).where(d.c.status == DONE)).all())
        return count

    assert done_deliveries() > 0
    assert status(container, order["id"]) is ReservationStatus.CONFIRMED

    BackgroundWork(container).maintain()

    assert status(container, stranded) is ReservationStatus.EXPIRED
    assert stock(container, product) == (9, 1)
    registry = container.metrics().registry
    assert registry is not None
    assert registry.get_sample_value("shop_periodic_handled_total", {"task": "reservations_expired"}) == 1
    assert done_deliveries() == 0
    o, d = ORDER_OUTBOX.outbox, ORDER_OUTBOX.deliveries
    with databases(container)["order"].session(write=False) as session:
        events = set(session.scalars(select(o.c.position)))
        awaited = set(session.scalars(select(d.c.event_position)))
    assert events == awaited, "events nothing waits for went with their deliveries"
