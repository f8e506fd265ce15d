"""In-memory fakes of every context's ports, for unit tests without a database.

They keep the promises of the real adapters that the handlers rely on:

- a unit of work sees its own changes at once, everyone else only after ``commit``;
  leaving it without a commit drops them (the real one rolls back on exit);
- after a commit, the events recorded by the aggregates it saw (added or saved) go to a
  :class:`RecordingPublisher`, never before and never after a failed commit;
- a read-only unit of work (``write=False``) refuses writes and commits;
- stock moves check and change in one step under a lock, like the conditional UPDATEs;
- everything stored or handed out is a copy, as rows read back from a database would be.

``store.before_commit`` lets a test make a commit fail; the stores are the unit-of-work
factories the handlers take (``handler = SomeHandler(uow=store)``).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from contexts.order import events as order_events
from contexts.order.application import ports as order_ports
from contexts.order.application.handlers import IDEMPOTENCY_LEASE
from contexts.order.application.ports import Claim, OrderFilter, OrderKey
from contexts.order.domain import exceptions as order_exceptions
from contexts.order.domain import model as order_model
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
from contexts.user.application import ports as user_ports
from contexts.user.application.ports import UserFilter
from contexts.user.domain import exceptions as user_exceptions
from contexts.user.domain import model as user_model

K = TypeVar("K")
V = TypeVar("V")
A = TypeVar("A")


class CommitFailed(Exception):
    """What a test's ``before_commit`` hook raises to make a commit fail."""


def _detached(aggregate: A) -> A:
    """A copy without pending events: what a repository stores, and what a load returns."""
    return dataclasses.replace(aggregate, events=[])  # type: ignore[type-var]


class Table(Generic[K, V]):
    """The committed rows of one kind, by key."""

    def __init__(self) -> None:
        self.rows: dict[K, V] = {}


class Staged(Generic[K, V]):
    """One transaction's view of a table: its own changes over the committed rows."""

    def __init__(self, table: Table[K, V], *, writable: bool) -> None:
        self._table = table
        self._writable = writable
        self._changes: dict[K, V | None] = {}  # None marks a deleted row

    def get(self, key: K) -> V | None:
        if key in self._changes:
            return self._changes[key]
        return self._table.rows.get(key)

    def values(self) -> list[V]:
        merged: dict[K, V | None] = {**self._table.rows, **self._changes}
        return [value for value in merged.values() if value is not None]

    def put(self, key: K, value: V) -> None:
        self._check_writable()
        self._changes[key] = value

    def delete(self, key: K) -> None:
        self._check_writable()
        self._changes[key] = None

    def apply(self) -> None:
        for key, value in self._changes.items():
            if value is None:
                self._table.rows.pop(key, None)
            else:
                self._table.rows[key] = value
        self._changes.clear()

    def discard(self) -> None:
        self._changes.clear()

    def _check_writable(self) -> None:
        if not self._writable:
            raise AssertionError("a read-only unit of work (write=False) was asked to write")


class RecordingPublisher:
    """Remembers what was published; ``listeners`` run at publish time (to check what is visible then)."""

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.listeners: list[Callable[[Sequence[Any]], None]] = []

    def publish(self, events: Sequence[Any]) -> None:
        self.published.extend(events)
        for listener in self.listeners:
            listener(events)

    def of_type(self, event_type: type[A]) -> list[A]:
        return [event for event in self.published if isinstance(event, event_type)]


class _Store:
    def __init__(self) -> None:
        self.publisher = RecordingPublisher()
        self.before_commit: Callable[[Any], None] | None = None
        # Runs once a commit has stored its changes: raising there is an answer lost after the commit.
        self.after_commit: Callable[[Any], None] | None = None
        # Runs as each unit of work begins: raising there is a database that cannot be reached.
        self.on_begin: Callable[[Any], None] | None = None
        self.commits = 0


class _FakeUnitOfWork:
    def __init__(self, store: _Store, *, write: bool) -> None:
        self._base_store = store
        self.write = write
        self.seen: list[Any] = []
        self._staged: list[Staged[Any, Any]] = []
        self._active = False

    def __enter__(self) -> Self:
        if self._active:
            raise AssertionError("a unit of work was entered twice")
        if self._base_store.on_begin is not None:
            self._base_store.on_begin(self)
        self.seen = []
        self._staged = []
        self._active = True
        self._open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for staged in self._staged:
            staged.discard()
        self._active = False

    def _open(self) -> None:
        raise NotImplementedError

    def _stage(self, table: Table[K, V]) -> Staged[K, V]:
        staged = Staged(table, writable=self.write)
        self._staged.append(staged)
        return staged

    def commit(self) -> None:
        if not self._active:
            raise AssertionError("commit outside the unit of work's with-block")
        if not self.write:
            raise AssertionError("a read-only unit of work (write=False) was committed")
        if self._base_store.before_commit is not None:
            self._base_store.before_commit(self)
        for staged in self._staged:
            staged.apply()
        self._base_store.commits += 1
        events = [event for aggregate in self.seen for event in aggregate.events]
        for aggregate in self.seen:
            aggregate.events.clear()
        self._base_store.publisher.publish(events)
        if self._base_store.after_commit is not None:
            self._base_store.after_commit(self)


# --- user ------------------------------------------------------------------------------------


class FakeUserRepository:
    def __init__(self, users: Staged[uuid.UUID, user_model.User], seen: list[Any]) -> None:
        self._users = users
        self._seen = seen

    def add(self, user: user_model.User) -> None:
        if any(other.email_key == user.email_key for other in self._users.values()):
            raise user_exceptions.EmailAlreadyRegistered(user.email)
        self._users.put(user.id, _detached(user))
        self._seen.append(user)

    def save(self, user: user_model.User) -> None:
        if self._users.get(user.id) is None:
            raise KeyError(user.id)
        self._users.put(user.id, _detached(user))
        self._seen.append(user)

    def get(self, user_id: uuid.UUID) -> user_model.User | None:
        user = self._users.get(user_id)
        return _detached(user) if user else None

    def get_by_email(self, email: str) -> user_model.User | None:
        key = user_model.email_key(email)
        for user in self._users.values():
            if user.email_key == key:
                return _detached(user)
        return None

    def list_matching(self, where: UserFilter, *, limit: int, after: str | None) -> list[user_model.User]:
        found = sorted(
            (
                user
                for user in self._users.values()
                if (where.role is None or user.role is where.role)
                and (where.key_prefix is None or user.email_key.startswith(where.key_prefix))
                and (after is None or user.email_key > after)
            ),
            key=lambda user: user.email_key,
        )
        return [_detached(user) for user in found[:limit]]


class FakeUserUnitOfWork(_FakeUnitOfWork):
    users: user_ports.UserRepository

    def __init__(self, store: UserStore, *, write: bool) -> None:
        super().__init__(store, write=write)
        self._store = store

    def _open(self) -> None:
        self.users = FakeUserRepository(self._stage(self._store.users), self.seen)


class UserStore(_Store):
    """The user context's storage and its unit-of-work factory."""

    def __init__(self) -> None:
        super().__init__()
        self.users: Table[uuid.UUID, user_model.User] = Table()

    def __call__(self, *, write: bool = True) -> FakeUserUnitOfWork:
        return FakeUserUnitOfWork(self, write=write)


# --- product ---------------------------------------------------------------------------------


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
        self._products.put(product.id, _detached(product))
        self._seen.append(product)

    def save(self, product: product_model.Product) -> None:
        if self._products.get(product.id) is None:
            raise KeyError(product.id)
        self._products.put(product.id, _detached(product))
        self._seen.append(product)

    def get(self, product_id: uuid.UUID) -> product_model.Product | None:
        product = self._products.get(product_id)
        return _detached(product) if product else None

    def get_many(self, product_ids: Collection[uuid.UUID]) -> list[product_model.Product]:
        return [_detached(product) for product_id in product_ids if (product := self._products.get(product_id))]

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
        return [_detached(product) for product in found[:limit]]


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
        self._reservations.put(reservation.id, _detached(reservation))
        self._seen.append(reservation)

    def get(self, reservation_id: uuid.UUID, *, for_update: bool = False) -> product_model.Reservation | None:
        reservation = self._reservations.get(reservation_id)
        return _detached(reservation) if reservation else None

    def save(self, reservation: product_model.Reservation) -> None:
        if self._reservations.get(reservation.id) is None:
            raise KeyError(reservation.id)
        self._reservations.put(reservation.id, _detached(reservation))
        self._seen.append(reservation)

    def confirm_if_reserved(self, reservation_id: uuid.UUID) -> bool:
        reservation = self._reservations.get(reservation_id)
        if reservation is None or reservation.status is not product_model.ReservationStatus.RESERVED:
            return False
        confirmed = dataclasses.replace(reservation, status=product_model.ReservationStatus.CONFIRMED, events=[])
        self._reservations.put(reservation_id, confirmed)
        return True


class FakeProductUnitOfWork(_FakeUnitOfWork):
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


class ProductStore(_Store):
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

    def __call__(self, *, write: bool = True) -> FakeProductUnitOfWork:
        return FakeProductUnitOfWork(self, write=write)

    def level(self, product_id: uuid.UUID) -> StockLevel:
        return self.stock.rows[product_id]

    def catalogue(self) -> FakeCatalogue:
        return FakeCatalogue(self)


# --- order -----------------------------------------------------------------------------------

IN_FLIGHT = "in_flight"
COMPLETED = "completed"


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    fingerprint: str
    state: str
    locked_until: datetime
    answer: order_model.Order | None = None


class FakeOrderRepository:
    def __init__(self, orders: Staged[uuid.UUID, order_model.Order], seen: list[Any]) -> None:
        self._orders = orders
        self._seen = seen

    def add(self, order: order_model.Order) -> None:
        if self._orders.get(order.id) is not None:
            raise KeyError(f"order {order.id} exists")
        self._orders.put(order.id, _detached(order))
        self._seen.append(order)

    def save(self, order: order_model.Order) -> None:
        if self._orders.get(order.id) is None:
            raise KeyError(order.id)
        self._orders.put(order.id, _detached(order))
        self._seen.append(order)

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> order_model.Order | None:
        order = self._orders.get(order_id)
        return _detached(order) if order else None

    def list_for_user(self, user_id: uuid.UUID, *, limit: int, before: OrderKey | None) -> list[order_model.Order]:
        def key(order: order_model.Order) -> tuple[datetime, uuid.UUID]:
            return (order.created_at, order.id)

        mine = [order for order in self._orders.values() if order.user_id == user_id]
        if before is not None:
            mine = [order for order in mine if key(order) < (before.created_at, before.order_id)]
        return [_detached(order) for order in sorted(mine, key=key, reverse=True)[:limit]]

    def list_matching(self, where: OrderFilter, *, limit: int, before: OrderKey | None) -> list[order_model.Order]:
        def matches(order: order_model.Order) -> bool:
            return (
                (where.status is None or order.status is where.status)
                and (where.user_id is None or order.user_id == where.user_id)
                and (where.placed_from is None or order.created_at >= where.placed_from)
                and (where.placed_to is None or order.created_at < where.placed_to)
                and (before is None or (order.created_at, order.id) < (before.created_at, before.order_id))
            )

        found = sorted(filter(matches, self._orders.values()), key=lambda o: (o.created_at, o.id), reverse=True)
        return [_detached(order) for order in found[:limit]]


class FakeIdempotencyStore:
    def __init__(self, keys: Staged[tuple[uuid.UUID, str], KeyRecord]) -> None:
        self._keys = keys

    def claim(self, *, user_id: uuid.UUID, key: str, fingerprint: str, now: datetime) -> Claim:
        record = self._keys.get((user_id, key))
        if record is None:
            self._keys.put((user_id, key), KeyRecord(fingerprint, IN_FLIGHT, now + IDEMPOTENCY_LEASE))
            return Claim()
        if record.fingerprint != fingerprint:
            raise order_exceptions.IdempotencyKeyReused()
        if record.state == COMPLETED and record.answer is not None:
            return Claim(replay=_detached(record.answer))
        if record.locked_until > now:
            raise order_exceptions.IdempotencyKeyInFlight()
        self._keys.put((user_id, key), dataclasses.replace(record, locked_until=now + IDEMPOTENCY_LEASE))
        return Claim()

    def complete(self, *, user_id: uuid.UUID, key: str, order: order_model.Order) -> None:
        record = self._keys.get((user_id, key))
        if record is None:
            raise KeyError((user_id, key))
        self._keys.put((user_id, key), dataclasses.replace(record, state=COMPLETED, answer=_detached(order)))

    def forget(self, *, user_id: uuid.UUID, key: str) -> None:
        record = self._keys.get((user_id, key))
        if record is not None and record.state == IN_FLIGHT:
            self._keys.delete((user_id, key))


class FakeOrderUnitOfWork(_FakeUnitOfWork):
    orders: order_ports.OrderRepository
    idempotency: order_ports.IdempotencyStore

    def __init__(self, store: OrderStore, *, write: bool) -> None:
        super().__init__(store, write=write)
        self._store = store

    def _open(self) -> None:
        self.orders = FakeOrderRepository(self._stage(self._store.orders), self.seen)
        self.idempotency = FakeIdempotencyStore(self._stage(self._store.keys))

    def add_and_commit(self, order: order_model.Order) -> None:
        self.orders.add(order)
        self.commit()


class OrderStore(_Store):
    """The order context's storage and its unit-of-work factory."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: Table[uuid.UUID, order_model.Order] = Table()
        self.keys: Table[tuple[uuid.UUID, str], KeyRecord] = Table()

    def __call__(self, *, write: bool = True) -> FakeOrderUnitOfWork:
        return FakeOrderUnitOfWork(self, write=write)


def fail_commits_that_place_orders(uow: Any) -> None:
    """A ``before_commit`` hook: the commit that would save a newly placed order fails."""
    if any(isinstance(event, order_events.OrderPlaced) for aggregate in uow.seen for event in aggregate.events):
        raise CommitFailed("the order database went away")


# --- the product context as the order context sees it ----------------------------------------


@dataclasses.dataclass
class _FakeReservation:
    lines: Mapping[uuid.UUID, int]
    released: bool = False


class FakeProductApi:
    """An in-memory :class:`~contexts.product.api.ProductApi` that records every call."""

    def __init__(self) -> None:
        self.products: dict[uuid.UUID, ProductDTO] = {}
        self.reservations: dict[uuid.UUID, _FakeReservation] = {}
        self.reserve_calls: list[tuple[uuid.UUID, tuple[ReservationLine, ...]]] = []
        self.lookups: list[list[uuid.UUID]] = []
        self.release_calls: list[tuple[uuid.UUID, str]] = []

    def add(
        self,
        *,
        sku: str | None = None,
        name: str = "Thing",
        price: str = "10.00",
        currency: str = "USD",
        stock: int = 10,
    ) -> ProductDTO:
        product = ProductDTO(
            id=uuid.uuid4(),
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
    _user_factory: user_ports.UnitOfWorkFactory = UserStore()
    _product_factory: product_ports.UnitOfWorkFactory = ProductStore()
    _order_factory: order_ports.UnitOfWorkFactory = OrderStore()
    _product_api: ProductApi = FakeProductApi()
