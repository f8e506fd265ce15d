"""Money and line-merging rules hold for any input, not just the examples in test_<context>_domain.py:
order totals are the exact integer sum of cents × quantity with two decimal places, survive
serialization and the ``Money`` column type unchanged, an order never mixes currencies, and
merging repeated products never loses or invents a unit."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Dialect
from sqlalchemy.dialects import postgresql, sqlite

from contexts.order import events as order_events
from contexts.order.domain.exceptions import InvalidOrder, MixedCurrencies
from contexts.order.domain.model import MAX_LINES, MAX_QUANTITY, Item, Order, OrderLine, merge_items
from contexts.product.domain.currencies import CURRENCIES
from contexts.product.domain.exceptions import InvalidPrice
from contexts.product.domain.model import merge_lines, money
from contexts.product.events import StockLine
from infrastructure.db.types import Money
from infrastructure.serialization import to_data

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
# The largest price the HTTP API accepts (ten integer digits): 9,999,999,999.99. Totals then reach
# 17 significant digits, past what a float holds exactly, so any float on the way shows.
MAX_CENTS = 9_999_999_999_99
TWO_PLACES = re.compile(r"^(0|[1-9][0-9]*)\.[0-9]{2}$")
DIALECTS: tuple[Dialect, ...] = (sqlite.dialect(), postgresql.dialect())  # type: ignore[no-untyped-call]

# No example database: it would leave a .hypothesis folder in the working tree.
properties = settings(database=None, max_examples=200, deadline=None)

cents = st.integers(min_value=0, max_value=MAX_CENTS)
quantities = st.integers(min_value=1, max_value=MAX_QUANTITY)
currency_codes = st.sampled_from(sorted(CURRENCIES))


def as_text(amount_in_cents: int) -> str:
    """The amount written out with integers only: the independent oracle for every total."""
    return f"{amount_in_cents // 100}.{amount_in_cents % 100:02d}"


def price(amount_in_cents: int) -> Decimal:
    """A catalog price, as ``money`` makes it (how every order line's price comes to be)."""
    return money(Decimal(amount_in_cents) / 100, "USD")


@dataclass(frozen=True)
class Priced:
    cents: int
    quantity: int


def order_line(priced: Priced, currency: str = "USD") -> OrderLine:
    return OrderLine(
        product_id=uuid.uuid4(),
        sku="SKU",
        name="Thing",
        unit_price=price(priced.cents),
        currency=currency,
        quantity=priced.quantity,
    )


def place(lines: list[OrderLine]) -> Order:
    return Order.place(order_id=uuid.uuid4(), user_id=uuid.uuid4(), lines=lines, now=NOW)


priced_lines = st.lists(st.builds(Priced, cents, quantities), min_size=1, max_size=MAX_LINES) | st.lists(
    # The largest orders, rarely drawn otherwise: many lines near the top of both ranges.
    st.builds(Priced, st.integers(min_value=MAX_CENTS // 2, max_value=MAX_CENTS), st.integers(500, MAX_QUANTITY)),
    min_size=MAX_LINES // 2,
    max_size=MAX_LINES,
)


# --- money -----------------------------------------------------------------------------------


@properties
@given(amount=cents)
def test_money_keeps_any_amount_in_cents_exactly_with_two_places(amount: int) -> None:
    kept = price(amount)
    assert str(kept) == as_text(amount)
    assert kept.as_tuple().exponent == -2


@properties
@given(amount=cents, sub_cent=st.integers(min_value=1, max_value=9))
def test_money_refuses_fractions_of_a_cent(amount: int, sub_cent: int) -> None:
    with pytest.raises(InvalidPrice):
        money(Decimal(amount * 10 + sub_cent) / 1000, "USD")


@properties
@given(lines=priced_lines)
def test_order_total_is_the_integer_sum_of_cents_times_quantity(lines: list[Priced]) -> None:
    order = place([order_line(line) for line in lines])
    expected = sum(line.cents * line.quantity for line in lines)
    assert str(order.total) == as_text(expected)
    assert order.total.as_tuple().exponent == -2
    for line, priced in zip(order.lines, lines, strict=True):
        assert str(line.line_total) == as_text(priced.cents * priced.quantity)
    (placed,) = order.events
    assert isinstance(placed, order_events.OrderPlaced)
    assert str(placed.total) == as_text(expected)


@properties
@given(lines=priced_lines)
def test_serialized_totals_and_prices_read_back_as_the_same_decimal(lines: list[Priced]) -> None:
    order = place([order_line(line) for line in lines])
    (placed,) = order.events
    data = to_data(placed)
    expected = sum(line.cents * line.quantity for line in lines)
    assert data["total"] == as_text(expected)
    assert TWO_PLACES.match(data["total"])
    assert Decimal(data["total"]) == order.total
    for line_data, line in zip(data["lines"], order.lines, strict=True):
        assert TWO_PLACES.match(line_data["unit_price"])
        assert Decimal(line_data["unit_price"]) == line.unit_price


@properties
@given(lines=priced_lines, normalize=st.booleans())
def test_the_money_column_stores_whole_cents_and_reads_back_the_same_amount(
    lines: list[Priced], normalize: bool
) -> None:
    """Unit prices and totals alike; ``normalize`` writes the amount with another exponent (1E+2)."""
    column = Money()
    order = place([order_line(line) for line in lines])
    amounts = [(line.unit_price, priced.cents) for line, priced in zip(order.lines, lines, strict=True)]
    amounts.append((order.total, sum(line.cents * line.quantity for line in lines)))
    for dialect in DIALECTS:
        for amount, in_cents in amounts:
            stored = column.process_bind_param(amount.normalize() if normalize else amount, dialect)
            assert type(stored) is int
            assert stored == in_cents
            read = column.process_result_value(stored, dialect)
            assert read is not None
            assert str(read) == as_text(in_cents)
            assert read == amount


@properties
@given(amount=cents, sub_cent=st.integers(min_value=1, max_value=9))
def test_the_money_column_refuses_fractions_of_a_cent(amount: int, sub_cent: int) -> None:
    with pytest.raises(ValueError, match="more than two decimal places"):
        Money().process_bind_param(Decimal(amount * 10 + sub_cent) / 1000, sqlite.dialect())


# --- currencies ------------------------------------------------------------------------------


@st.composite
def lines_in_several_currencies(draw: st.DrawFn) -> list[OrderLine]:
    first, second = draw(st.lists(currency_codes, min_size=2, max_size=2, unique=True))
    others = draw(st.lists(currency_codes, max_size=MAX_LINES - 2))
    lines = draw(st.permutations([first, second, *others]))
    return [order_line(draw(st.builds(Priced, cents, quantities)), currency) for currency in lines]


@properties
@given(lines=lines_in_several_currencies())
def test_lines_in_two_or_more_currencies_never_make_an_order(lines: list[OrderLine]) -> None:
    with pytest.raises(MixedCurrencies):
        place(lines)


@properties
@given(currency=currency_codes, lines=priced_lines)
def test_lines_in_one_currency_make_an_order_in_that_currency(currency: str, lines: list[Priced]) -> None:
    order = place([order_line(line, currency) for line in lines])
    assert order.currency == currency
    (placed,) = order.events
    assert isinstance(placed, order_events.OrderPlaced)
    assert placed.currency == currency


# --- merging ---------------------------------------------------------------------------------


@st.composite
def items_over_few_products(draw: st.DrawFn) -> list[Item]:
    """Repeats are likely, and so are totals over MAX_QUANTITY."""
    products = draw(st.lists(st.uuids(), min_size=1, max_size=4, unique=True))
    return draw(st.lists(st.builds(Item, st.sampled_from(products), quantities), min_size=1, max_size=8))


@properties
@given(items=items_over_few_products())
def test_merging_items_keeps_the_total_quantity_of_every_product(items: list[Item]) -> None:
    wanted = Counter[uuid.UUID]()
    for item in items:
        wanted[item.product_id] += item.quantity
    if max(wanted.values()) > MAX_QUANTITY:
        with pytest.raises(InvalidOrder):
            merge_items(items)
        return
    merged = merge_items(items)
    assert [item.product_id for item in merged] == list(dict.fromkeys(item.product_id for item in items))
    assert {item.product_id: item.quantity for item in merged} == wanted


@properties
@given(count=st.integers(min_value=1, max_value=MAX_LINES + 5), quantity=quantities)
def test_merging_items_refuses_more_than_max_lines_distinct_products(count: int, quantity: int) -> None:
    items = [Item(uuid.UUID(int=n), quantity) for n in range(1, count + 1)]
    if count > MAX_LINES:
        with pytest.raises(InvalidOrder):
            merge_items(items)
    else:
        assert merge_items(items) == items


@properties
@given(
    lines=st.lists(
        st.builds(StockLine, st.sampled_from([uuid.UUID(int=n) for n in range(1, 5)]), quantities),
        min_size=1,
        max_size=8,
    )
)
def test_merging_reservation_lines_keeps_every_unit_in_product_id_order(lines: list[StockLine]) -> None:
    wanted = Counter[uuid.UUID]()
    for line in lines:
        wanted[line.product_id] += line.quantity
    merged = merge_lines(lines)
    assert [line.product_id for line in merged] == sorted(wanted)
    assert {line.product_id: line.quantity for line in merged} == wanted
