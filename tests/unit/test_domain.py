"""The domain rules of every context, as plain Python: money, line merging, order limits and
totals, and the life of users, products, reservations and orders with the events they record."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import email_validator
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
from contexts.user import events as user_events
from contexts.user.domain.model import Role, User, email_key

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def ids(count: int) -> list[uuid.UUID]:
    return sorted(uuid.uuid4() for _ in range(count))


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "kept"),
    [("0", "0.00"), ("12", "12.00"), ("12.5", "12.50"), ("12.50", "12.50"), ("0.01", "0.01"),
     ("12.500", "12.50"), ("1E+1", "10.00"), ("9999999999.99", "9999999999.99")],
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


# --- stock lines and order items ---------------------------------------------------------------


def test_merge_lines_sums_each_product_once_in_product_id_order() -> None:
    a, b, c = ids(3)
    lines = [product_events.StockLine(c, 1), product_events.StockLine(a, 2), product_events.StockLine(c, 4),
             product_events.StockLine(b, 3)]
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


# --- orders ----------------------------------------------------------------------------------


def line(price: str, quantity: int, currency: str = "USD") -> OrderLine:
    product_id = uuid.uuid4()
    return OrderLine(product_id=product_id, sku=f"SKU-{product_id.hex[:6]}", name="Thing",
                     unit_price=Decimal(price), currency=currency, quantity=quantity)


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


# --- reservations ----------------------------------------------------------------------------


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


# --- products --------------------------------------------------------------------------------


def test_creating_a_product_normalises_its_price_and_records_product_created() -> None:
    product = Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("7.5"), currency="EUR", now=NOW)
    assert str(product.price) == "7.50"
    assert product.events == [
        product_events.ProductCreated(product_id=product.id, sku="MUG-1", name="Mug", price=Decimal("7.50"),
                                      currency="EUR")
    ]


def test_a_product_cannot_be_created_with_an_invalid_price() -> None:
    with pytest.raises(InvalidPrice):
        Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("7.505"), currency="EUR", now=NOW)


def test_revising_changes_only_what_is_given() -> None:
    product = Product.create(sku="MUG-1", name="Mug", description="blue", price=Decimal("7.50"), currency="EUR",
                             now=NOW)
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


# --- users -----------------------------------------------------------------------------------


def test_registering_a_user_trims_the_email_and_records_user_registered() -> None:
    user = User.register(email="  Ann@Example.COM ", name="Ann", password_hash="h", role=Role.CUSTOMER, now=NOW)
    assert user.email == "Ann@Example.COM"
    assert user.events == [user_events.UserRegistered(user_id=user.id, email="Ann@Example.COM", name="Ann")]


def test_email_case_and_surrounding_space_never_make_another_account() -> None:
    assert email_key(" Ann@Example.COM ") == email_key("ann@example.com")
    assert email_key("ann@example.com") != email_key("anne@example.com")


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("Ada@Straße.de", "ada@xn--strae-oqa.de"),  # not ada@strasse.de: IDNA 2008 keeps ß
        ("ada@σς.example", "ada@xn--3xab.example"),  # the final sigma, not σσ
        ("ａda@ＥＸＡＭＰＬＥ.com", "ada@example.com"),
        ("Straße@example.com", "strasse@example.com"),  # the local part is folded, though
    ],
    ids=repr,
)
def test_the_email_key_spells_a_domain_in_ascii_as_registration_stores_it(email: str, key: str) -> None:
    """Registration stores email_validator's ASCII form of the domain (IDNA 2008 with UTS 46);
    a key computed any other way finds no account at login."""
    assert email_key(email) == key
    local = email.rpartition("@")[0]
    assert email_key(f"{local}@{email_validator.validate_email(email, check_deliverability=False).ascii_domain}") == key


def test_merge_items_rejects_a_non_positive_item_even_when_the_merged_total_is_positive() -> None:
    product = uuid.uuid4()
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(product, 5), Item(product, -3)])
    with pytest.raises(order_exceptions.InvalidOrder):
        merge_items([Item(product, 0)])


@pytest.mark.parametrize("currency", ["usd", "ZZZ", "XAU", ""])
def test_a_product_is_priced_only_in_an_iso_4217_currency(currency: str) -> None:
    with pytest.raises(UnknownCurrency):
        Product.create(sku="MUG-1", name="Mug", description=None, price=Decimal("1.00"), currency=currency, now=NOW)


def test_a_reservation_without_lines_is_refused() -> None:
    """Otherwise an empty reservation would be stored under its id and block that id for good."""
    with pytest.raises(ValueError):
        merge_lines([])
