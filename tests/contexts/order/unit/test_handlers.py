"""The order context's use cases on in-memory fakes and a fake ProductApi: placing an order
(prices snapshotted, lines merged, stock reserved first and released again if the order
cannot be saved), idempotent replays, cancelling, reading, and the events published."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from contexts.order.api import OrderNotFound
from contexts.order.application.handlers import (
    CancelOrder,
    CancelOrderHandler,
    GetOrder,
    GetOrderHandler,
    ListOrders,
    ListOrdersHandler,
    PlaceOrder,
    PlaceOrderHandler,
    Viewer,
)
from contexts.order.domain.exceptions import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidOrder,
    MixedCurrencies,
    UnknownProducts,
)
from contexts.order.domain.model import Item, Order, OrderStatus
from contexts.order.events import OrderCancelled, OrderedLine, OrderPlaced
from contexts.product.api import InsufficientStock, ProductDTO, ReservationLine
from infrastructure.errors import OutcomeUnknown
from tests.fakes.common import CommitFailed
from tests.fakes.order import OrderStore, fail_commits_that_place_orders
from tests.fakes.product import FakeProductApi

CUSTOMER = uuid.uuid4()


@pytest.fixture
def store() -> OrderStore:
    return OrderStore()


@pytest.fixture
def products() -> FakeProductApi:
    return FakeProductApi()


@pytest.fixture
def place(store: OrderStore, products: FakeProductApi) -> PlaceOrderHandler:
    return PlaceOrderHandler(uow=store, products=products)


@pytest.fixture
def cancel(store: OrderStore, products: FakeProductApi) -> CancelOrderHandler:
    return CancelOrderHandler(uow=store, products=products)


def order_of(
    *items: tuple[ProductDTO | uuid.UUID, int], key: str | None = None, user_id: uuid.UUID = CUSTOMER
) -> PlaceOrder:
    return PlaceOrder(
        user_id=user_id,
        items=tuple(Item(p.id if isinstance(p, ProductDTO) else p, quantity) for p, quantity in items),
        idempotency_key=key,
    )


def as_customer(user_id: uuid.UUID = CUSTOMER) -> Viewer:
    return Viewer(user_id=user_id, is_admin=False)


# --- placing ---------------------------------------------------------------------------------


def test_placing_snapshots_what_the_products_were_and_reserves_their_stock(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(sku="MUG", name="Mug", price="2.50", stock=5)
    cup = products.add(sku="CUP", name="Cup", price="0.10", stock=5)
    order = place(order_of((mug, 2), (cup, 3)))
    assert order.status == "placed"
    assert order.user_id == CUSTOMER
    assert [(line.sku, line.name, line.unit_price, line.quantity, line.line_total) for line in order.items] == [
        ("MUG", "Mug", Decimal("2.50"), 2, Decimal("5.00")),
        ("CUP", "Cup", Decimal("0.10"), 3, Decimal("0.30")),
    ]
    assert (order.total, order.currency) == (Decimal("5.30"), "USD")
    assert (products.stock_of(mug.id), products.stock_of(cup.id)) == (3, 2)

    products.change_price(mug.id, "99.00")
    assert GetOrderHandler(uow=store)(GetOrder(order.id, viewer=None)) == order


def test_the_order_id_is_the_reservation_id(place: PlaceOrderHandler, products: FakeProductApi) -> None:
    """A retried placement can therefore never reserve twice under two ids."""
    mug = products.add()
    order = place(order_of((mug, 1)))
    assert [reservation_id for reservation_id, _ in products.reserve_calls] == [order.id]


def test_a_product_listed_twice_becomes_one_line(place: PlaceOrderHandler, products: FakeProductApi) -> None:
    mug, cup = products.add(sku="MUG"), products.add(sku="CUP")
    order = place(order_of((mug, 1), (cup, 2), (mug, 3)))
    assert [(line.sku, line.quantity) for line in order.items] == [("MUG", 4), ("CUP", 2)]
    assert products.reserve_calls == [(order.id, (ReservationLine(mug.id, 4), ReservationLine(cup.id, 2)))]


def test_placing_asks_the_product_context_once_reserving_and_pricing_together(
    place: PlaceOrderHandler, products: FakeProductApi
) -> None:
    """One round trip where the product context is served elsewhere, not a lookup and then a reservation."""
    mug = products.add(price="2.50", stock=5)
    order = place(order_of((mug, 2)))
    assert order.total == Decimal("5.00")
    assert products.lookups == []
    assert products.reserve_calls == [(order.id, (ReservationLine(mug.id, 2),))]


def test_mixed_currencies_are_refused_by_the_reservation_holding_nothing(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    """One call: the product context refuses products of several currencies before it takes
    any stock, so there is nothing to give back and nothing was published."""
    dollars, euros = products.add(currency="USD", stock=5), products.add(currency="EUR", stock=5)
    with pytest.raises(MixedCurrencies):
        place(order_of((dollars, 1), (euros, 1)))
    assert len(products.reserve_calls) == 1
    assert products.lookups == products.release_calls == []
    assert (products.stock_of(dollars.id), products.stock_of(euros.id)) == (5, 5)
    assert store.orders.rows == {}
    assert store.publisher.published == []


def test_mixed_currencies_are_refused_before_a_shortage_as_when_prices_came_first(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    """A 400 for what the order is, not a 409 for the stock: the reservation judges the
    currencies before the stock, and held nothing."""
    dollars, euros = products.add(currency="USD", stock=5), products.add(currency="EUR", stock=1)
    with pytest.raises(MixedCurrencies):
        place(order_of((dollars, 1), (euros, 2)))
    assert products.lookups == products.release_calls == []
    assert (products.stock_of(dollars.id), products.stock_of(euros.id)) == (5, 1)
    assert store.orders.rows == {}


def test_a_shortage_of_one_product_is_answered_without_asking_for_prices(
    place: PlaceOrderHandler, products: FakeProductApi
) -> None:
    """One product cannot mix currencies: the hot refusal path (something sold out) costs the
    product service no second call."""
    mug = products.add(stock=1)
    with pytest.raises(InsufficientStock):
        place(order_of((mug, 2)))
    assert products.lookups == []


def test_retrying_a_key_after_mixed_currencies_is_refused_again_and_holds_nothing(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    """The refusal frees the key and stores no replay: the retry is placed afresh under a new
    reservation id and refused the same way, holding nothing either time."""
    dollars, euros = products.add(currency="USD", stock=5), products.add(currency="EUR", stock=5)
    for _ in range(2):
        with pytest.raises(MixedCurrencies):
            place(order_of((dollars, 1), (euros, 1), key="k-1"))
        assert store.keys.rows == {}
    first, second = (reserved_id for reserved_id, _ in products.reserve_calls)
    assert first != second
    assert products.release_calls == []
    assert (products.stock_of(dollars.id), products.stock_of(euros.id)) == (5, 5)
    assert store.orders.rows == {}


def test_unknown_products_are_refused_and_nothing_is_reserved(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    known, missing = products.add(stock=5), uuid.uuid4()
    with pytest.raises(UnknownProducts) as raised:
        place(order_of((known, 1), (missing, 2)))
    assert raised.value.product_ids == {missing}
    assert products.reservations == {}
    assert products.stock_of(known.id) == 5
    assert store.orders.rows == {}


def test_an_order_breaking_the_limits_is_refused_before_products_are_asked(
    place: PlaceOrderHandler, products: FakeProductApi
) -> None:
    mug = products.add(stock=5000)
    with pytest.raises(InvalidOrder):
        place(order_of((mug, 600), (mug, 401)))
    assert products.reserve_calls == []


def test_insufficient_stock_saves_nothing(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    plenty, scarce = products.add(stock=10), products.add(stock=1)
    with pytest.raises(InsufficientStock) as raised:
        place(order_of((plenty, 2), (scarce, 2)))
    assert raised.value.product_id == scarce.id
    assert (products.stock_of(plenty.id), products.stock_of(scarce.id)) == (10, 1)
    assert store.orders.rows == {}
    assert store.publisher.published == []


def test_if_the_order_cannot_be_saved_its_reservation_is_released(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    store.before_commit = fail_commits_that_place_orders
    with pytest.raises(CommitFailed):
        place(order_of((mug, 2)))
    ((reserved_id, _),) = products.reserve_calls
    assert products.release_calls == [(reserved_id, "order_not_saved")]
    assert products.stock_of(mug.id) == 5
    assert store.orders.rows == {}
    assert store.publisher.published == []


class AnswerLost(OutcomeUnknown):
    """What the unit of work raises when the connection was lost while its commit ran."""


def lose_the_answer_of_commits_that_place_orders(uow: Any) -> None:
    if any(isinstance(aggregate, Order) for aggregate in uow.seen):
        raise AnswerLost("the connection was lost while the order's commit ran")


def test_an_order_stored_though_its_commits_answer_was_lost_is_placed_and_keeps_its_stock(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    """The server committed, then the connection went: the read back finds the order."""
    mug = products.add(stock=5)
    store.after_commit = lose_the_answer_of_commits_that_place_orders

    order = place(order_of((mug, 2)))

    assert store.orders.rows[order.id].status is OrderStatus.PLACED
    assert products.release_calls == []
    assert products.stock_of(mug.id) == 3
    assert [type(event) for event in store.publisher.published] == [OrderPlaced]


def test_an_order_not_found_after_its_commits_answer_was_lost_leaves_its_reservation_to_expire(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    """Not found may mean not committed yet: a release, which is final, could strand the order
    without its stock once the commit lands."""
    mug = products.add(stock=5)
    store.before_commit = lose_the_answer_of_commits_that_place_orders

    with pytest.raises(AnswerLost):
        place(order_of((mug, 2)))

    assert products.release_calls == []
    assert products.stock_of(mug.id) == 3, "still held, until it expires"
    assert store.orders.rows == {}


def test_an_order_that_cannot_be_read_back_leaves_its_reservation_to_expire(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)

    def unreachable(_uow: Any) -> None:
        raise CommitFailed("the order database is away")

    def lose_the_answer_and_go_away(uow: Any) -> None:
        store.on_begin = unreachable
        lose_the_answer_of_commits_that_place_orders(uow)

    store.before_commit = lose_the_answer_and_go_away
    with pytest.raises(AnswerLost):
        place(order_of((mug, 2)))

    assert products.release_calls == []
    assert products.stock_of(mug.id) == 3, "still held, until it expires"


def test_if_the_order_cannot_be_saved_its_idempotency_key_is_freed(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    store.before_commit = fail_commits_that_place_orders
    with pytest.raises(CommitFailed):
        place(order_of((mug, 2), key="k-1"))
    assert products.stock_of(mug.id) == 5
    store.before_commit = None
    order = place(order_of((mug, 2), key="k-1"))
    assert store.orders.rows[order.id].status is OrderStatus.PLACED
    assert products.stock_of(mug.id) == 3


def test_a_refused_order_frees_its_idempotency_key(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=1)
    with pytest.raises(InsufficientStock):
        place(order_of((mug, 2), key="k-1"))
    assert store.keys.rows == {}
    products.products[mug.id] = dataclasses.replace(mug, stock=2)
    assert place(order_of((mug, 2), key="k-1")).status == "placed"


def test_order_placed_is_published_once_the_order_is_committed(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug, cup = products.add(price="2.50"), products.add(price="1.00")
    committed_at_publish: list[bool] = []

    def check(events: Sequence[Any]) -> None:
        committed_at_publish.extend(event.order_id in store.orders.rows for event in events)

    store.publisher.listeners.append(check)
    order = place(order_of((mug, 2), (cup, 1)))
    assert store.publisher.published == [
        OrderPlaced(
            order_id=order.id,
            user_id=CUSTOMER,
            lines=(
                OrderedLine(mug.id, 2, Decimal("2.50"), mug.sku, mug.name),
                OrderedLine(cup.id, 1, Decimal("1.00"), cup.sku, cup.name),
            ),
            total=Decimal("6.00"),
            currency="USD",
        )
    ]
    assert committed_at_publish == [True]


# --- idempotency -----------------------------------------------------------------------------


def test_replaying_a_key_returns_the_same_order_without_placing_another(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    first = place(order_of((mug, 2), key="k-1"))
    products.change_price(mug.id, "50.00")
    again = place(order_of((mug, 2), key="k-1"))
    assert again == first
    assert len(products.reserve_calls) == 1
    assert products.stock_of(mug.id) == 3
    assert list(store.orders.rows) == [first.id]
    assert len(store.publisher.of_type(OrderPlaced)) == 1


def test_reusing_a_key_for_another_order_is_refused(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    place(order_of((mug, 2), key="k-1"))
    with pytest.raises(IdempotencyKeyReused):
        place(order_of((mug, 3), key="k-1"))
    assert len(products.reserve_calls) == 1
    assert len(store.orders.rows) == 1


def test_keys_belong_to_one_user(place: PlaceOrderHandler, products: FakeProductApi) -> None:
    mug = products.add(stock=5)
    mine = place(order_of((mug, 1), key="k-1"))
    theirs = place(order_of((mug, 1), key="k-1", user_id=uuid.uuid4()))
    assert mine.id != theirs.id
    assert products.stock_of(mug.id) == 3


def _claim(store: OrderStore, command: PlaceOrder, now: datetime) -> None:
    assert command.idempotency_key is not None
    with store() as uow:
        uow.idempotency.claim(
            user_id=command.user_id, key=command.idempotency_key, fingerprint=command.fingerprint(), now=now
        )
        uow.commit()


def test_a_key_still_being_processed_is_refused(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    command = order_of((mug, 1), key="k-1")
    _claim(store, command, datetime.now(timezone.utc))
    with pytest.raises(IdempotencyKeyInFlight):
        place(command)
    assert products.reserve_calls == []
    assert (CUSTOMER, "k-1") in store.keys.rows, "the other request's claim must survive"


def test_a_key_whose_request_died_is_taken_over_after_its_lease(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    command = order_of((mug, 1), key="k-1")
    _claim(store, command, datetime.now(timezone.utc) - timedelta(hours=1))
    order = place(command)
    assert order.status == "placed"
    assert place(command) == order


# --- cancelling ------------------------------------------------------------------------------


def test_cancelling_returns_the_stock_and_publishes_order_cancelled(
    place: PlaceOrderHandler, cancel: CancelOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    order = place(order_of((mug, 2)))
    cancelled = cancel(CancelOrder(order.id, as_customer()))
    assert cancelled.status == "cancelled"
    assert cancelled.items == order.items
    assert store.orders.rows[order.id].status is OrderStatus.CANCELLED
    assert products.release_calls == [(order.id, "order_cancelled")]
    assert products.stock_of(mug.id) == 5
    assert store.publisher.of_type(OrderCancelled) == [
        OrderCancelled(order_id=order.id, user_id=CUSTOMER, reason="cancelled_by_customer")
    ]


def test_cancelling_again_changes_nothing_but_still_asks_for_the_release(
    place: PlaceOrderHandler, cancel: CancelOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    order = place(order_of((mug, 2)))
    first = cancel(CancelOrder(order.id, as_customer()))
    commits = store.commits
    again = cancel(CancelOrder(order.id, as_customer()))
    assert again == first
    assert store.commits == commits
    assert products.release_calls == [(order.id, "order_cancelled")] * 2
    assert products.stock_of(mug.id) == 5
    assert len(store.publisher.of_type(OrderCancelled)) == 1


def test_a_release_that_fails_does_not_fail_the_cancel_and_cancelling_again_heals_it(
    place: PlaceOrderHandler,
    cancel: CancelOrderHandler,
    products: FakeProductApi,
    store: OrderStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mug = products.add(stock=5)
    order = place(order_of((mug, 2)))
    working_release = products.release

    def unavailable(reservation_id: uuid.UUID, reason: str) -> None:
        raise ConnectionError("product service unavailable")

    monkeypatch.setattr(products, "release", unavailable)
    assert cancel(CancelOrder(order.id, as_customer())).status == "cancelled"
    assert store.orders.rows[order.id].status is OrderStatus.CANCELLED
    assert len(store.publisher.of_type(OrderCancelled)) == 1, "the product context releases on this event"
    assert products.stock_of(mug.id) == 3

    monkeypatch.setattr(products, "release", working_release)
    cancel(CancelOrder(order.id, as_customer()))
    assert products.stock_of(mug.id) == 5


def test_a_reservation_whose_outcome_is_unknown_is_released(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product context reserved, but its answer was lost (a timeout): release, then fail."""
    mug = products.add(stock=5)
    reserve = products.reserve

    def reserved_but_answer_lost(reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        reserve(reservation_id, lines)
        raise TimeoutError("no answer from the product service")

    monkeypatch.setattr(products, "reserve", reserved_but_answer_lost)
    with pytest.raises(TimeoutError):
        place(order_of((mug, 2)))
    ((reserved_id, _),) = products.reserve_calls
    assert products.release_calls == [(reserved_id, "order_not_placed")]
    assert products.stock_of(mug.id) == 5
    assert store.orders.rows == {}


def test_a_refused_reservation_is_not_released(place: PlaceOrderHandler, products: FakeProductApi) -> None:
    mug = products.add(stock=1)
    with pytest.raises(InsufficientStock):
        place(order_of((mug, 2)))
    assert products.release_calls == []


def test_a_release_that_fails_too_does_not_hide_why_the_order_failed(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reservation is then left to the product context's expiry of unconfirmed ones."""
    mug = products.add(stock=5)
    store.before_commit = fail_commits_that_place_orders

    def unavailable(reservation_id: uuid.UUID, reason: str) -> None:
        raise ConnectionError("product service unavailable")

    monkeypatch.setattr(products, "release", unavailable)
    with pytest.raises(CommitFailed):
        place(order_of((mug, 2)))
    assert store.orders.rows == {}


def test_an_admin_cancelling_is_recorded_as_such(
    place: PlaceOrderHandler, cancel: CancelOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    order = place(order_of((products.add(), 1)))
    cancel(CancelOrder(order.id, Viewer(user_id=uuid.uuid4(), is_admin=True)))
    (event,) = store.publisher.of_type(OrderCancelled)
    assert event.reason == "cancelled_by_admin"


def test_another_customer_cannot_cancel_and_learns_nothing(
    place: PlaceOrderHandler, cancel: CancelOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=5)
    order = place(order_of((mug, 2)))
    with pytest.raises(OrderNotFound):
        cancel(CancelOrder(order.id, as_customer(uuid.uuid4())))
    with pytest.raises(OrderNotFound):
        cancel(CancelOrder(uuid.uuid4(), as_customer()))
    assert store.orders.rows[order.id].status is OrderStatus.PLACED
    assert products.release_calls == []
    assert products.stock_of(mug.id) == 3


# --- reading ---------------------------------------------------------------------------------


def test_an_order_is_shown_to_its_owner_admins_and_trusted_callers_only(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    order = place(order_of((products.add(), 1)))
    get = GetOrderHandler(uow=store)
    assert get(GetOrder(order.id, viewer=None)) == order
    assert get(GetOrder(order.id, as_customer())) == order
    assert get(GetOrder(order.id, Viewer(user_id=uuid.uuid4(), is_admin=True))) == order
    with pytest.raises(OrderNotFound) as raised:
        get(GetOrder(order.id, as_customer(uuid.uuid4())))
    assert raised.value.order_id == order.id


def test_listing_pages_through_a_users_orders_newest_first(
    place: PlaceOrderHandler, products: FakeProductApi, store: OrderStore
) -> None:
    mug = products.add(stock=100)
    mine = [place(order_of((mug, 1))) for _ in range(3)]
    place(order_of((mug, 1), user_id=uuid.uuid4()))
    newest_first = [order.id for order in sorted(mine, key=lambda o: (o.created_at, o.id), reverse=True)]
    list_orders = ListOrdersHandler(uow=store)

    first = list_orders(ListOrders(user_id=CUSTOMER, limit=2))
    assert [order.id for order in first.items] == newest_first[:2]
    assert first.has_more
    second = list_orders(ListOrders(user_id=CUSTOMER, limit=2, before=first.last))
    assert [order.id for order in second.items] == newest_first[2:]
    assert not second.has_more
    empty = list_orders(ListOrders(user_id=uuid.uuid4(), limit=2))
    assert (empty.items, empty.last, empty.has_more) == ([], None, False)
