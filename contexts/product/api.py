"""Published interface of the product context: what other contexts may call. Standard library only.

Every call is safe to repeat: reservations are identified by a caller-chosen id.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class ProductDTO:
    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    currency: str
    stock: int


@dataclass(frozen=True)
class ReservationLine:
    product_id: uuid.UUID
    quantity: int


class ProductNotFound(Exception):
    def __init__(self, product_ids: Collection[uuid.UUID]) -> None:
        self.product_ids = tuple(sorted(product_ids))
        names = ", ".join(str(product_id) for product_id in self.product_ids)
        super().__init__(f"no product with id {names}")


class InsufficientStock(Exception):
    def __init__(self, product_id: uuid.UUID, sku: str, requested: int) -> None:
        super().__init__(f"not enough stock of product {sku} ({product_id}) for {requested} unit(s)")
        self.product_id = product_id
        self.sku = sku
        self.requested = requested


class ReservationConflict(Exception):
    """The reservation id is already used for other lines, or was released."""


class CurrenciesDiffer(Exception):
    """A priced reservation's products are priced in more than one currency: nothing reserved."""

    def __init__(self, currencies: Collection[str]) -> None:
        self.currencies = tuple(sorted(set(currencies)))
        super().__init__(f"the products are priced in more than one currency: {', '.join(self.currencies)}")


class ProductApi(Protocol):
    def get_products(self, product_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, ProductDTO]:
        """The products that exist among ``product_ids``; unknown ids are simply absent."""
        ...

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        """Hold stock for every line or for none.

        Raises :class:`InsufficientStock`, :class:`ProductNotFound`, :class:`ReservationConflict`.
        Repeating a successful call with the same id and lines changes nothing.
        """
        ...

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        """:meth:`reserve`, then the products of ``lines`` as :meth:`get_products` gives them:
        what placing an order needs, in one call where the product context is served elsewhere
        (one round trip instead of two).

        The products must share one currency (what an order's lines need): otherwise
        :class:`CurrenciesDiffer`, before any stock is looked at, nothing reserved and no event
        recorded. Raises as :meth:`reserve` does too, and then holds nothing. Any other error (a
        timeout, an answer lacking a reserved product) may come after the stock was reserved:
        the caller must then :meth:`release` ``reservation_id``. Repeating a successful call with the same
        id and lines reserves nothing more and answers the products again.
        """
        ...

    def release(self, reservation_id: uuid.UUID, reason: str) -> None:
        """Make the reservation's stock available again; repeating it, or an unknown id, changes nothing."""
        ...
