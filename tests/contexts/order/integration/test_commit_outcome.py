"""An order whose commit's answer was lost is read back before anything is done about its stock,
on real databases.

The connection can drop after the server committed: such an order is placed, and a release
(which is final) would leave it without its stock; and an order not found may still be
committing. Any other failure stored nothing, and its reservation is released at once. The tests
make the order's unit of work fail in each way and look at what the caller and the product
context are left with.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OrderRow
from contexts.order.adapters.unit_of_work import SqlAlchemyOrderUnitOfWork
from contexts.product.adapters.orm import ReservationRow, StockRow
from infrastructure.db.unit_of_work import CommitAnswerLost
from tests.conftest import Shop

pytestmark = pytest.mark.usefixtures("backend")

CAUSE = ConnectionError("server closed the connection unexpectedly")
LOST = CommitAnswerLost("COMMIT", {}, CAUSE, connection_invalidated=True)


def place_with(shop: Shop, monkeypatch: pytest.MonkeyPatch, add_and_commit: Any) -> tuple[Any, str]:
    """The answer to an order of 2 of a product with 5 in stock, placed with ``add_and_commit``
    in the order's unit of work; and the product's id."""
    product_id = shop.product(shop.admin(), initial_stock=5)["id"]
    customer = shop.customer()
    monkeypatch.setattr(SqlAlchemyOrderUnitOfWork, "add_and_commit", add_and_commit)
    body = {"items": [{"product_id": product_id, "quantity": 2}]}
    return shop.client.post("/api/v1/orders", json=body, headers=customer), product_id


def left(container: ApplicationContainer, product_id: str) -> tuple[tuple[int, int], list[str]]:
    """The product's stock (available, reserved) and the reservations' statuses."""
    with databases(container)["product"].session(write=False) as session:
        row = session.get_one(StockRow, uuid.UUID(product_id))
        return (row.available, row.reserved), list(session.scalars(select(ReservationRow.status)))


def test_an_order_stored_though_its_commits_answer_was_lost_is_placed_with_its_stock(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlAlchemyOrderUnitOfWork.add_and_commit

    def store_then_lose_the_answer(uow: SqlAlchemyOrderUnitOfWork, order: Any) -> None:
        store(uow, order)
        raise LOST

    response, product_id = place_with(shop, monkeypatch, store_then_lose_the_answer)

    assert response.status_code == 201, response.json
    with databases(container)["order"].session(write=False) as session:
        assert session.get(OrderRow, uuid.UUID(response.json["id"])) is not None
    assert left(container, product_id) == ((3, 2), ["reserved"]), "held for the order's confirmation"


def lose_the_answer(uow: SqlAlchemyOrderUnitOfWork, order: Any) -> None:
    raise LOST


def test_an_order_whose_saving_cannot_be_told_leaves_its_reservation_to_expire(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    enter = SqlAlchemyOrderUnitOfWork.__enter__

    def unreadable(uow: SqlAlchemyOrderUnitOfWork) -> SqlAlchemyOrderUnitOfWork:
        if not uow._write:
            raise LOST
        return enter(uow)

    monkeypatch.setattr(SqlAlchemyOrderUnitOfWork, "__enter__", unreadable)
    response, product_id = place_with(shop, monkeypatch, lose_the_answer)

    assert response.status_code == 503, response.json
    assert left(container, product_id) == ((3, 2), ["reserved"]), "left to the expiry, not released"


def test_an_order_whose_saving_failed_before_its_commit_gives_its_reservation_back(
    shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(uow: SqlAlchemyOrderUnitOfWork, order: Any) -> None:
        raise OperationalError("INSERT", {}, CAUSE)  # the connection was fine: nothing committed

    response, product_id = place_with(shop, monkeypatch, fail)

    assert response.status_code == 503, response.json
    assert left(container, product_id) == ((5, 0), ["released"])
