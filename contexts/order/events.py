"""Facts the order context publishes. Standard library only; fields are a contract (API.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True)
class OrderedLine:
    product_id: uuid.UUID
    quantity: int
    unit_price: Decimal
    # Added in v1 (fields may be added freely): what the product was called when ordered.
    sku: str
    name: str


@dataclass(frozen=True)
class OrderPlaced:
    TYPE: ClassVar[str] = "order.OrderPlaced"
    VERSION: ClassVar[int] = 1

    order_id: uuid.UUID
    user_id: uuid.UUID
    lines: tuple[OrderedLine, ...]
    total: Decimal
    currency: str


# The reasons ``OrderCancelled`` carries: the buyer cancelled, or an administrator did.
CANCELLED_BY_CUSTOMER = "cancelled_by_customer"
CANCELLED_BY_ADMIN = "cancelled_by_admin"


@dataclass(frozen=True)
class OrderCancelled:
    TYPE: ClassVar[str] = "order.OrderCancelled"
    VERSION: ClassVar[int] = 1

    order_id: uuid.UUID
    user_id: uuid.UUID
    reason: str
