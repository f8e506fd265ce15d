"""The product context's ports in memory, and its published ProductApi as the order context sees it."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from contexts.product.api import (
    CurrenciesDiffer,
    InsufficientStock,
    ProductApi,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from contexts.product.application import ports as product_ports
from contexts.product.application.handlers import product_dto
from contexts.product.application.ports import ReservationExists
from contexts.product.domain import exceptions as product_exceptions
from contexts.product.domain import model as product_model
from infrastructure.events.delivery import Delivery
from tests.fakes.common import (
    FakeUnitOfWork,
    Staged,
    Store,
    Table,
    detached,
)


@dataclasses.dataclass(frozen=True)
class StockLevel:
    available: int
    reserved: int


@dataclasses.dataclass(frozen=True)
class StockAdjustment:
    product_id: uuid.UUID
    delta: int
    reason: str | None


class FakeProductRepository:
    def __init__(self, products: Staged[uuid.UUID, product_model.Product], seen: list[Any]) -> None:
        self._products = products
        self._seen = seen

    def add(self, product: product_model.Product) -> None:
        if any(other.sku == product.sku for other in self._products.values()):
            raise product_exceptions.SkuAlreadyExists(product.sku)
        self._products.put(product.id, detached(product))
        self._seen.append(product)

    def save(self, product: product_model.Product) -> None:
        if self._products.get(product.id) is None:
            raise KeyError(product.id)
        self._products.put(product.id, detached(product))
        self._seen.append(product)

    def get(self, product_id: uuid.UUID) -> product_model.Product | None:
        product = self._products.get(product_id)
        return detached(product) if product else None

    def get_many(self, product_ids: Collection[uuid.UUID]) -> list[product_model.Product]:
        return [detached(product) for product_id in product_ids if (product := self._products.get(product_id))]

    def list(self, *, limit: int, after_sku: str | None, query: str | None) -> list[product_model.Product]:
        needle = (query or "").lower()
        found = sorted(
            (
                product
                for product in self._products.values()
                if (after_sku is None or product.sku > after_sku)
                and (needle in product.name.lower() or needle in product.sku.lower())
            ),
            key=lambda product: product.sku,
        )
        return [detached(product) for product in found[:limit]]


class FakeStockRepository:
    def __init__(
        self,
        levels: Staged[uuid.UUID, StockLevel],
        adjustments: Staged[uuid.UUID, StockAdjustment],
        lock: threading.Lock,
    ) -> None:
        self._levels = levels
        self._adjustments = adjustments
        self._lock = lock

    def create(self, product_id: uuid.UUID, quantity: int) -> None:
        self._levels.put(product_id, StockLevel(available=quantity, reserved=0))

    def available(self, product_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        return {product_id: level.available for product_id in product_ids if (level := self._levels.get(product_id))}

    def take(self, product_id: uuid.UUID, quantity: int) -> bool:
        with self._lock:
            level = self._levels.get(product_id)
            if level is None or level.available < quantity:
                return False
            self._levels.put(product_id, StockLevel(level.available - quantity, level.reserved + quantity))
            return True

    def give_back(self, product_id: uuid.UUID, quantity: int) -> None:
        with self._lock:
            level = self._levels.get(product_id)
            if level is not None:
                self._levels.put(product_id, StockLevel(level.available + quantity, level.reserved - quantity))

    def adjust(self, product_id: uuid.UUID, delta: int, reason: str | None) -> bool:
        with self._lock:
            level = self._levels.get(product_id)
            if level is None or level.available + delta < 0:
                return False
            if delta > 0 and level.available + level.reserved + delta > product_model.MAX_STOCK:
                return False
            self._levels.put(product_id, StockLevel(level.available + delta, level.reserved))
            self._adjustments.put(uuid.uuid4(), StockAdjustment(product_id, delta, reason))
            return True


class FakeReservationRepository:
    def __init__(
        self,
        reservations: Staged[uuid.UUID, product_model.Reservation],
        seen: list[Any],
        store: ProductStore,
    ) -> None:
        self._reservations = reservations
        self._seen = seen
        self._store = store

    def add(self, reservation: product_model.Reservation) -> None:
        if self._store.before_reservation_add is not None:
            self._store.before_reservation_add(reservation)
        # The primary key is checked against committed rows too, as a flush would be.
        if self._reservations.get(reservation.id) is not None or reservation.id in self._store.reservations.rows:
            raise ReservationExists(str(reservation.id))
        # The lines' foreign keys, as the database checks them (the handler takes their stock
        # first, so a product it names is there).
        assert all(line.product_id in self._store.products.rows for line in reservation.lines)
        self._reservations.put(reservation.id, detached(reservation))
        self._seen.append(reservation)

    def get(self, reservation_id: uuid.UUID, *, for_update: bool = False) -> product_model.Reservation | None:
        reservation = self._reservations.get(reservation_id)
        return detached(reservation) if reservation else None

    def save(self, reservation: product_model.Reservation) -> None:
        if self._reservations.get(reservation.id) is None:
            raise KeyError(reservation.id)
        self._reservations.put(reservation.id, detached(reservation))
        self._seen.append(reservation)

    def confirm_if_reserved(self, reservation_id: uuid.UUID) -> bool:
        reservation = self._reservations.get(reservation_id)
        if reservation is None or reservation.status is not product_model.ReservationStatus.RESERVED:
            return False
        confirmed = dataclasses.replace(reservation, status=product_model.ReservationStatus.CONFIRMED, events=[])
        self._reservations.put(reservation_id, confirmed)
        return True

    def unconfirmed_before(self, moment: datetime, limit: int) -> list[uuid.UUID]:
        overdue = [
            reservation
            for reservation in self._reservations.values()
            if reservation.status is product_model.ReservationStatus.RESERVED and reservation.created_at < moment
        ]
        return [reservation.id for reservation in sorted(overdue, key=lambda each: each.created_at)[:limit]]


class FakeProductUnitOfWork(FakeUnitOfWork):
    products: product_ports.ProductRepository
    stock: product_ports.StockRepository
    reservations: product_ports.ReservationRepository

    def __init__(self, store: ProductStore, *, write: bool) -> None:
        super().__init__(store, write=write)
        self._store = store

    def _open(self) -> None:
        store = self._store
        self.products = FakeProductRepository(self._stage(store.products), self.seen)
        self.stock = FakeStockRepository(self._stage(store.stock), self._stage(store.adjustments), store.lock)
        self.reservations = FakeReservationRepository(self._stage(store.reservations), self.seen, store)

    def reserve_and_commit(self, reservation: product_model.Reservation) -> bool | None:
        """No one-step reservation here: the handler's steps are what these tests exercise."""
        return None

    def confirm_reserved_and_commit(self, reservation_id: uuid.UUID) -> bool:
        if not self.reservations.confirm_if_reserved(reservation_id):
            return False
        self.commit()
        return True


class FakeCatalogue:
    """The product read side over the store's committed rows."""

    def __init__(self, store: ProductStore) -> None:
        self._store = store

    def product(self, product_id: uuid.UUID) -> ProductDTO | None:
        product = self._store.products.rows.get(product_id)
        if product is None:
            return None
        return product_dto(product, self._store.stock.rows[product_id].available)

    def products(self, product_ids: Collection[uuid.UUID]) -> list[ProductDTO]:
        return [found for product_id in product_ids if (found := self.product(product_id)) is not None]


class ProductStore(Store):
    """The product context's storage and its unit-of-work factory.

    ``before_reservation_add`` runs as a reservation is added: a test can commit a
    "concurrent" twin from there, to take the path where the insert loses the race.
    """

    def __init__(self) -> None:
        super().__init__()
        self.products: Table[uuid.UUID, product_model.Product] = Table()
        self.stock: Table[uuid.UUID, StockLevel] = Table()
        self.adjustments: Table[uuid.UUID, StockAdjustment] = Table()
        self.reservations: Table[uuid.UUID, product_model.Reservation] = Table()
        self.before_reservation_add: Callable[[product_model.Reservation], None] | None = None
        self.lock = threading.Lock()

    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> FakeProductUnitOfWork:
        """``delivery`` is not recorded: these fakes have no inbox (the real one is tested on the database)."""
        return FakeProductUnitOfWork(self, write=write)

    def level(self, product_id: uuid.UUID) -> StockLevel:
        return self.stock.rows[product_id]

    def catalogue(self) -> FakeCatalogue:
        return FakeCatalogue(self)


# --- the product context as the order context sees it ----------------------------------------


@dataclasses.dataclass
class _FakeReservation:
    lines: Mapping[uuid.UUID, int]
    released: bool = False


class FakeProductApi:
    """An in-memory :class:`~contexts.product.api.ProductApi` that records every call: what the
    order and recommendation tests meet in place of the product context, held to its contract by
    ``tests/contexts/product/contract/test_api.py`` beside the real implementations."""

    def __init__(self) -> None:
        self.products: dict[uuid.UUID, ProductDTO] = {}
        self.reservations: dict[uuid.UUID, _FakeReservation] = {}
        self.reserve_calls: list[tuple[uuid.UUID, tuple[ReservationLine, ...]]] = []
        self.lookups: list[list[uuid.UUID]] = []
        self.release_calls: list[tuple[uuid.UUID, str]] = []

    def add(
        self,
        *,
        product_id: uuid.UUID | None = None,
        sku: str | None = None,
        name: str = "Thing",
        price: str = "10.00",
        currency: str = "USD",
        stock: int = 10,
    ) -> ProductDTO:
        product = ProductDTO(
            id=product_id or uuid.uuid4(),
            sku=sku or f"SKU-{uuid.uuid4().hex[:8]}",
            name=name,
            description=None,
            price=Decimal(price),
            currency=currency,
            stock=stock,
        )
        self.products[product.id] = product
        return product

    def change_price(self, product_id: uuid.UUID, price: str) -> None:
        self.products[product_id] = dataclasses.replace(self.products[product_id], price=Decimal(price))

    def stock_of(self, product_id: uuid.UUID) -> int:
        return self.products[product_id].stock

    def get_products(self, product_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, ProductDTO]:
        self.lookups.append(list(product_ids))
        return {product_id: self.products[product_id] for product_id in product_ids if product_id in self.products}

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        """Recorded as a reservation (``reserve_calls``), not as a lookup; as the product
        context does, products of several currencies are refused before the stock, holding nothing."""
        wanted = _merged(lines)
        currencies = {self.products[product_id].currency for product_id in wanted if product_id in self.products}
        if reservation_id not in self.reservations and wanted.keys() <= self.products.keys() and len(currencies) > 1:
            self.reserve_calls.append((reservation_id, tuple(lines)))
            raise CurrenciesDiffer(currencies)
        self.reserve(reservation_id, lines)
        return {line.product_id: self.products[line.product_id] for line in lines}

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        self.reserve_calls.append((reservation_id, tuple(lines)))
        wanted = _merged(lines)
        existing = self.reservations.get(reservation_id)
        if existing is not None:
            if existing.released or dict(existing.lines) != wanted:
                raise ReservationConflict("this reservation id is already used or released")
            return
        missing = wanted.keys() - self.products.keys()
        if missing:
            raise ProductNotFound(missing)
        for product_id, quantity in sorted(wanted.items()):
            product = self.products[product_id]
            if product.stock < quantity:
                raise InsufficientStock(product_id, product.sku, quantity)
        for product_id, quantity in wanted.items():
            self._move(product_id, -quantity)
        self.reservations[reservation_id] = _FakeReservation(wanted)

    def release(self, reservation_id: uuid.UUID, reason: str) -> None:
        self.release_calls.append((reservation_id, reason))
        reservation = self.reservations.get(reservation_id)
        if reservation is None or reservation.released:
            return
        reservation.released = True
        for product_id, quantity in reservation.lines.items():
            self._move(product_id, quantity)

    def _move(self, product_id: uuid.UUID, delta: int) -> None:
        product = self.products[product_id]
        self.products[product_id] = dataclasses.replace(product, stock=product.stock + delta)


def _merged(lines: Iterable[ReservationLine]) -> dict[uuid.UUID, int]:
    totals: Counter[uuid.UUID] = Counter()
    for line in lines:
        totals[line.product_id] += line.quantity
    return dict(totals)


if TYPE_CHECKING:  # mypy proves the fakes implement the ports they stand in for
    _factory: product_ports.UnitOfWorkFactory = ProductStore()
    _product_api: ProductApi = FakeProductApi()
