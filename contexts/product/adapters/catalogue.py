"""The catalogue as callers read it: products with their stock, in one statement each.

The read side of the product context (cosmicpython's ``views``): no aggregate is loaded and no
unit of work is opened, because nothing here changes. Product and stock live in the same
context's database, so one join gives a consistent answer without a transaction around it.
The statements are built once; each call only binds its parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, select

from contexts.product.adapters.orm import ProductRow, StockRow
from contexts.product.api import ProductDTO
from infrastructure.db.database import Database

_COLUMNS = (
    ProductRow.id,
    ProductRow.sku,
    ProductRow.name,
    ProductRow.description,
    ProductRow.price,
    ProductRow.currency,
    StockRow.available,
)
_WITH_STOCK = select(*_COLUMNS).join(StockRow, StockRow.product_id == ProductRow.id)
_ONE = _WITH_STOCK.where(ProductRow.id == bindparam("product_id"))
_MANY = _WITH_STOCK.where(ProductRow.id.in_(bindparam("product_ids", expanding=True)))


class SqlAlchemyCatalogue:
    def __init__(self, database: Database) -> None:
        self._database = database

    def product(self, product_id: uuid.UUID) -> ProductDTO | None:
        with self._database.reading() as connection:
            row = connection.execute(_ONE, {"product_id": product_id}).one_or_none()
        return _dto(row) if row is not None else None

    def products(self, product_ids: Collection[uuid.UUID]) -> list[ProductDTO]:
        if not product_ids:
            return []
        with self._database.reading() as connection:
            rows = connection.execute(_MANY, {"product_ids": list(product_ids)}).all()
        return [_dto(row) for row in rows]


def _dto(row: Any) -> ProductDTO:
    product_id, sku, name, description, price, currency, stock = row
    return ProductDTO(
        id=product_id, sku=sku, name=name, description=description, price=price, currency=currency, stock=stock
    )
