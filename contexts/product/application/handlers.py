"""The product context's use cases, one verb each."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from contexts.product import events
from contexts.product.api import CurrenciesDiffer, InsufficientStock, ProductDTO, ProductNotFound, ReservationConflict
from contexts.product.application.ports import (
    Catalogue,
    ProductUnitOfWork,
    ReservationExists,
    UnitOfWorkFactory,
)
from contexts.product.domain import exceptions, model
from infrastructure.events.delivery import Delivery


@dataclass(frozen=True)
class CreateProduct:
    sku: str
    name: str
    description: str | None
    price: Decimal
    currency: str
    initial_stock: int


@dataclass(frozen=True)
class ReviseProduct:
    product_id: uuid.UUID
    name: str | model.Keep = model.KEEP
    description: str | model.Keep | None = model.KEEP
    price: Decimal | model.Keep = model.KEEP


@dataclass(frozen=True)
class AdjustStock:
    product_id: uuid.UUID
    delta: int
    reason: str | None


@dataclass(frozen=True)
class ListProducts:
    limit: int
    after_sku: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class GetProduct:
    product_id: uuid.UUID


@dataclass(frozen=True)
class GetProducts:
    product_ids: Collection[uuid.UUID]


@dataclass(frozen=True)
class ReserveStock:
    """Hold ``lines`` under ``reservation_id``, all or none. ``one_currency``: refuse
    (:class:`CurrenciesDiffer`) products priced in several currencies inside the reservation's
    transaction, before the stock, so that such a refusal, like any other, holds nothing and
    records no event."""

    reservation_id: uuid.UUID
    lines: Sequence[events.StockLine]
    one_currency: bool = False


@dataclass(frozen=True)
class ReleaseStock:
    reservation_id: uuid.UUID
    reason: str


@dataclass(frozen=True)
class ConfirmReservation:
    reservation_id: uuid.UUID


@dataclass(frozen=True)
class ExpireReservations:
    """Every reservation left unconfirmed past the time-to-live (the handler's ``ttl``)."""


@dataclass(frozen=True)
class ProductPage:
    items: list[ProductDTO]
    last_sku: str | None
    has_more: bool


def product_dto(product: model.Product, stock: int) -> ProductDTO:
    """A product as the published interface shows it; the in-memory catalogue of the tests
    builds its answers with this too, so the two cannot drift apart."""
    return ProductDTO(
        id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        price=product.price,
        currency=product.currency,
        stock=stock,
    )


def _dtos(uow: ProductUnitOfWork, products: Sequence[model.Product]) -> list[ProductDTO]:
    stock = uow.stock.available([product.id for product in products])
    return [product_dto(product, stock[product.id]) for product in products]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CreateProductHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: CreateProduct) -> ProductDTO:
        # The HTTP schema refuses it too; here for every other caller (the CLI, other contexts).
        if not 0 <= command.initial_stock <= model.MAX_STOCK:
            raise exceptions.InvalidInitialStock(command.initial_stock, model.MAX_STOCK)
        product = model.Product.create(
            sku=command.sku,
            name=command.name,
            description=command.description,
            price=command.price,
            currency=command.currency,
            now=_now(),
        )
        with self._uow() as uow:
            uow.products.add(product)
            uow.stock.create(product.id, command.initial_stock)
            uow.commit()
        return product_dto(product, command.initial_stock)


class ReviseProductHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: ReviseProduct) -> ProductDTO:
        with self._uow() as uow:
            product = uow.products.get(command.product_id)
            if product is None:
                raise ProductNotFound([command.product_id])
            product.revise(name=command.name, description=command.description, price=command.price)
            uow.products.save(product)
            (dto,) = _dtos(uow, [product])
            uow.commit()
        return dto


class AdjustStockHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: AdjustStock) -> ProductDTO:
        with self._uow() as uow:
            product = uow.products.get(command.product_id)
            if product is None:
                raise ProductNotFound([command.product_id])
            if not uow.stock.adjust(command.product_id, command.delta, command.reason):
                # One bound per direction: only adding meets the maximum, only taking away meets zero.
                if command.delta > 0:
                    raise exceptions.StockWouldExceedMaximum(command.product_id, command.delta, model.MAX_STOCK)
                raise exceptions.StockWouldGoNegative(command.product_id, command.delta)
            (dto,) = _dtos(uow, [product])
            uow.commit()
        return dto


class GetProductHandler:
    def __init__(self, *, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    def __call__(self, query: GetProduct) -> ProductDTO:
        product = self._catalogue.product(query.product_id)
        if product is None:
            raise ProductNotFound([query.product_id])
        return product


class GetProductsHandler:
    def __init__(self, *, catalogue: Catalogue) -> None:
        self._catalogue = catalogue

    def __call__(self, query: GetProducts) -> dict[uuid.UUID, ProductDTO]:
        return {product.id: product for product in self._catalogue.products(set(query.product_ids))}


class ListProductsHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: ListProducts) -> ProductPage:
        with self._uow(write=False) as uow:
            products = uow.products.list(limit=query.limit + 1, after_sku=query.after_sku, query=query.query)
            page = products[: query.limit]
            return ProductPage(
                items=_dtos(uow, page),
                last_sku=page[-1].sku if page else None,
                has_more=len(products) > query.limit,
            )


class ReserveStockHandler:
    """All lines or none, idempotent by reservation id."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: ReserveStock) -> None:
        """A call with an id already used (a twin: the same call again, or a concurrent one) is
        judged against what that one stored, whatever the stock now: a repeat of a held
        reservation changes nothing, other lines or a released one are a conflict. A concurrent
        twin for other lines that finds their stock gone before the first one is stored gets the
        refusal instead (nothing is held either way)."""
        reservation_id, wanted = command.reservation_id, model.merge_lines(command.lines)
        try:
            refusal = self._reserve(model.Reservation.place(reservation_id, wanted, _now()), command.one_currency)
        except ReservationExists:
            # A concurrent call with the same id won; judge this one against what it stored.
            refusal = None
        else:
            if refusal is None:
                return
        # Nothing was reserved: a twin is judged against what it stored (the stock a held one
        # took is no longer there to take); anything else gets its refusal.
        with self._uow(write=False) as uow:
            existing = uow.reservations.get(reservation_id)
        if existing is None and refusal is not None:
            raise refusal
        self._check_repeat(existing, wanted)

    def _reserve(self, reservation: model.Reservation, one_currency: bool) -> Exception | None:
        """Take each line's stock, then store the reservation; the refusal, when nothing could be
        reserved (nothing written then), else None. Every statement on the way is a write that
        must happen anyway, and the lookups that explain a refusal run only then.

        Stock rows first (in product-id order, :func:`model.merge_lines`), the reservation's key
        last: the order in which the store's one-step reservation locks them too, so that
        neither way deadlocks the other. A twin of a reservation in progress waits on the stock
        it takes, then meets the key (:class:`ReservationExists`) or finds no stock left."""
        wanted = reservation.lines
        with self._uow() as uow:
            # A one-line reservation in one step of the store where it has one (its stock
            # taken first too); when that step found no stock, only why is left to say.
            reserved = uow.reserve_and_commit(reservation)
            if reserved is not None:
                return None if reserved else self._not_taken(uow, wanted, wanted[0])
            if one_currency and len(wanted) > 1:
                products = uow.products.get_many([line.product_id for line in wanted])
                if unknown := self._missing(wanted, products):
                    return ProductNotFound(unknown)
                currencies = {product.currency for product in products}
                if len(currencies) > 1:
                    return CurrenciesDiffer(currencies)
            for line in wanted:
                if not uow.stock.take(line.product_id, line.quantity):
                    return self._not_taken(uow, wanted, line)
            uow.reservations.add(reservation)
            uow.commit()
        return None

    def _not_taken(
        self, uow: ProductUnitOfWork, wanted: tuple[events.StockLine, ...], line: events.StockLine
    ) -> Exception:
        """Why ``line``'s stock could not be taken: an unknown product among ``wanted`` (it has
        no stock to take), or too little of it."""
        products = uow.products.get_many([each.product_id for each in wanted])
        if unknown := self._missing(wanted, products):
            return ProductNotFound(unknown)
        (product,) = (product for product in products if product.id == line.product_id)
        return InsufficientStock(line.product_id, product.sku, line.quantity)

    @staticmethod
    def _missing(wanted: tuple[events.StockLine, ...], found: Sequence[model.Product]) -> set[uuid.UUID]:
        """The products of ``wanted`` not among those the store ``found``."""
        return {line.product_id for line in wanted} - {product.id for product in found}

    @staticmethod
    def _check_repeat(existing: model.Reservation | None, wanted: tuple[events.StockLine, ...]) -> None:
        if existing is None or existing.lines != wanted:
            raise ReservationConflict("this reservation id is already used for other lines")
        if not existing.holds_stock:
            raise ReservationConflict("this reservation was already released")


class ReleaseStockHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: ReleaseStock, *, delivery: Delivery | None = None) -> None:
        """``delivery``: the event delivery this release is the effect of, recorded with it."""
        with self._uow(delivery=delivery) as uow:
            reservation = uow.reservations.get(command.reservation_id, for_update=True)
            if reservation is None:
                return
            before = reservation.status
            if reservation.release(command.reason):
                for line in reservation.lines:
                    uow.stock.give_back(line.product_id, line.quantity)
            elif reservation.status is before:
                return
            uow.reservations.save(reservation)
            uow.commit()


class ConfirmReservationHandler:
    """The order was placed: the reservation is a sale now, not a hold that may lapse.

    If the sweep expired it first (the confirmation was delayed past the time-to-live), its
    stock is taken again; when that stock is gone, :class:`ReservationLapsed` makes the
    delivery fail, retry, and end up a dead letter an operator sees, rather than an oversell.
    """

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: ConfirmReservation, *, delivery: Delivery | None = None) -> None:
        """``delivery``: the event delivery this confirmation is the effect of, recorded with it."""
        reservation_id = command.reservation_id
        with self._uow(delivery=delivery) as uow:
            # Every placed order's reservation is still reserved but when the sweep was first:
            # that common case in one statement, the others read whole.
            if uow.confirm_reserved_and_commit(reservation_id):
                return
            reservation = uow.reservations.get(reservation_id, for_update=True)
            if reservation is None:
                return
            if reservation.status is model.ReservationStatus.EXPIRED:
                for line in reservation.lines:
                    if not uow.stock.take(line.product_id, line.quantity):
                        raise exceptions.ReservationLapsed(reservation_id)
            reservation.confirm()
            uow.reservations.save(reservation)
            uow.commit()


class ExpireReservationsHandler:
    """Release holds that no placed order confirmed within the time-to-live: what a crash
    between reserving stock and saving the order would otherwise strand for ever."""

    BATCH = 100

    def __init__(self, *, uow: UnitOfWorkFactory, ttl: timedelta) -> None:
        self._uow = uow
        self._ttl = ttl

    def __call__(self, _command: ExpireReservations) -> int:
        """Expire every overdue reservation, a batch at a time; returns how many were."""
        cutoff = _now() - self._ttl
        expired = 0
        while True:
            with self._uow(write=False) as uow:
                candidates = uow.reservations.unconfirmed_before(cutoff, self.BATCH)
            expired += sum(self._expire(reservation_id) for reservation_id in candidates)
            if len(candidates) < self.BATCH:
                return expired

    def _expire(self, reservation_id: uuid.UUID) -> bool:
        with self._uow() as uow:
            reservation = uow.reservations.get(reservation_id, for_update=True)
            if reservation is None or not reservation.expire():
                return False
            for line in reservation.lines:
                uow.stock.give_back(line.product_id, line.quantity)
            uow.reservations.save(reservation)
            uow.commit()
        return True
