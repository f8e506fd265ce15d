"""A connection lost while a one-statement commit runs (its server process terminated while the
statement waits on a lock), on PostgreSQL: the statement is the whole transaction, so nothing of
it is stored — no stock taken, no reservation, no event. An order whose statement is lost
answers 503; since the shop cannot tell that its commit did not land (it finds no order, but a
commit may still be running), its reservation is left to expire, as when a COMMIT of the steps
was lost."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.adapters.orm import OrderRow
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.adapters.orm import ReservationRow, StockRow
from contexts.product.api import ReservationLine
from infrastructure.db.database import quoted_schema
from tests.conftest import Shop

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(autouse=True)
def _postgresql_only(container: ApplicationContainer) -> None:
    if databases(container)["product"].engine.dialect.name != "postgresql":
        pytest.skip("the one-statement commits are PostgreSQL's")


def rows(container: ApplicationContainer, context: str, table: Table | type[OrderRow] | type[ReservationRow]) -> int:
    with databases(container)[context].session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def stock(container: ApplicationContainer, product_id: uuid.UUID) -> tuple[int, int]:
    with databases(container)["product"].session(write=False) as session:
        row = session.get_one(StockRow, product_id)
        return row.available, row.reserved


def terminate_the_waiting_statement(container: ApplicationContainer, holder: Session) -> None:
    """Terminate the server process of the statement that waits on ``holder``'s lock.

    Only a process that ``holder`` blocks: other tests on the same server may be waiting on locks
    of their own at the same moment."""
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    waiting = text("SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))")
    with databases(container)["product"].autocommit() as connection:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = connection.execute(waiting, {"holder": holder_pid}).scalars().all()
            if pids:
                for pid in pids:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                return
            time.sleep(0.05)
    raise AssertionError("no statement waited on the holder's lock")


def test_a_reservation_whose_connection_is_lost_stores_nothing(shop: Shop, container: ApplicationContainer) -> None:
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=5)["id"])
    events_before = rows(container, "product", PRODUCT_OUTBOX.outbox)
    errors: list[BaseException] = []

    def reserve() -> None:
        try:
            container.product.api().reserve(uuid.uuid4(), [ReservationLine(product_id, 2)])
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    with databases(container)["product"].session(write=True) as holder:
        holder.execute(select(StockRow).where(StockRow.product_id == product_id).with_for_update())
        reserving = threading.Thread(target=reserve)
        reserving.start()
        terminate_the_waiting_statement(container, holder)
        reserving.join(30)
        holder.rollback()

    assert [type(error) for error in errors if not isinstance(error, DBAPIError)] == [] and len(errors) == 1
    assert stock(container, product_id) == (5, 0)
    assert rows(container, "product", ReservationRow) == 0
    assert rows(container, "product", PRODUCT_OUTBOX.outbox) == events_before


def test_an_order_whose_connection_is_lost_answers_503_and_leaves_its_reservation_to_expire(
    shop: Shop, container: ApplicationContainer
) -> None:
    product_id = uuid.UUID(shop.product(shop.admin(), initial_stock=5)["id"])
    customer = shop.customer()
    events_before = rows(container, "order", ORDER_OUTBOX.outbox)
    orders = databases(container)["order"]
    answers: list[int] = []

    def place() -> None:
        body = {"items": [{"product_id": str(product_id), "quantity": 2}]}
        answers.append(shop.client.post("/api/v1/orders", json=body, headers=customer).status_code)

    with orders.session(write=True) as holder:
        # The order's INSERT waits for this lock, and is terminated while it waits.
        schema = quoted_schema(orders.engine, orders.schema or "public")
        holder.execute(text(f"LOCK TABLE {schema}.order_orders IN SHARE MODE"))
        placing = threading.Thread(target=place)
        placing.start()
        terminate_the_waiting_statement(container, holder)
        placing.join(30)
        holder.rollback()

    assert answers == [503]
    assert rows(container, "order", OrderRow) == 0
    assert rows(container, "order", ORDER_OUTBOX.outbox) == events_before
    assert stock(container, product_id) == (3, 2)
    with databases(container)["product"].session(write=False) as session:
        assert session.scalars(select(ReservationRow.status)).all() == ["reserved"]
