"""The product context's domain rules, as plain Python: money, reservation lines, the life of
products and reservations with the events they record."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from contexts.product import events as product_events
from contexts.product.domain.exceptions import InvalidPrice, UnknownCurrency
from contexts.product.domain.model import (
    KEEP,
    Product,
    Reservation,
    ReservationStatus,
    merge_lines,
    money,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def ids(count: int) -> list[uuid.UUID]:
    return sorted(uuid.uuid4() for _ in range(count))


@pytest.mark.parametrize(
    ("amount", "kept"),
    [
        ("0", "0.00"),
        ("12", "12.00"),
        ("12.5", "12.50"),
        ("12.50", "12.50"),
        ("0.01", "0.01"),
        ("12.500", "12.50"),
        ("1E+1", "10.00"),
        ("9999999999.99", "9999999999.99"),
    ],
)
def test_money_keeps_exact_cents(amount: str, kept: str) -> None:
    result = money(Decimal(amount), "USD")
    assert result == Decimal(kept)
    assert str(result) == kept


@pytest.mark.parametrize("amount", ["-0.01", "-5", "0.001", "12.345", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_money_refuses_negative_fractional_cents_and_non_numbers(amount: str) -> None:
    with pytest.raises(InvalidPrice):
        money(Decimal(amount), "USD")


def test_invalid_price_is_a_value_error() -> None:
    """Callers that treat bad input generically (``ValueError``) catch it too."""
    with pytest.raises(ValueError):
        money(Decimal("-1"), "USD")


def test_money_never_keeps_a_negative_zero() -> None:
    """``Decimal("-0")`` is zero, but kept as is it prints (and is serialised) as ``-0.00``."""
    assert f"{money(Decimal('-0'), 'USD'):.2f}" == "0.00"
    assert not money(Decimal("-0.00"), "USD").is_signed()


def test_merge_lines_sums_each_product_once_in_product_id_order() -> None:
    a, b, c = ids(3)
    lines = [
        product_events.StockLine(c, 1),
        product_events.StockLine(a, 2),
        product_events.StockLine(c, 4),
        product_events.StockLine(b, 3),
    ]
    assert merge_lines(lines) == (
        product_events.StockLine(a, 2),
        product_events.StockLine(b, 3),
        product_events.StockLine(c, 5),
    )


def test_merge_lines_is_the_same_whatever_the_order_of_the_lines() -> None:
    a, b = ids(2)
    first = merge_lines([product_events.StockLine(a, 1), product_events.StockLine(b, 2)])
    second = merge_lines(
        [product_events.StockLine(b, 1), product_events.StockLine(a, 1), product_events.StockLine(b, 1)]
    )
    assert first == second


@pytest.mark.parametrize("quantity", [0, -1])
def test_merge_lines_refuses_non_positive_quantities(quantity: int) -> None:
    (a,) = ids(1)
    with pytest.raises(ValueError):
        merge_lines([product_events.StockLine(a, 2), product_events.StockLine(a, quantity)])


def reservation() -> Reservation:
    a, b = ids(2)
    return Reservation.place(uuid.uuid4(), (product_events.StockLine(a, 1), product_events.StockLine(b, 2)), NOW)


def test_a_placed_reservation_holds_stock_and_records_stock_reserved() -> None:
    held = reservation()
    assert held.status is ReservationStatus.RESERVED
    assert held.holds_stock
    assert held.events == [product_events.StockReserved(reservation_id=held.id, lines=held.lines)]


def test_confirming_keeps_the_stock_held() -> None:
    held = reservation()
    held.confirm()
    assert held.status is ReservationStatus.CONFIRMED
    assert held.holds_stock
    held.confirm()
    assert held.status is ReservationStatus.CONFIRMED


@pytest.mark.parametrize("confirmed_first", [False, True])
def test_releasing_happens_once_with_one_event(confirmed_first: bool) -> None:
    held = reservation()
    if confirmed_first:
        held.confirm()
    held.events.clear()
    assert held.release("order_cancelled") is True
    assert held.status is ReservationStatus.RELEASED
    assert not held.holds_stock
    assert held.release("again") is False
    assert held.events == [
        product_events.StockReleased(reservation_id=held.id, lines=held.lines, reason="order_cancelled")
    ]


def test_a_released_reservation_cannot_be_confirmed() -> None:
    held = reservation()
    held.release("order_not_saved")
    held.confirm()
    assert held.status is ReservationStatus.RELEASED
    assert not held.holds_stock


def test_creating_a_product_normalises_its_price_and_records_product_created() -> None:
    product = Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("7.5"), currency="EUR", now=NOW)
    assert str(product.price) == "7.50"
    assert product.events == [
        product_events.ProductCreated(
            product_id=product.id, sku="MUG-1", name="Mug", price=Decimal("7.50"), currency="EUR"
        )
    ]


def test_a_product_cannot_be_created_with_an_invalid_price() -> None:
    with pytest.raises(InvalidPrice):
        Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("7.505"), currency="EUR", now=NOW)


def test_revising_changes_only_what_is_given() -> None:
    product = Product.create(
        sku="MUG-1", name="Mug", description="blue", price=Decimal("7.50"), currency="EUR", now=NOW
    )
    product.revise(price=Decimal("8"))
    assert (product.name, product.description, product.price) == ("Mug", "blue", Decimal("8.00"))
    product.revise(name="Cup", description=None)
    assert (product.name, product.description, product.price) == ("Cup", None, Decimal("8.00"))
    product.revise(name=KEEP, description=KEEP, price=KEEP)
    assert (product.name, product.description, product.price) == ("Cup", None, Decimal("8.00"))


def test_revising_to_an_invalid_price_changes_nothing() -> None:
    product = Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("7.50"), currency="EUR", now=NOW)
    with pytest.raises(InvalidPrice):
        product.revise(name="Cup", price=Decimal("-1"))
    assert (product.name, product.price) == ("Mug", Decimal("7.50"))


@pytest.mark.parametrize("currency", ["usd", "ZZZ", "XAU", ""])
def test_a_product_is_priced_only_in_an_iso_4217_currency(currency: str) -> None:
    with pytest.raises(UnknownCurrency):
        Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("1.00"), currency=currency, now=NOW)


def test_a_reservation_without_lines_is_refused() -> None:
    """Otherwise an empty reservation would be stored under its id and block that id for good."""
    with pytest.raises(ValueError):
        merge_lines([])
