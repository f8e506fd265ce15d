"""Every writer of stock and reservations at once, on PostgreSQL where they really overlap:
twins of held reservations (their lines in both orders, so both the one-statement and the
step path run), new reservations of one to three lines, releases, confirmations, expiry and
stock adjustments up and down. Each writer takes stock rows before the reservation's key, or
locks the reservation before its stock and meets no one waiting the other way round, so none
may deadlock; and what the stock counts as reserved must be exactly what held reservations
hold. (SQLite runs one writer at a time: there is nothing to interleave.)"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.containers import ApplicationContainer, databases
from contexts.product.adapters.orm import ReservationLineRow, ReservationRow, StockRow
from contexts.product.api import InsufficientStock, ReservationConflict, ReservationLine
from contexts.product.application.handlers import (
    AdjustStock,
    ConfirmReservation,
    ExpireReservations,
    ExpireReservationsHandler,
    ReleaseStock,
)
from contexts.product.domain.exceptions import ReservationLapsed, StockWouldGoNegative
from tests.conftest import Shop
from tests.together import run_together

pytestmark = pytest.mark.usefixtures("backend")

# What a writer may answer when another got there first; anything else is a defect. A
# confirmation the sweep beat to its reservation, whose stock others then took, lapses.
REFUSALS = (ReservationConflict, InsufficientStock, StockWouldGoNegative, ReservationLapsed)


def held(container: ApplicationContainer) -> dict[uuid.UUID, int]:
    """Units per product that reserved or confirmed reservations hold."""
    with databases(container)["product"].session(write=False) as session:
        rows = session.execute(
            select(ReservationLineRow.product_id, func.sum(ReservationLineRow.quantity))
            .join(ReservationRow, ReservationRow.id == ReservationLineRow.reservation_id)
            .where(ReservationRow.status.in_(["reserved", "confirmed"]))
            .group_by(ReservationLineRow.product_id)
        ).all()
    return {product_id: int(total) for product_id, total in rows}


def stock(container: ApplicationContainer) -> dict[uuid.UUID, tuple[int, int]]:
    with databases(container)["product"].session(write=False) as session:
        return {row.product_id: (row.available, row.reserved) for row in session.scalars(select(StockRow))}


@pytest.mark.parametrize("seed", range(5))
def test_every_writer_at_once_never_deadlocks_and_reserved_stock_is_what_reservations_hold(
    shop: Shop, container: ApplicationContainer, seed: int
) -> None:
    if databases(container)["product"].engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: nothing interleaves")
    admin = shop.admin()
    products = sorted(uuid.UUID(shop.product(admin, initial_stock=6)["id"]) for _ in range(3))
    api, chance = container.product.api(), random.Random(seed)

    def some_lines() -> list[ReservationLine]:
        return [ReservationLine(product_id, 1) for product_id in chance.sample(products, chance.choice([1, 2, 3]))]

    held_before = [(uuid.uuid4(), some_lines()) for _ in range(4)]
    for reservation_id, lines in held_before:
        api.reserve(reservation_id, lines)
    release, confirm = container.product.release_stock(), container.product.confirm_reservation()
    # Everything unconfirmed is overdue for this one.
    expire = ExpireReservationsHandler(uow=container.product.uow, ttl=timedelta(seconds=-1))
    adjust = container.product.adjust_stock()

    calls: list[Callable[[], object]] = []
    for reservation_id, lines in held_before:
        calls += [
            lambda r=reservation_id, ls=lines: api.reserve(r, ls),
            lambda r=reservation_id, ls=lines[::-1]: api.reserve(r, ls),
            lambda r=reservation_id: release(ReleaseStock(r, "test")),
            lambda r=reservation_id: confirm(ConfirmReservation(r)),
        ]
    for _ in range(6):
        reservation_id, lines = uuid.uuid4(), some_lines()
        calls += [lambda r=reservation_id, ls=lines: api.reserve(r, ls)] * 2
    for product_id in products:
        calls += [
            lambda p=product_id: adjust(AdjustStock(product_id=p, delta=-1, reason="count")),
            lambda p=product_id: adjust(AdjustStock(product_id=p, delta=2, reason="delivery")),
        ]
    calls.append(lambda: expire(ExpireReservations()))
    chance.shuffle(calls)

    outcomes = run_together(calls)

    assert [outcome for outcome in outcomes if outcome is not None and not isinstance(outcome, REFUSALS)] == []
    holds, levels = held(container), stock(container)
    assert {product_id: levels[product_id][1] for product_id in products} == {
        product_id: holds.get(product_id, 0) for product_id in products
    }
    assert all(levels[product_id][0] >= 0 for product_id in products)
