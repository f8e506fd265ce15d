"""Every implementation of the published OrderApi keeps its contract: an order by id as an
OrderDTO with its lines, and OrderNotFound for an id no order has."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contexts.order.api import OrderDTO, OrderLineDTO, OrderNotFound
from tests.contexts.conftest import OrderHarness


def test_get_order_returns_the_order_as_a_dto(order_harness: OrderHarness) -> None:
    placed = order_harness.place_order(price="12.50", quantity=2)
    order = order_harness.api.get_order(placed.order_id)
    assert isinstance(order, OrderDTO)
    assert (order.id, order.user_id, order.status) == (placed.order_id, placed.user_id, "placed")
    assert (order.total, order.currency) == (Decimal("25.00"), "USD")
    (line,) = order.items
    assert isinstance(line, OrderLineDTO)
    assert (line.product_id, line.unit_price, line.quantity, line.line_total) == (
        placed.product_id, Decimal("12.50"), 2, Decimal("25.00")
    )
    assert order.created_at.utcoffset() is not None, "created_at must be an aware time"


def test_get_order_tells_orders_apart(order_harness: OrderHarness) -> None:
    first, second = order_harness.place_order(price="1.00"), order_harness.place_order(price="2.00")
    assert order_harness.api.get_order(first.order_id).total == Decimal("1.00")
    assert order_harness.api.get_order(second.order_id).total == Decimal("2.00")


def test_get_order_of_an_unknown_id_is_order_not_found(order_harness: OrderHarness) -> None:
    order_harness.place_order()
    missing = uuid.uuid4()
    with pytest.raises(OrderNotFound) as raised:
        order_harness.api.get_order(missing)
    assert raised.value.order_id == missing
