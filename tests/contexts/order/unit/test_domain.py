"""The order context's domain rules, as plain Python: merging items, the limits of an order,
totals, and the life of an order with the events it records."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from contexts.order import events as order_events
from contexts.order.domain import exceptions as order_exceptions
from contexts.order.domain.model import (
    MAX_LINES,
    MAX_QUANTITY,
    Item,
    Order,
    OrderLine,
    OrderStatus,
    merge_items,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_merge_items_sums_repeats_keeping_first_appearance_order() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    merged = merge_items([Item(b, 1), Item(a, 2), Item(b, 3), Item(c, 1), Item(a, 1)])
    assert merged == [Item(b, 4), Item(a, 3), Item(c, 1)]


def test_merge_items_needs_at_least_one_line() -> None:
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([])


def test_merge_items_allows_up_to_max_lines_distinct_products() -> None:
    items = [Item(uuid.uuid4(), 1) for _ in range(MAX_LINES)]
    assert len(merge_items(items)) == MAX_LINES
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([*items, Item(uuid.uuid4(), 1)])


def test_merge_items_counts_lines_after_merging() -> None:
    """Repeats of one product do not count against the line limit."""
    product = uuid.uuid4()
    items = [Item(uuid.uuid4(), 1) for _ in range(MAX_LINES - 1)] + [Item(product, 1)] * 5
    assert len(merge_items(items)) == MAX_LINES


def test_merge_items_limits_the_total_quantity_of_a_product() -> None:
    product = uuid.uuid4()
    assert merge_items([Item(product, MAX_QUANTITY)]) == [Item(product, MAX_QUANTITY)]
    assert merge_items([Item(product, MAX_QUANTITY - 1), Item(product, 1)]) == [Item(product, MAX_QUANTITY)]
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(product, MAX_QUANTITY), Item(product, 1)])


@pytest.mark.parametrize("quantity", [0, -3])
def test_merge_items_refuses_non_positive_quantities(quantity: int) -> None:
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(uuid.uuid4(), 2), Item(uuid.uuid4(), quantity)])


def line(price: str, quantity: int, currency: str = "USD") -> OrderLine:
    product_id = uuid.uuid4()
    return OrderLine(
        product_id=product_id,
        sku=f"SKU-{product_id.hex[:6]}",
        name="Thing",
        unit_price=Decimal(price),
        currency=currency,
        quantity=quantity,
    )


def placed(*lines: OrderLine) -> Order:
    return Order.place(order_id=uuid.uuid4(), user_id=uuid.uuid4(), lines=lines, now=NOW)


def test_order_total_is_the_exact_sum_of_line_totals() -> None:
    order = placed(line("0.10", 3), line("19.99", 2), line("0.01", 1))
    assert [order_line.line_total for order_line in order.lines] == [Decimal("0.30"), Decimal("39.98"), Decimal("0.01")]
    assert order.total == Decimal("40.29")
    assert f"{order.total:.2f}" == "40.29"


def test_order_total_of_free_items_is_zero_with_cents() -> None:
    order = placed(line("0.00", 5))
    assert order.total == 0
    assert f"{order.total:.2f}" == "0.00"


def test_placing_an_order_records_order_placed_with_lines_total_and_currency() -> None:
    first, second = line("2.50", 2, "EUR"), line("1.00", 1, "EUR")
    order = placed(first, second)
    assert order.status is OrderStatus.PLACED
    assert order.currency == "EUR"
    assert order.events == [
        order_events.OrderPlaced(
            order_id=order.id,
            user_id=order.user_id,
            lines=(
                order_events.OrderedLine(first.product_id, 2, Decimal("2.50"), first.sku, "Thing"),
                order_events.OrderedLine(second.product_id, 1, Decimal("1.00"), second.sku, "Thing"),
            ),
            total=Decimal("6.00"),
            currency="EUR",
        )
    ]


def test_an_order_has_one_currency() -> None:
    with pytest.raises(order_exceptions.MixedCurrencies) as raised:
        placed(line("1.00", 1, "USD"), line("1.00", 1, "EUR"))
    assert "EUR" in str(raised.value) and "USD" in str(raised.value)
    assert isinstance(raised.value, order_exceptions.InvalidOrder)


def test_cancelling_an_order_happens_once_with_one_event() -> None:
    order = placed(line("1.00", 1))
    order.events.clear()
    assert order.cancel("cancelled_by_customer") is True
    assert order.status is OrderStatus.CANCELLED
    assert order.cancel("cancelled_by_admin") is False
    assert order.events == [
        order_events.OrderCancelled(order_id=order.id, user_id=order.user_id, reason="cancelled_by_customer")
    ]


def test_an_order_is_visible_to_its_owner_and_admins_only() -> None:
    order = placed(line("1.00", 1))
    assert order.is_visible_to(order.user_id, is_admin=False)
    assert order.is_visible_to(uuid.uuid4(), is_admin=True)
    assert not order.is_visible_to(uuid.uuid4(), is_admin=False)


def test_merge_items_rejects_a_non_positive_item_even_when_the_merged_total_is_positive() -> None:
    product = uuid.uuid4()
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(product, 5), Item(product, -3)])
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(product, 0)])
