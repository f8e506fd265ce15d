"""The in-process implementation of the published :class:`~contexts.product.api.ProductApi`."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence

from contexts.product import events
from contexts.product.api import ProductDTO, ReservationLine
from contexts.product.application import handlers


class ProductFacade:
    def __init__(
        self,
        *,
        get_products: handlers.GetProductsHandler,
        reserve: handlers.ReserveStockHandler,
        release: handlers.ReleaseStockHandler,
    ) -> None:
        self._get_products = get_products
        self._reserve = reserve
        self._release = release

    def get_products(self, product_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, ProductDTO]:
        return self._get_products(product_ids)

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        self._reserve(reservation_id, [events.StockLine(line.product_id, line.quantity) for line in lines])

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        self._reserve(
            reservation_id, [events.StockLine(line.product_id, line.quantity) for line in lines], one_currency=True
        )
        return self._get_products([line.product_id for line in lines])

    def release(self, reservation_id: uuid.UUID, reason: str) -> None:
        self._release(reservation_id, reason)
