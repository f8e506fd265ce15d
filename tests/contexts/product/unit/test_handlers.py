"""The product context's use cases on in-memory fakes: the catalog, stock adjustments, and
reservations that are all-or-nothing, idempotent by id, and released exactly once; with the
events each publishes, only after its commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from contexts.product.api import (
    InsufficientStock,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from contexts.product.application import handlers
from contexts.product.application.facade import ProductFacade
from contexts.product.domain.exceptions import (
    InvalidInitialStock,
    InvalidPrice,
    SkuAlreadyExists,
    StockWouldExceedMaximum,
    StockWouldGoNegative,
)
from contexts.product.domain.model import MAX_STOCK, ReservationStatus
from contexts.product.events import ProductCreated, StockLine, StockReleased, StockReserved
from tests.fakes.common import CommitFailed
from tests.fakes.product import ProductStore, StockAdjustment, StockLevel


@pytest.fixture
def store() -> ProductStore:
    return ProductStore()


@pytest.fixture
def reserve(store: ProductStore) -> handlers.ReserveStockHandler:
    return handlers.ReserveStockHandler(uow=store)


@pytest.fixture
def release(store: ProductStore) -> handlers.ReleaseStockHandler:
    return handlers.ReleaseStockHandler(uow=store)


def create(store: ProductStore, *, sku: str | None = None, price: str = "10.00", stock: int = 10,
           currency: str = "USD") -> ProductDTO:
    return handlers.CreateProductHandler(uow=store)(
        handlers.CreateProduct(sku=sku or f"SKU-{uuid.uuid4().hex[:8]}", name="Thing", description=None,
                               price=Decimal(price), currency=currency, initial_stock=stock)
    )


def available(store: ProductStore, product: ProductDTO) -> int:
    return store.level(product.id).available


# --- catalog ---------------------------------------------------------------------------------


def test_creating_a_product_stores_it_with_its_stock_and_publishes_product_created(store: ProductStore) -> None:
    product = create(store, sku="MUG-1", price="7.5", stock=4, currency="EUR")
    assert (product.sku, product.price, product.currency, product.stock) == ("MUG-1", Decimal("7.50"), "EUR", 4)
    assert handlers.GetProductHandler(catalogue=store.catalogue())(handlers.GetProduct(product.id)) == product
    assert store.level(product.id) == StockLevel(available=4, reserved=0)
    assert store.publisher.published == [
        ProductCreated(product_id=product.id, sku="MUG-1", name="Thing", price=Decimal("7.50"), currency="EUR")
    ]


def test_a_duplicate_sku_is_refused_and_nothing_is_stored_or_published(store: ProductStore) -> None:
    create(store, sku="MUG-1")
    with pytest.raises(SkuAlreadyExists):
        create(store, sku="MUG-1")
    assert len(store.products.rows) == len(store.stock.rows) == 1
    assert len(store.publisher.of_type(ProductCreated)) == 1


def test_an_invalid_price_creates_nothing(store: ProductStore) -> None:
    with pytest.raises(InvalidPrice):
        create(store, price="1.999")
    assert store.products.rows == {}


@pytest.mark.parametrize("stock", [MAX_STOCK + 1, -1])
def test_an_initial_stock_outside_the_documented_range_creates_nothing(store: ProductStore, stock: int) -> None:
    """The HTTP schema refused it, but every other caller (the CLI, other contexts) got it in."""
    with pytest.raises(InvalidInitialStock, match="between 0 and 1,000,000,000"):
        create(store, stock=stock)
    assert store.products.rows == {} and store.stock.rows == {}
    assert store.publisher.published == []


def test_the_maximum_initial_stock_is_accepted(store: ProductStore) -> None:
    assert create(store, stock=MAX_STOCK).stock == MAX_STOCK


def test_a_failed_commit_publishes_nothing(store: ProductStore) -> None:
    def fail(_uow: Any) -> None:
        raise CommitFailed()

    store.before_commit = fail
    with pytest.raises(CommitFailed):
        create(store)
    assert store.products.rows == {}
    assert store.publisher.published == []


def test_revising_changes_the_given_fields_and_keeps_the_rest(store: ProductStore) -> None:
    product = create(store, price="5.00", stock=3)
    revised = handlers.ReviseProductHandler(uow=store)(
        handlers.ReviseProduct(product.id, description="blue", price=Decimal("6"))
    )
    assert (revised.name, revised.description, revised.price, revised.stock) == ("Thing", "blue", Decimal("6.00"), 3)
    cleared = handlers.ReviseProductHandler(uow=store)(handlers.ReviseProduct(product.id, description=None))
    assert (cleared.description, cleared.price) == (None, Decimal("6.00"))
    assert handlers.GetProductHandler(catalogue=store.catalogue())(handlers.GetProduct(product.id)) == cleared


def test_revising_or_getting_an_unknown_product_is_product_not_found(store: ProductStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(ProductNotFound) as raised:
        handlers.ReviseProductHandler(uow=store)(handlers.ReviseProduct(missing, name="X"))
    assert raised.value.product_ids == (missing,)
    with pytest.raises(ProductNotFound):
        handlers.GetProductHandler(catalogue=store.catalogue())(handlers.GetProduct(missing))


def test_get_products_returns_the_known_ones_with_current_stock(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    a, b = create(store, stock=5), create(store, stock=2)
    reserve(handlers.ReserveStock(uuid.uuid4(), [StockLine(a.id, 3)]))
    found = handlers.GetProductsHandler(catalogue=store.catalogue())(handlers.GetProducts([a.id, b.id, uuid.uuid4()]))
    assert set(found) == {a.id, b.id}
    assert (found[a.id].stock, found[b.id].stock) == (2, 2)


def test_listing_pages_through_products_in_sku_order(store: ProductStore) -> None:
    for sku in ["C-mug", "A-cup", "B-plate", "D-cup-large"]:
        create(store, sku=sku)
    list_products = handlers.ListProductsHandler(uow=store)
    first = list_products(handlers.ListProducts(limit=2))
    assert ([p.sku for p in first.items], first.last_sku, first.has_more) == (["A-cup", "B-plate"], "B-plate", True)
    second = list_products(handlers.ListProducts(limit=2, after_sku=first.last_sku))
    assert ([p.sku for p in second.items], second.has_more) == (["C-mug", "D-cup-large"], False)
    cups = list_products(handlers.ListProducts(limit=10, query="CUP"))
    assert [p.sku for p in cups.items] == ["A-cup", "D-cup-large"]
    empty = list_products(handlers.ListProducts(limit=10, after_sku="Z"))
    assert (empty.items, empty.last_sku, empty.has_more) == ([], None, False)


# --- stock adjustments -----------------------------------------------------------------------


def test_adjusting_stock_changes_it_and_records_why(store: ProductStore) -> None:
    product = create(store, stock=5)
    adjusted = handlers.AdjustStockHandler(uow=store)(handlers.AdjustStock(product.id, -5, "stocktake"))
    assert adjusted.stock == 0
    assert available(store, product) == 0
    assert list(store.adjustments.rows.values()) == [StockAdjustment(product.id, -5, "stocktake")]


def test_adjusting_below_zero_is_refused_and_changes_nothing(store: ProductStore) -> None:
    product = create(store, stock=5)
    with pytest.raises(StockWouldGoNegative):
        handlers.AdjustStockHandler(uow=store)(handlers.AdjustStock(product.id, -6, "oops"))
    assert store.level(product.id) == StockLevel(available=5, reserved=0)
    assert store.adjustments.rows == {}


def test_stock_over_the_maximum_can_be_reduced_but_not_raised(store: ProductStore) -> None:
    """A level over the maximum is possible from before the maximum existed."""
    product = create(store, stock=5)
    store.stock.rows[product.id] = StockLevel(available=MAX_STOCK + 10, reserved=0)
    adjust = handlers.AdjustStockHandler(uow=store)

    assert adjust(handlers.AdjustStock(product.id, -1, "stocktake")).stock == MAX_STOCK + 9
    with pytest.raises(StockWouldExceedMaximum):
        adjust(handlers.AdjustStock(product.id, 1, "delivery"))
    assert store.level(product.id) == StockLevel(available=MAX_STOCK + 9, reserved=0)


def test_adjusting_only_counts_available_stock(store: ProductStore, reserve: handlers.ReserveStockHandler) -> None:
    """Reserved units are promised to someone: an adjustment cannot take them."""
    product = create(store, stock=5)
    reserve(handlers.ReserveStock(uuid.uuid4(), [StockLine(product.id, 4)]))
    with pytest.raises(StockWouldGoNegative):
        handlers.AdjustStockHandler(uow=store)(handlers.AdjustStock(product.id, -2, None))
    assert store.level(product.id) == StockLevel(available=1, reserved=4)


def test_adjusting_an_unknown_product_is_product_not_found(store: ProductStore) -> None:
    with pytest.raises(ProductNotFound):
        handlers.AdjustStockHandler(uow=store)(handlers.AdjustStock(uuid.uuid4(), 1, None))


# --- reservations ----------------------------------------------------------------------------


def test_reserving_takes_stock_for_every_line_and_publishes_stock_reserved(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    a, b = create(store, stock=5), create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(a.id, 2), StockLine(b.id, 1), StockLine(a.id, 1)]))
    assert store.level(a.id) == StockLevel(available=2, reserved=3)
    assert store.level(b.id) == StockLevel(available=4, reserved=1)
    (event,) = store.publisher.of_type(StockReserved)
    assert event.reservation_id == reservation_id
    assert sorted(event.lines, key=lambda line: line.product_id) == sorted(
        [StockLine(a.id, 3), StockLine(b.id, 1)], key=lambda line: line.product_id
    )


def test_reserving_is_all_or_nothing(store: ProductStore, reserve: handlers.ReserveStockHandler) -> None:
    plenty, scarce = create(store, stock=10), create(store, stock=1)
    reservation_id = uuid.uuid4()
    with pytest.raises(InsufficientStock) as raised:
        reserve(handlers.ReserveStock(reservation_id, [StockLine(plenty.id, 3), StockLine(scarce.id, 2)]))
    assert (raised.value.product_id, raised.value.sku, raised.value.requested) == (scarce.id, scarce.sku, 2)
    assert store.level(plenty.id) == StockLevel(available=10, reserved=0)
    assert store.level(scarce.id) == StockLevel(available=1, reserved=0)
    assert store.reservations.rows == {}
    assert store.publisher.of_type(StockReserved) == []


def test_a_refused_reservation_id_can_be_used_once_stock_arrives(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    """The refusal stored nothing under the id, so retrying it is not a conflict."""
    product = create(store, stock=1)
    reservation_id = uuid.uuid4()
    with pytest.raises(InsufficientStock):
        reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    handlers.AdjustStockHandler(uow=store)(handlers.AdjustStock(product.id, 1, "delivery"))
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    assert store.level(product.id) == StockLevel(available=0, reserved=2)


def test_reserving_an_unknown_product_is_product_not_found_and_takes_nothing(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    known, missing = create(store, stock=5), uuid.uuid4()
    with pytest.raises(ProductNotFound) as raised:
        reserve(handlers.ReserveStock(uuid.uuid4(), [StockLine(known.id, 1), StockLine(missing, 1)]))
    assert raised.value.product_ids == (missing,)
    assert available(store, known) == 5
    assert store.reservations.rows == {}


def test_repeating_a_reservation_with_the_same_lines_changes_nothing(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    a, b = create(store, stock=5), create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(a.id, 2), StockLine(b.id, 1)]))
    commits = store.commits
    reserve(handlers.ReserveStock(reservation_id, [StockLine(b.id, 1), StockLine(a.id, 1), StockLine(a.id, 1)]))
    assert (available(store, a), available(store, b)) == (3, 4)
    assert store.commits == commits
    assert len(store.publisher.of_type(StockReserved)) == 1


@pytest.mark.parametrize("other_quantity", [1, 3])
def test_reusing_a_reservation_id_for_other_lines_is_a_conflict(
    store: ProductStore, reserve: handlers.ReserveStockHandler, other_quantity: int
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    with pytest.raises(ReservationConflict):
        reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, other_quantity)]))
    assert available(store, product) == 3


def test_reusing_a_reservation_id_for_another_product_is_a_conflict(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    a, b = create(store, stock=5), create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(a.id, 2)]))
    with pytest.raises(ReservationConflict):
        reserve(handlers.ReserveStock(reservation_id, [StockLine(a.id, 2), StockLine(b.id, 1)]))
    assert (available(store, a), available(store, b)) == (3, 5)


def test_releasing_returns_the_stock_once(
    store: ProductStore, reserve: handlers.ReserveStockHandler, release: handlers.ReleaseStockHandler
) -> None:
    a, b = create(store, stock=5), create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(a.id, 2), StockLine(b.id, 5)]))
    release(handlers.ReleaseStock(reservation_id, "order_cancelled"))
    release(handlers.ReleaseStock(reservation_id, "order_cancelled"))
    release(handlers.ReleaseStock(reservation_id, "something else"))
    assert store.level(a.id) == StockLevel(available=5, reserved=0)
    assert store.level(b.id) == StockLevel(available=5, reserved=0)
    assert store.reservations.rows[reservation_id].status is ReservationStatus.RELEASED
    (event,) = store.publisher.of_type(StockReleased)
    assert (event.reservation_id, event.reason) == (reservation_id, "order_cancelled")
    assert set(event.lines) == {StockLine(a.id, 2), StockLine(b.id, 5)}


def test_releasing_an_unknown_reservation_changes_nothing(
    store: ProductStore, release: handlers.ReleaseStockHandler
) -> None:
    product = create(store, stock=5)
    commits = store.commits
    release(handlers.ReleaseStock(uuid.uuid4(), "order_not_saved"))
    assert available(store, product) == 5
    assert store.commits == commits
    assert store.publisher.of_type(StockReleased) == []


def test_reserving_a_released_id_again_is_a_conflict(
    store: ProductStore, reserve: handlers.ReserveStockHandler, release: handlers.ReleaseStockHandler
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    release(handlers.ReleaseStock(reservation_id, "order_cancelled"))
    with pytest.raises(ReservationConflict):
        reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    assert store.level(product.id) == StockLevel(available=5, reserved=0)


def test_a_confirmed_reservation_still_holds_and_can_be_released(
    store: ProductStore, reserve: handlers.ReserveStockHandler, release: handlers.ReleaseStockHandler
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    confirm = handlers.ConfirmReservationHandler(uow=store)
    confirm(handlers.ConfirmReservation(reservation_id))
    confirm(handlers.ConfirmReservation(uuid.uuid4()))  # an unknown id is ignored
    assert store.reservations.rows[reservation_id].status is ReservationStatus.CONFIRMED
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))  # still a harmless repeat
    assert available(store, product) == 3
    release(handlers.ReleaseStock(reservation_id, "order_cancelled"))
    assert store.level(product.id) == StockLevel(available=5, reserved=0)


def test_the_sweep_expires_only_reservations_left_unconfirmed_past_the_time_to_live(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    product = create(store, stock=5)
    left, confirmed = uuid.uuid4(), uuid.uuid4()
    reserve(handlers.ReserveStock(left, [StockLine(product.id, 2)]))
    reserve(handlers.ReserveStock(confirmed, [StockLine(product.id, 1)]))
    handlers.ConfirmReservationHandler(uow=store)(handlers.ConfirmReservation(confirmed))

    def sweep(ttl: timedelta) -> int:
        return handlers.ExpireReservationsHandler(uow=store, ttl=ttl)(handlers.ExpireReservations())

    assert sweep(timedelta(hours=1)) == 0
    assert sweep(timedelta(seconds=-1)) == 1
    assert sweep(timedelta(seconds=-1)) == 0
    assert store.reservations.rows[left].status is ReservationStatus.EXPIRED
    assert store.level(product.id) == StockLevel(available=4, reserved=1)


def test_a_released_reservation_stays_released_when_confirmed(
    store: ProductStore, reserve: handlers.ReserveStockHandler, release: handlers.ReleaseStockHandler
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    release(handlers.ReleaseStock(reservation_id, "order_not_saved"))
    handlers.ConfirmReservationHandler(uow=store)(handlers.ConfirmReservation(reservation_id))
    assert store.reservations.rows[reservation_id].status is ReservationStatus.RELEASED
    assert available(store, product) == 5


def _twin_wins_the_race(store: ProductStore, reserve: handlers.ReserveStockHandler,
                        reservation_id: uuid.UUID, lines: Sequence[StockLine]) -> None:
    """Make a concurrent call with ``lines`` commit just before this call's insert."""
    done: list[bool] = []

    def twin(_reservation: Any) -> None:
        if not done:
            done.append(True)
            reserve(handlers.ReserveStock(reservation_id, lines))

    store.before_reservation_add = twin


def test_losing_the_insert_race_to_an_identical_twin_is_a_harmless_repeat(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    _twin_wins_the_race(store, reserve, reservation_id, [StockLine(product.id, 2)])
    reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    assert store.level(product.id) == StockLevel(available=3, reserved=2)
    assert len(store.publisher.of_type(StockReserved)) == 1


def test_losing_the_insert_race_to_a_twin_with_other_lines_is_a_conflict(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    product = create(store, stock=5)
    reservation_id = uuid.uuid4()
    _twin_wins_the_race(store, reserve, reservation_id, [StockLine(product.id, 1)])
    with pytest.raises(ReservationConflict):
        reserve(handlers.ReserveStock(reservation_id, [StockLine(product.id, 2)]))
    assert store.level(product.id) == StockLevel(available=4, reserved=1)


def test_events_are_published_only_once_the_reservation_is_committed(
    store: ProductStore, reserve: handlers.ReserveStockHandler
) -> None:
    product = create(store, stock=5)
    seen_committed: list[bool] = []

    def check(events: Sequence[Any]) -> None:
        for event in events:
            if isinstance(event, StockReserved):
                seen_committed.append(event.reservation_id in store.reservations.rows)

    store.publisher.listeners.append(check)
    reserve(handlers.ReserveStock(uuid.uuid4(), [StockLine(product.id, 1)]))
    assert seen_committed == [True]


# --- the in-process ProductApi ---------------------------------------------------------------


def test_the_facade_translates_reservation_lines_for_the_handlers(store: ProductStore) -> None:
    product = create(store, stock=5)
    api = ProductFacade(
        get_products=handlers.GetProductsHandler(catalogue=store.catalogue()),
        reserve=handlers.ReserveStockHandler(uow=store),
        release=handlers.ReleaseStockHandler(uow=store),
    )
    reservation_id = uuid.uuid4()
    api.reserve(reservation_id, [ReservationLine(product.id, 4)])
    assert api.get_products([product.id])[product.id].stock == 1
    api.release(reservation_id, "order_cancelled")
    assert api.get_products([product.id])[product.id].stock == 5
