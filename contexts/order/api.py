"""Published interface of the order context: what other contexts may call. Standard library only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class OrderLineDTO:
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


@dataclass(frozen=True)
class OrderDTO:
    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    items: tuple[OrderLineDTO, ...]
    total: Decimal
    currency: str
    created_at: datetime


class OrderNotFound(Exception):
    def __init__(self, order_id: uuid.UUID | str) -> None:
        super().__init__(f"no order with id {order_id}")
        self.order_id = order_id


class OrderApi(Protocol):
    def get_order(self, order_id: uuid.UUID) -> OrderDTO:
        """The order with this id; raises :class:`OrderNotFound`."""
        ...
