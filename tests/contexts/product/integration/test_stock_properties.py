"""Stock is conserved under any sequence of reserve / reserve_priced / repeat / release / confirm / adjust.

A hypothesis state machine drives the product context's handlers and published API on real
databases (SQLite files, and PostgreSQL when ``SHOP_TEST_POSTGRES_URL`` is set), and the same
rules on the in-memory fakes, next to a model of its own. After
every step the ``product_stock`` rows must show: available and reserved never negative,
available + reserved == initial stock + the adjustments that succeeded, reserved == the units
of the reservations still live; each call must succeed or fail as the model predicts, and a
refused call must change nothing.

The app is built once per test run, not per example: every example creates its own
products and reservation ids and looks only at those. An app per example (create_app plus
migrations, ~0.2 s) made a failure take hypothesis over five minutes to shrink, and it gave up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Protocol

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule
from sqlalchemy import Uuid, column, select, table

from app.factory import container_of
from contexts.product.api import (
    InsufficientStock,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from contexts.product.application import handlers
from contexts.product.application.facade import ProductFacade
from contexts.product.domain.exceptions import StockWouldGoNegative
from infrastructure.events.delivery import Delivery
from tests.conftest import POSTGRES_URL_VARIABLE, Backend, PostgresBackend, start_app, stop_app
from tests.fakes.product import ProductStore

Levels = dict[uuid.UUID, tuple[int, int]]  # product id -> (available, reserved)
REFUSALS = (InsufficientStock, ReservationConflict, ProductNotFound, StockWouldGoNegative)
CONFIRM_SUBSCRIBER = "product.confirm_reservation"  # the delivery the confirmation records in the inbox

product_stock = table("product_stock", column("product_id", Uuid()), column("available"), column("reserved"))


class StockBackend(Protocol):
    """The product context as the machine drives it."""

    def create_product(self, initial_stock: int) -> uuid.UUID: ...

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None: ...

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]: ...

    def release(self, reservation_id: uuid.UUID) -> None: ...

    def confirm(self, reservation_id: uuid.UUID) -> None: ...

    def adjust(self, product_id: uuid.UUID, delta: int) -> None: ...

    def levels(self, product_ids: Collection[uuid.UUID]) -> Levels:
        """The stock rows of these products (absent ids are simply missing)."""
        ...


def _create_product(initial_stock: int) -> handlers.CreateProduct:
    return handlers.CreateProduct(
        sku=f"SKU-{uuid.uuid4().hex[:10]}",
        name="Thing",
        description=None,
        price=Decimal("1.00"),
        currency="USD",
        initial_stock=initial_stock,
    )


class AppBackend:
    """A whole app on real databases (SQLite files in a temporary folder, or PostgreSQL
    schemas), used through its container."""

    def __init__(self, databases: Backend) -> None:
        self._databases = databases
        self._folder = tempfile.mkdtemp(prefix="stock-properties-")
        instance = Path(self._folder) / "instance"
        self._app = start_app(instance, **databases.settings(instance))
        self._container = container_of(self._app)
        self._api = self._container.product.api()

    def create_product(self, initial_stock: int) -> uuid.UUID:
        product: ProductDTO = self._container.product.create_product()(_create_product(initial_stock))
        return product.id

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        self._api.reserve(reservation_id, lines)

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        return self._api.reserve_priced(reservation_id, lines)

    def release(self, reservation_id: uuid.UUID) -> None:
        self._api.release(reservation_id, "property test")

    def confirm(self, reservation_id: uuid.UUID) -> None:
        """As an OrderPlaced delivery confirms: on PostgreSQL, one statement that confirms and
        records the delivery in the inbox, outside any transaction."""
        self._container.product.confirm_reservation()(
            handlers.ConfirmReservation(reservation_id), delivery=Delivery(CONFIRM_SUBSCRIBER, uuid.uuid4())
        )

    def adjust(self, product_id: uuid.UUID, delta: int) -> None:
        self._container.product.adjust_stock()(handlers.AdjustStock(product_id, delta, "property test"))

    def levels(self, product_ids: Collection[uuid.UUID]) -> Levels:
        statement = select(product_stock.c.product_id, product_stock.c.available, product_stock.c.reserved).where(
            product_stock.c.product_id.in_(list(product_ids))
        )
        # ``product_stock`` is a lightweight table(), which schema_translate_map leaves alone.
        with self._container.product_database().begin() as connection:
            rows = connection.execute(statement)
            return {product_id: (available, reserved) for product_id, available, reserved in rows}

    def close(self) -> None:
        stop_app(self._app)
        self._databases.cleanup()
        shutil.rmtree(self._folder, ignore_errors=True)


class FakeBackend:
    """The same handlers on the in-memory fakes of tests/fakes/product.py."""

    def __init__(self) -> None:
        self._store = ProductStore()
        self._api = ProductFacade(
            get_products=handlers.GetProductsHandler(catalogue=self._store.catalogue()),
            reserve=handlers.ReserveStockHandler(uow=self._store),
            release=handlers.ReleaseStockHandler(uow=self._store),
        )

    def create_product(self, initial_stock: int) -> uuid.UUID:
        return handlers.CreateProductHandler(uow=self._store)(_create_product(initial_stock)).id

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        self._api.reserve(reservation_id, lines)

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        return self._api.reserve_priced(reservation_id, lines)

    def release(self, reservation_id: uuid.UUID) -> None:
        self._api.release(reservation_id, "property test")

    def confirm(self, reservation_id: uuid.UUID) -> None:
        handlers.ConfirmReservationHandler(uow=self._store)(handlers.ConfirmReservation(reservation_id))

    def adjust(self, product_id: uuid.UUID, delta: int) -> None:
        handlers.AdjustStockHandler(uow=self._store)(handlers.AdjustStock(product_id, delta, "property test"))

    def levels(self, product_ids: Collection[uuid.UUID]) -> Levels:
        rows = self._store.stock.rows
        return {
            product_id: (rows[product_id].available, rows[product_id].reserved)
            for product_id in product_ids
            if product_id in rows
        }


@dataclass
class Held:
    """A reservation the model believes is stored."""

    lines: Counter[uuid.UUID]
    released: bool = False


def merged(lines: Collection[ReservationLine]) -> Counter[uuid.UUID]:
    totals = Counter[uuid.UUID]()
    for line in lines:
        totals[line.product_id] += line.quantity
    return totals


# A few units, so reservations often succeed and pile up (a rule below asks for too many).
quantities = st.integers(min_value=1, max_value=4)


class StockMachine(RuleBasedStateMachine):
    """Rules and invariants; subclasses say which backend they run on."""

    products = Bundle("products")
    reservation_ids = Bundle("reservation_ids")

    def __init__(self) -> None:
        super().__init__()
        self.backend = self.make_backend()
        self.initial: dict[uuid.UUID, int] = {}
        self.adjusted = Counter[uuid.UUID]()
        self.held: dict[uuid.UUID, Held] = {}
        self.attempted: dict[uuid.UUID, list[ReservationLine]] = {}

    def make_backend(self) -> StockBackend:
        raise NotImplementedError

    def levels(self) -> Levels:
        return self.backend.levels(self.initial)

    # --- the model -------------------------------------------------------------------------

    def live_reserved(self) -> Counter[uuid.UUID]:
        totals = Counter[uuid.UUID]()
        for held in self.held.values():
            if not held.released:
                totals.update(held.lines)
        return totals

    def expected_available(self, product_id: uuid.UUID) -> int:
        return self.initial[product_id] + self.adjusted[product_id] - self.live_reserved()[product_id]

    def predict_reserve(self, reservation_id: uuid.UUID, lines: list[ReservationLine]) -> type[Exception] | None:
        wanted = merged(lines)
        held = self.held.get(reservation_id)
        if held is not None:
            return None if held.lines == wanted and not held.released else ReservationConflict
        if wanted.keys() - self.initial.keys():
            return ProductNotFound
        if any(quantity > self.expected_available(product_id) for product_id, quantity in wanted.items()):
            return InsufficientStock
        return None

    def refused_or_none(self, call: Callable[[], None]) -> type[Exception] | None:
        try:
            call()
        except REFUSALS as error:
            return type(error)
        return None

    # --- rules -----------------------------------------------------------------------------

    @initialize(target=products, stocks=st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=3))
    def create_products(self, stocks: list[int]) -> object:
        for stock in stocks:
            self.initial[self.backend.create_product(stock)] = stock
        return multiple(*self.initial)

    @initialize(target=reservation_ids, count=st.integers(min_value=2, max_value=4))
    def choose_reservation_ids(self, count: int) -> object:
        """A small pool, so ids come back: unknown until first used, then repeated, released, reused.
        Random, not drawn: examples share the SQLite database, and hypothesis repeats its draws."""
        return multiple(*(uuid.uuid4() for _ in range(count)))

    def try_reserve(self, reservation_id: uuid.UUID, lines: list[ReservationLine], *, priced: bool = False) -> None:
        """``priced``: through ``reserve_priced``, whose answer must be the reserved products
        with their stock as it is once reserved."""
        expected = self.predict_reserve(reservation_id, lines)
        before = self.levels()
        answered: list[Mapping[uuid.UUID, ProductDTO]] = []

        def reserve() -> None:
            if priced:
                answered.append(self.backend.reserve_priced(reservation_id, lines))
            else:
                self.backend.reserve(reservation_id, lines)

        outcome = self.refused_or_none(reserve)
        assert outcome is expected, f"reserve {lines} as {reservation_id}: got {outcome}, expected {expected}"
        if outcome is None:
            self.held.setdefault(reservation_id, Held(merged(lines)))
            if priced:
                levels = self.levels()
                (products,) = answered
                assert {product_id: product.stock for product_id, product in products.items()} == {
                    product_id: levels[product_id][0] for product_id in merged(lines)
                }, "reserve_priced answered other products, or other stock, than it reserved"
        else:
            assert self.levels() == before, "a refused reservation changed stock"
        self.attempted[reservation_id] = lines

    @rule(
        reservation_id=reservation_ids,
        lines=st.lists(st.builds(ReservationLine, products, quantities), min_size=1, max_size=3),
    )
    def reserve(self, reservation_id: uuid.UUID, lines: list[ReservationLine]) -> None:
        """A new id, or a used one with (most likely) other lines."""
        self.try_reserve(reservation_id, lines)

    @rule(
        reservation_id=reservation_ids,
        lines=st.lists(st.builds(ReservationLine, products, quantities), max_size=2),
        unknown=st.builds(ReservationLine, st.uuids(), quantities),
    )
    def reserve_an_unknown_product(
        self, reservation_id: uuid.UUID, lines: list[ReservationLine], unknown: ReservationLine
    ) -> None:
        self.try_reserve(reservation_id, [*lines, unknown])

    @rule(
        reservation_id=reservation_ids,
        lines=st.lists(st.builds(ReservationLine, products, quantities), max_size=2),
        product_id=products,
        excess=st.integers(min_value=0, max_value=5),
    )
    def reserve_all_that_is_available_or_more(
        self, reservation_id: uuid.UUID, lines: list[ReservationLine], product_id: uuid.UUID, excess: int
    ) -> None:
        """Exactly what is left of one product (excess 0), or more: then the other lines are not taken either."""
        wanted = merged(lines)[product_id]
        edge = ReservationLine(product_id, self.expected_available(product_id) - wanted + excess)
        request = [*lines, edge] if edge.quantity > 0 else lines
        if request:  # nothing left and no other lines: there is no edge to try
            self.try_reserve(reservation_id, request)

    @rule(
        reservation_id=reservation_ids,
        lines=st.lists(st.builds(ReservationLine, products, quantities), min_size=1, max_size=3),
    )
    def reserve_priced(self, reservation_id: uuid.UUID, lines: list[ReservationLine]) -> None:
        """What placing an order asks: the reservation and the products' prices in one call."""
        self.try_reserve(reservation_id, lines, priced=True)

    @rule(reservation_id=reservation_ids)
    def repeat_a_reservation_with_the_same_lines(self, reservation_id: uuid.UUID) -> None:
        """The same lines written differently: in reverse order, the first one split in two."""
        held = self.held.get(reservation_id)
        if held is not None:
            first, *rest = [ReservationLine(product_id, quantity) for product_id, quantity in held.lines.items()]
        elif reservation_id in self.attempted:  # tried but refused: nothing stored under the id
            first, *rest = self.attempted[reservation_id]
        else:
            return
        lines = [*reversed(rest), first]
        if first.quantity > 1:
            lines[-1:] = [ReservationLine(first.product_id, 1), ReservationLine(first.product_id, first.quantity - 1)]
        self.try_reserve(reservation_id, lines)

    @rule(reservation_id=reservation_ids)
    def release(self, reservation_id: uuid.UUID) -> None:
        """Live, already released, or never reserved. A released id stays used: releasing it
        again changes nothing, and reserving its lines again is a conflict."""
        held = self.held.get(reservation_id)
        before = self.levels()
        self.backend.release(reservation_id)
        if held is None or held.released:
            assert self.levels() == before, "releasing what does not hold stock changed stock"
            return
        held.released = True
        released = self.levels()
        self.backend.release(reservation_id)
        assert self.levels() == released, "releasing again changed stock"
        self.try_reserve(reservation_id, [ReservationLine(product_id, n) for product_id, n in held.lines.items()])

    @rule(reservation_id=reservation_ids)
    def confirm(self, reservation_id: uuid.UUID) -> None:
        """A confirmed reservation still holds its stock (it is a sale now), and may still be released."""
        before = self.levels()
        self.backend.confirm(reservation_id)
        assert self.levels() == before, "confirming changed stock"

    @rule(
        reservation_id=reservation_ids,
        lines=st.lists(st.builds(ReservationLine, products, quantities), min_size=1, max_size=3),
    )
    def reserve_then_confirm(self, reservation_id: uuid.UUID, lines: list[ReservationLine]) -> None:
        """What placing an order does: reserve, then confirm once the order is saved."""
        self.try_reserve(reservation_id, lines)
        if reservation_id in self.held:
            self.confirm(reservation_id)

    @rule(product_id=products, delta=st.integers(min_value=-20, max_value=20))
    def adjust(self, product_id: uuid.UUID, delta: int) -> None:
        expected = None if self.expected_available(product_id) + delta >= 0 else StockWouldGoNegative
        before = self.levels()
        outcome = self.refused_or_none(lambda: self.backend.adjust(product_id, delta))
        assert outcome is expected, f"adjust by {delta}: got {outcome}, expected {expected}"
        if outcome is None:
            self.adjusted[product_id] += delta
        else:
            assert self.levels() == before, "a refused adjustment changed stock"

    @rule(product_id=products, offset=st.integers(min_value=-3, max_value=3))
    def adjust_to_about_zero(self, product_id: uuid.UUID, offset: int) -> None:
        """Down to exactly nothing left (offset 0), a few units above, or a few below (refused)."""
        self.adjust(product_id, offset - self.expected_available(product_id))

    @rule(product_id=st.uuids(), delta=st.integers(min_value=-20, max_value=20))
    def adjust_an_unknown_product(self, product_id: uuid.UUID, delta: int) -> None:
        before = self.levels()
        assert self.refused_or_none(lambda: self.backend.adjust(product_id, delta)) is ProductNotFound
        assert self.levels() == before

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def stock_is_conserved(self) -> None:
        levels = self.levels()
        assert levels.keys() == self.initial.keys()
        live = self.live_reserved()
        for product_id, (available, reserved) in levels.items():
            assert available >= 0, f"available went negative: {available}"
            assert reserved >= 0, f"reserved went negative: {reserved}"
            assert available + reserved == self.initial[product_id] + self.adjusted[product_id]
            assert reserved == live[product_id], f"reserved {reserved}, live reservations hold {live[product_id]}"


class AppStockMachine(StockMachine):
    backend_for_the_run: ClassVar[AppBackend | None] = None

    def make_backend(self) -> StockBackend:
        assert self.backend_for_the_run is not None, "the test case's setUpClass builds it"
        return self.backend_for_the_run


class SqliteStockMachine(AppStockMachine):
    backend_for_the_run: ClassVar[AppBackend | None] = None


class PostgresStockMachine(AppStockMachine):
    backend_for_the_run: ClassVar[AppBackend | None] = None


class FakeStockMachine(StockMachine):
    def make_backend(self) -> StockBackend:
        return FakeBackend()


# Hypothesis's defaults for state machines, without the explain phase: it re-runs a failing case's
# variants under line tracing, which took over a minute on SQLite.
MACHINE_SETTINGS = settings(
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[phase for phase in Phase if phase is not Phase.explain],
)


class TestStockOnSqlite(SqliteStockMachine.TestCase):  # type: ignore[valid-type,misc]
    settings = settings(MACHINE_SETTINGS, max_examples=100)

    @classmethod
    def setUpClass(cls) -> None:
        SqliteStockMachine.backend_for_the_run = AppBackend(Backend())

    @classmethod
    def tearDownClass(cls) -> None:
        if SqliteStockMachine.backend_for_the_run is not None:
            SqliteStockMachine.backend_for_the_run.close()
            SqliteStockMachine.backend_for_the_run = None


class TestStockOnPostgresql(PostgresStockMachine.TestCase):  # type: ignore[valid-type,misc]
    settings = settings(MACHINE_SETTINGS, max_examples=100)

    @classmethod
    def setUpClass(cls) -> None:
        url = os.environ.get(POSTGRES_URL_VARIABLE)
        if not url:
            raise unittest.SkipTest(f"PostgreSQL: set {POSTGRES_URL_VARIABLE}")
        PostgresStockMachine.backend_for_the_run = AppBackend(PostgresBackend(url))

    @classmethod
    def tearDownClass(cls) -> None:
        if PostgresStockMachine.backend_for_the_run is not None:
            PostgresStockMachine.backend_for_the_run.close()
            PostgresStockMachine.backend_for_the_run = None


class TestStockOnFakes(FakeStockMachine.TestCase):  # type: ignore[valid-type,misc]
    settings = settings(MACHINE_SETTINGS, max_examples=200)
