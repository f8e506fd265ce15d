"""Every implementation of the published ProductApi keeps its contract: products as DTOs,
reservations all-or-nothing and idempotent by id, releases idempotent, the published errors."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contexts.product.api import (
    CurrenciesDiffer,
    InsufficientStock,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from tests.contexts.conftest import ProductHarness


def stock(harness: ProductHarness, *product_ids: uuid.UUID) -> list[int]:
    found = harness.api.get_products(product_ids)
    return [found[product_id].stock for product_id in product_ids]


def test_get_products_returns_dtos_of_the_known_ids_only(product_harness: ProductHarness) -> None:
    mug = product_harness.add_product(sku="MUG-1", name="Mug", price="7.50", currency="EUR", stock=4)
    cup = product_harness.add_product(stock=0)
    missing = uuid.uuid4()

    found = product_harness.api.get_products([mug, missing, cup])

    assert set(found) == {mug, cup}
    assert found[mug] == ProductDTO(id=mug, sku="MUG-1", name="Mug", description=None, price=Decimal("7.50"),
                                    currency="EUR", stock=4)
    assert isinstance(found[cup], ProductDTO)
    assert found[cup].stock == 0
    assert product_harness.api.get_products([missing]) == {}
    assert product_harness.api.get_products([]) == {}


def test_reserve_holds_stock_for_every_line(product_harness: ProductHarness) -> None:
    a, b = product_harness.add_product(stock=5), product_harness.add_product(stock=5)
    product_harness.api.reserve(uuid.uuid4(), [ReservationLine(a, 2), ReservationLine(b, 5)])
    assert stock(product_harness, a, b) == [3, 0]


def test_reserve_is_all_or_nothing_and_names_the_short_product(product_harness: ProductHarness) -> None:
    plenty = product_harness.add_product(stock=10)
    scarce = product_harness.add_product(sku="SCARCE-1", stock=1)
    with pytest.raises(InsufficientStock) as raised:
        product_harness.api.reserve(uuid.uuid4(), [ReservationLine(plenty, 3), ReservationLine(scarce, 2)])
    assert (raised.value.product_id, raised.value.sku, raised.value.requested) == (scarce, "SCARCE-1", 2)
    assert "SCARCE-1" in str(raised.value)
    assert stock(product_harness, plenty, scarce) == [10, 1]


def test_reserve_of_an_unknown_product_is_product_not_found(product_harness: ProductHarness) -> None:
    known, missing = product_harness.add_product(stock=5), uuid.uuid4()
    with pytest.raises(ProductNotFound) as raised:
        product_harness.api.reserve(uuid.uuid4(), [ReservationLine(known, 1), ReservationLine(missing, 1)])
    assert missing in raised.value.product_ids
    assert known not in raised.value.product_ids
    assert stock(product_harness, known) == [5]


def test_repeating_a_reservation_changes_nothing(product_harness: ProductHarness) -> None:
    a, b = product_harness.add_product(stock=5), product_harness.add_product(stock=5)
    reservation_id = uuid.uuid4()
    product_harness.api.reserve(reservation_id, [ReservationLine(a, 2), ReservationLine(b, 1)])
    product_harness.api.reserve(reservation_id, [ReservationLine(a, 2), ReservationLine(b, 1)])
    product_harness.api.reserve(reservation_id, [ReservationLine(b, 1), ReservationLine(a, 2)])
    assert stock(product_harness, a, b) == [3, 4]


def test_reusing_a_reservation_id_for_other_lines_is_a_conflict(product_harness: ProductHarness) -> None:
    a, b = product_harness.add_product(stock=5), product_harness.add_product(stock=5)
    reservation_id = uuid.uuid4()
    product_harness.api.reserve(reservation_id, [ReservationLine(a, 2)])
    with pytest.raises(ReservationConflict):
        product_harness.api.reserve(reservation_id, [ReservationLine(a, 3)])
    with pytest.raises(ReservationConflict):
        product_harness.api.reserve(reservation_id, [ReservationLine(b, 2)])
    assert stock(product_harness, a, b) == [3, 5]


@pytest.mark.parametrize("operation", ["reserve", "reserve_priced"])
def test_reserving_a_released_id_is_a_conflict(product_harness: ProductHarness, operation: str) -> None:
    """An order's retry (its id reused after its reservation was given back) cannot hold the
    stock again, through either operation."""
    reserve = getattr(product_harness.api, operation)
    product = product_harness.add_product(stock=5)
    reservation_id = uuid.uuid4()
    reserve(reservation_id, [ReservationLine(product, 2)])
    product_harness.api.release(reservation_id, "order_not_placed")
    with pytest.raises(ReservationConflict):
        reserve(reservation_id, [ReservationLine(product, 2)])
    assert stock(product_harness, product) == [5]


def test_release_returns_the_stock_once(product_harness: ProductHarness) -> None:
    a, b = product_harness.add_product(stock=5), product_harness.add_product(stock=5)
    reservation_id = uuid.uuid4()
    product_harness.api.reserve(reservation_id, [ReservationLine(a, 2), ReservationLine(b, 4)])
    product_harness.api.release(reservation_id, "order_cancelled")
    assert stock(product_harness, a, b) == [5, 5]
    product_harness.api.release(reservation_id, "order_cancelled")
    product_harness.api.release(reservation_id, "order_not_saved")
    assert stock(product_harness, a, b) == [5, 5]


def test_release_of_an_unknown_reservation_is_a_no_op(product_harness: ProductHarness) -> None:
    product = product_harness.add_product(stock=5)
    product_harness.api.release(uuid.uuid4(), "order_not_saved")
    assert stock(product_harness, product) == [5]


def test_a_release_touches_only_its_own_reservation(product_harness: ProductHarness) -> None:
    product = product_harness.add_product(stock=5)
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    product_harness.api.reserve(mine, [ReservationLine(product, 1)])
    product_harness.api.reserve(theirs, [ReservationLine(product, 3)])
    product_harness.api.release(mine, "order_cancelled")
    assert stock(product_harness, product) == [2]


def test_reserve_priced_holds_the_stock_and_answers_the_reserved_products(product_harness: ProductHarness) -> None:
    mug = product_harness.add_product(sku="MUG-2", name="Mug", price="7.50", currency="EUR", stock=5)
    cup = product_harness.add_product(currency="EUR", stock=5)

    priced = product_harness.api.reserve_priced(uuid.uuid4(), [ReservationLine(mug, 2), ReservationLine(cup, 5)])

    assert set(priced) == {mug, cup}
    assert priced[mug] == ProductDTO(id=mug, sku="MUG-2", name="Mug", description=None, price=Decimal("7.50"),
                                     currency="EUR", stock=3)
    assert priced[cup].stock == 0
    assert stock(product_harness, mug, cup) == [3, 0]


def test_repeating_a_priced_reservation_changes_nothing_and_answers_again(product_harness: ProductHarness) -> None:
    product = product_harness.add_product(price="4.20", stock=5)
    reservation_id = uuid.uuid4()
    first = product_harness.api.reserve_priced(reservation_id, [ReservationLine(product, 2)])
    again = product_harness.api.reserve_priced(reservation_id, [ReservationLine(product, 2)])
    assert first == again
    assert again[product].price == Decimal("4.20")
    assert stock(product_harness, product) == [3]
    product_harness.api.reserve(reservation_id, [ReservationLine(product, 2)])  # the same reservation
    assert stock(product_harness, product) == [3]


def test_a_refused_priced_reservation_holds_nothing(product_harness: ProductHarness) -> None:
    plenty = product_harness.add_product(stock=10)
    scarce = product_harness.add_product(sku="SCARCE-2", stock=1)
    missing = uuid.uuid4()
    with pytest.raises(InsufficientStock) as short:
        product_harness.api.reserve_priced(uuid.uuid4(), [ReservationLine(plenty, 3), ReservationLine(scarce, 2)])
    assert (short.value.product_id, short.value.sku, short.value.requested) == (scarce, "SCARCE-2", 2)
    with pytest.raises(ProductNotFound) as unknown:
        product_harness.api.reserve_priced(uuid.uuid4(), [ReservationLine(plenty, 1), ReservationLine(missing, 1)])
    assert unknown.value.product_ids == (missing,)
    used = uuid.uuid4()
    product_harness.api.reserve_priced(used, [ReservationLine(plenty, 1)])
    with pytest.raises(ReservationConflict):
        product_harness.api.reserve_priced(used, [ReservationLine(plenty, 2)])
    assert stock(product_harness, plenty, scarce) == [9, 1]


def test_a_priced_reservation_of_several_currencies_is_refused_before_the_stock_and_stores_nothing(
    product_harness: ProductHarness,
) -> None:
    """What an order's lines need: one currency. The refusal comes before a shortage would (an
    invalid order is a 400 before a 409) and stores nothing: the same id reserves afresh after it."""
    dollars = product_harness.add_product(currency="USD", stock=5)
    scarce_euros = product_harness.add_product(currency="EUR", stock=1)
    reservation_id = uuid.uuid4()
    with pytest.raises(CurrenciesDiffer) as refused:
        product_harness.api.reserve_priced(
            reservation_id, [ReservationLine(dollars, 1), ReservationLine(scarce_euros, 2)]
        )
    assert refused.value.currencies == ("EUR", "USD")
    assert stock(product_harness, dollars, scarce_euros) == [5, 1]
    product_harness.api.reserve_priced(reservation_id, [ReservationLine(dollars, 2)])
    assert stock(product_harness, dollars, scarce_euros) == [3, 1]
