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
        return self._get_products(handlers.GetProducts(product_ids))

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        self._reserve(handlers.ReserveStock(reservation_id, _stock_lines(lines)))

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        self._reserve(handlers.ReserveStock(reservation_id, _stock_lines(lines), one_currency=True))
        return self._get_products(handlers.GetProducts([line.product_id for line in lines]))

    def release(self, reservation_id: uuid.UUID, reason: str) -> None:
        self._release(handlers.ReleaseStock(reservation_id, reason))


def _stock_lines(lines: Sequence[ReservationLine]) -> list[events.StockLine]:
    return [events.StockLine(line.product_id, line.quantity) for line in lines]
