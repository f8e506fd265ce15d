"""Facts the product context publishes. Standard library only; fields are a contract (API.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True)
class StockLine:
    product_id: uuid.UUID
    quantity: int


@dataclass(frozen=True)
class ProductCreated:
    TYPE: ClassVar[str] = "product.ProductCreated"
    VERSION: ClassVar[int] = 1

    product_id: uuid.UUID
    sku: str
    name: str
    price: Decimal
    currency: str


@dataclass(frozen=True)
class StockReserved:
    TYPE: ClassVar[str] = "product.StockReserved"
    VERSION: ClassVar[int] = 1

    reservation_id: uuid.UUID
    lines: tuple[StockLine, ...]


@dataclass(frozen=True)
class StockReleased:
    TYPE: ClassVar[str] = "product.StockReleased"
    VERSION: ClassVar[int] = 1

    reservation_id: uuid.UUID
    lines: tuple[StockLine, ...]
    reason: str
