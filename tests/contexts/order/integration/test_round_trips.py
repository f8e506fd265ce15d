"""What placing an order costs the database, and that its one-statement commits keep every
guarantee of the steps they replace.

On PostgreSQL each statement, BEGIN and COMMIT is a round trip and a pass through SQLAlchemy
and psycopg: the order's request path was 13 of them in two contexts' transactions (the
reservation's BEGIN, five statements and COMMIT; the products' read; the order's BEGIN, four
INSERTs and COMMIT). A one-line reservation is now ONE statement (its stock taken first, the
reservation, its line, its event and the event's deliveries from the UPDATE's RETURNING) and
an order ONE statement (the order, its lines, its event and deliveries), each committed on its
own. These tests pin those counts, and that twins, concurrent reservations, refusals and the
general (multi-line) path behave as before: no oversell, no deadlock between the two paths, a
twin judged against what the first stored, a refusal that holds and publishes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.adapters.orm import ReservationRow, StockRow
from contexts.product.api import InsufficientStock, ProductNotFound, ReservationConflict, ReservationLine
from infrastructure.events.tables import OutboxTables
from tests.conftest import Shop
from tests.round_trips import counted
from tests.together import run_together

pytestmark = pytest.mark.usefixtures("backend")


def on_postgresql(container: ApplicationContainer) -> bool:
    return databases(container)["product"].engine.dialect.name == "postgresql"


def stock(container: ApplicationContainer, product_id: uuid.UUID) -> tuple[int, int]:
    """(available, reserved) of a product."""
    with databases(container)["product"].session(write=False) as session:
        row = session.get_one(StockRow, product_id)
        return row.available, row.reserved


def recorded(container: ApplicationContainer, context: str, tables: OutboxTables) -> list[tuple[str, list[str]]]:
    """Each event of a context's outbox (its type), with the subscribers it has deliveries for."""
    o, d = tables.outbox, tables.deliveries
    with databases(container)[context].session(write=False) as session:
        events = session.execute(select(o.c.position, o.c.event_type).order_by(o.c.position)).all()
        return [
            (
                event_type,
                sorted(session.scalars(select(d.c.subscriber).where(d.c.event_position == position))),
            )
            for position, event_type in events
        ]


def reservations(container: ApplicationContainer) -> int:
    with databases(container)["product"].session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(ReservationRow)) or 0)


def subscribers(container: ApplicationContainer, event_type: str) -> list[str]:
    return sorted(container.event_bus().subscribers(event_type))


def test_a_one_line_order_is_three_statements_alone_on_postgresql(shop: Shop, container: ApplicationContainer) -> None:
    """The reservation, the products' read and the order: one statement each, outside any
    transaction, where there were nine statements (the products' read alone) and two
    transactions. The order, its event
    and the reservation's event are stored with a delivery per subscriber, as before."""
    customer, product = shop.customer(), shop.product(shop.admin(), initial_stock=10)
    product_id = uuid.UUID(product["id"])
    body = {"items": [{"product_id": product["id"], "quantity": 1}]}
    # The first order also looks up the customer's role (then cached, as under load).
    assert shop.client.post("/api/v1/orders", json=body, headers=customer).status_code == 201
    orders_before = recorded(container, "order", ORDER_OUTBOX)
    products_before = recorded(container, "product", PRODUCT_OUTBOX)

    with counted() as placing:
        response = shop.client.post(
            "/api/v1/orders", json={"items": [{"product_id": product["id"], "quantity": 2}]}, headers=customer
        )

    assert response.status_code == 201, response.json
    if on_postgresql(container):
        assert (placing.kinds(), placing.alone, placing.transactions) == (["WITH", "SELECT", "WITH"], 3, 0)
    else:  # SQLite: a transaction costs no round trip; the steps as they were, stock taken first
        assert placing.kinds() == [
            "UPDATE",
            "INSERT",
            "INSERT",
            "INSERT",
            "SELECT",
            "INSERT",
            "INSERT",
            "INSERT",
            "INSERT",
        ]
    assert stock(container, product_id) == (7, 3)
    assert recorded(container, "order", ORDER_OUTBOX) == [
        *orders_before,
        ("order.OrderPlaced", subscribers(container, "order.OrderPlaced")),
    ]
    assert recorded(container, "product", PRODUCT_OUTBOX) == [
        *products_before,
        ("product.StockReserved", subscribers(container, "product.StockReserved")),
    ]
    order = shop.client.get(f"/api/v1/orders/{response.json['id']}", headers=customer)
    assert order.json == response.json


def test_a_one_line_reservation_is_one_statement_alone_on_postgresql(
    shop: Shop, container: ApplicationContainer
) -> None:
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=5)["id"])
    before = recorded(container, "product", PRODUCT_OUTBOX)

    with counted() as reserving:
        container.product.api().reserve(uuid.uuid4(), [ReservationLine(product_id, 3)])

    if on_postgresql(container):
        assert (reserving.kinds(), reserving.alone, reserving.transactions) == (["WITH"], 1, 0)
    assert stock(container, product_id) == (2, 3)
    assert recorded(container, "product", PRODUCT_OUTBOX) == [
        *before,
        ("product.StockReserved", subscribers(container, "product.StockReserved")),
    ]


def test_a_one_line_reservation_refused_holds_and_publishes_nothing(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The one statement takes no stock and writes nothing; then only why is read, as ever."""
    product = shop.product(shop.admin(), initial_stock=2)
    product_id = uuid.UUID(product["id"])
    before = recorded(container, "product", PRODUCT_OUTBOX)
    api = container.product.api()

    with counted() as refusing, pytest.raises(InsufficientStock) as refused:
        api.reserve(uuid.uuid4(), [ReservationLine(product_id, 3)])
    assert (refused.value.product_id, refused.value.sku, refused.value.requested) == (product_id, product["sku"], 3)
    if on_postgresql(container):
        # The one statement tried the stock; the refusal only reads why (no second try).
        assert refusing.kinds() == ["WITH", "SELECT", "SELECT"]
    missing = uuid.uuid4()
    with pytest.raises(ProductNotFound) as unknown:
        api.reserve(uuid.uuid4(), [ReservationLine(missing, 1)])
    assert unknown.value.product_ids == (missing,)

    assert stock(container, product_id) == (2, 0)
    assert reservations(container) == 0
    assert recorded(container, "product", PRODUCT_OUTBOX) == before


def test_a_twin_of_a_one_line_reservation_is_judged_against_what_the_first_stored(
    shop: Shop, container: ApplicationContainer
) -> None:
    """The same call again changes nothing, even with no stock left to take (the first took
    it); other lines under the id, or the id of a released reservation, are a conflict."""
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=3)["id"])
    api, reservation_id = container.product.api(), uuid.uuid4()
    api.reserve(reservation_id, [ReservationLine(product_id, 2)])
    before = recorded(container, "product", PRODUCT_OUTBOX)

    api.reserve(reservation_id, [ReservationLine(product_id, 2)])  # stock there: the key refuses it
    api.reserve(reservation_id, [ReservationLine(product_id, 1), ReservationLine(product_id, 1)])
    assert stock(container, product_id) == (1, 2)
    api.reserve(uuid.uuid4(), [ReservationLine(product_id, 1)])
    api.reserve(reservation_id, [ReservationLine(product_id, 2)])  # no stock left to take
    with pytest.raises(ReservationConflict):
        api.reserve(reservation_id, [ReservationLine(product_id, 1)])
    api.release(reservation_id, reason="test")
    with pytest.raises(ReservationConflict):
        api.reserve(reservation_id, [ReservationLine(product_id, 2)])

    assert stock(container, product_id) == (2, 1)
    assert [event for event, _ in recorded(container, "product", PRODUCT_OUTBOX)[len(before) :]] == [
        "product.StockReserved",
        "product.StockReleased",
    ]


def test_a_fault_in_the_one_statement_is_raised_not_judged_as_a_twin(
    shop: Shop, container: ApplicationContainer
) -> None:
    """Only the reservation's key makes a twin: any other refusal of the one statement (here a
    check the reservation row breaks) is a fault that reaches the caller as it is, not a
    ReservationConflict about an id nobody used, and nothing is written."""
    if not on_postgresql(container):
        pytest.skip("the one-statement reservation is PostgreSQL's")
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=5)["id"])
    with databases(container)["product"].begin(write=True) as connection:
        connection.exec_driver_sql(
            "ALTER TABLE product_reservations ADD CONSTRAINT ck_test_refuses CHECK (status <> 'reserved') NOT VALID"
        )

    with pytest.raises(IntegrityError, match="ck_test_refuses"):
        container.product.api().reserve(uuid.uuid4(), [ReservationLine(product_id, 1)])

    assert stock(container, product_id) == (5, 0)
    assert reservations(container) == 0


def test_concurrent_twins_reserve_once(shop: Shop, container: ApplicationContainer) -> None:
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=10)["id"])
    api, reservation_id = container.product.api(), uuid.uuid4()
    before = recorded(container, "product", PRODUCT_OUTBOX)

    outcomes = run_together([lambda: api.reserve(reservation_id, [ReservationLine(product_id, 3)])] * 6)

    assert outcomes == [None] * 6
    assert stock(container, product_id) == (7, 3)
    assert len(recorded(container, "product", PRODUCT_OUTBOX)) == len(before) + 1


def test_concurrent_reservations_of_scarce_stock_never_oversell(shop: Shop, container: ApplicationContainer) -> None:
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=4)["id"])
    api = container.product.api()

    def reserve_one() -> None:
        api.reserve(uuid.uuid4(), [ReservationLine(product_id, 1)])

    outcomes = run_together([reserve_one] * 10)

    assert sum(outcome is None for outcome in outcomes) == 4
    assert all(outcome is None or isinstance(outcome, InsufficientStock) for outcome in outcomes), outcomes
    assert stock(container, product_id) == (0, 4)
    assert reservations(container) == 4


def test_the_one_statement_and_the_steps_lock_in_one_order(shop: Shop, container: ApplicationContainer) -> None:
    """Calls under one id, some of one line (the one statement) and some of two (the steps),
    at once: stock rows first and the reservation's key last in both ways, so none deadlocks
    (PostgreSQL would abort one: an error that is none of the refusals). One of them reserves;
    every other is its twin or a conflict with it."""
    admin = shop.admin()
    first, second = (uuid.UUID(shop.product(admin, initial_stock=50)["id"]) for _ in range(2))
    api = container.product.api()
    calls: list[Callable[[], None]] = []
    for _ in range(4):
        reservation_id = uuid.uuid4()
        one_line: list[Any] = [ReservationLine(second, 1)]
        two_lines: list[Any] = [ReservationLine(first, 1), ReservationLine(second, 1)]
        calls += [
            lambda r=reservation_id, lines=one_line: api.reserve(r, lines),
            lambda r=reservation_id, lines=two_lines: api.reserve(r, lines),
        ] * 3

    outcomes = run_together(calls)

    assert all(outcome is None or isinstance(outcome, ReservationConflict) for outcome in outcomes), outcomes
    assert reservations(container) == 4
    (available_first, reserved_first), (available_second, reserved_second) = (
        stock(container, first),
        stock(container, second),
    )
    assert available_first + reserved_first == available_second + reserved_second == 50
    assert reserved_second == 4, "each reservation holds its lines once"
