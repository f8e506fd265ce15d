"""What the product context's use cases need from the outside world.

Stock changes are single atomic operations of the store ("take 3 if at least 3 are there"),
never a read followed by a write in Python, so concurrent orders cannot oversell.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Protocol, Self

from contexts.product.api import ProductDTO
from contexts.product.domain import model
from infrastructure.events.delivery import Delivery


class ProductRepository(Protocol):
    def add(self, product: model.Product) -> None:
        """Raises ``SkuAlreadyExists``."""

    def save(self, product: model.Product) -> None: ...

    def get(self, product_id: uuid.UUID) -> model.Product | None: ...

    def get_many(self, product_ids: Collection[uuid.UUID]) -> list[model.Product]: ...

    def list(self, *, limit: int, after_sku: str | None, query: str | None) -> list[model.Product]:
        """Products in sku order, after ``after_sku``, whose name or sku contains ``query``."""
        ...


class StockRepository(Protocol):
    def create(self, product_id: uuid.UUID, quantity: int) -> None: ...

    def available(self, product_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]: ...

    def take(self, product_id: uuid.UUID, quantity: int) -> bool:
        """Move ``quantity`` from available to reserved if that many are available."""
        ...

    def give_back(self, product_id: uuid.UUID, quantity: int) -> None:
        """Move ``quantity`` from reserved back to available."""

    def adjust(self, product_id: uuid.UUID, delta: int, reason: str | None) -> bool:
        """Add ``delta`` to available and record why; False (nothing changed) if available would go
        negative, or a positive ``delta`` would take available and reserved together over
        ``model.MAX_STOCK`` (a level already over it may still go down)."""
        ...


class Catalogue(Protocol):
    """The read side: products as callers see them, stock included, straight from storage."""

    def product(self, product_id: uuid.UUID) -> ProductDTO | None: ...

    def products(self, product_ids: Collection[uuid.UUID]) -> list[ProductDTO]:
        """Those of ``product_ids`` that exist, in no particular order."""
        ...


class ReservationExists(Exception):
    """Another transaction stored a reservation with this id first."""


class ReservationRepository(Protocol):
    def add(self, reservation: model.Reservation) -> None:
        """Raises :class:`ReservationExists`. Its lines' stock is taken first, so their products
        exist (a product is never deleted)."""

    def get(self, reservation_id: uuid.UUID, *, for_update: bool = False) -> model.Reservation | None: ...

    def save(self, reservation: model.Reservation) -> None: ...

    def confirm_if_reserved(self, reservation_id: uuid.UUID) -> bool:
        """Mark the reservation confirmed if it is still only reserved, as
        :meth:`model.Reservation.confirm` would (no event, no stock moved); whether it was."""

    def unconfirmed_before(self, moment: datetime, limit: int) -> list[uuid.UUID]:
        """Ids of reservations still only reserved that were made before ``moment``, oldest first."""


class ProductUnitOfWork(Protocol):
    products: ProductRepository
    stock: StockRepository
    reservations: ReservationRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def commit(self) -> None: ...

    def reserve_and_commit(self, reservation: model.Reservation) -> bool | None:
        """Take the stock of ``reservation``'s line and store it with its events, committed, in
        one atomic step of the store where it has one (a reservation of one line); whether it
        took the stock (False: it was not there, nothing done, the unit of work still open).
        None, nothing done: no such step here, for the caller to take the stock and add the
        reservation in steps. Raises :class:`ReservationExists` (nothing done) when a twin
        stored a reservation with this id first. The first thing done in a unit of work."""

    def confirm_reserved_and_commit(self, reservation_id: uuid.UUID) -> bool:
        """If the reservation is still only reserved, confirm it (as
        :meth:`ReservationRepository.confirm_if_reserved`) and commit; whether it was. False:
        nothing done, the unit of work still open. The first thing done in a unit of work."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> ProductUnitOfWork:
        """A unit of work; made for ``delivery``, its commit records it in the context's inbox."""
        ...
