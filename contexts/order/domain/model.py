"""Orders, as plain Python: lines with prices as they were when ordered, a status, its events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from contexts.order import events
from contexts.order.domain import exceptions

MAX_LINES = 50
MAX_QUANTITY = 1000


class OrderStatus(str, Enum):
    PLACED = "placed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Item:
    """What the customer asked for: a product and how many."""

    product_id: uuid.UUID
    quantity: int


def merge_items(items: Iterable[Item]) -> list[Item]:
    """A product listed twice becomes one line, in the order products first appear."""
    totals: dict[uuid.UUID, int] = {}
    for item in items:
        if item.quantity < 1:
            raise exceptions.InvalidOrder(f"the quantity of product {item.product_id} must be positive")
        totals[item.product_id] = totals.get(item.product_id, 0) + item.quantity
    merged = [Item(product_id, quantity) for product_id, quantity in totals.items()]
    if not 1 <= len(merged) <= MAX_LINES:
        raise exceptions.InvalidOrder(f"an order has 1 to {MAX_LINES} lines")
    for item in merged:
        if not 1 <= item.quantity <= MAX_QUANTITY:
            raise exceptions.InvalidOrder(
                f"the quantity of product {item.product_id} must be 1 to {MAX_QUANTITY} in all"
            )
    return merged


@dataclass(frozen=True)
class OrderLine:
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: Decimal
    currency: str
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass
class Order:
    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    lines: tuple[OrderLine, ...]
    currency: str
    created_at: datetime
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def place(
        cls, *, order_id: uuid.UUID, user_id: uuid.UUID, lines: Sequence[OrderLine], now: datetime
    ) -> Order:
        currencies = {line.currency for line in lines}
        if len(currencies) != 1:
            raise exceptions.MixedCurrencies(currencies)
        order = cls(
            id=order_id,
            user_id=user_id,
            status=OrderStatus.PLACED,
            lines=tuple(lines),
            currency=currencies.pop(),
            created_at=now,
        )
        order.events.append(
            events.OrderPlaced(
                order_id=order.id,
                user_id=user_id,
                lines=tuple(
                    events.OrderedLine(line.product_id, line.quantity, line.unit_price, line.sku, line.name)
                    for line in lines
                ),
                total=order.total,
                currency=order.currency,
            )
        )
        return order

    @property
    def total(self) -> Decimal:
        return sum((line.line_total for line in self.lines), Decimal("0.00"))

    def is_visible_to(self, user_id: uuid.UUID, *, is_admin: bool) -> bool:
        return is_admin or self.user_id == user_id

    def cancel(self, reason: str) -> bool:
        """Cancel once; False if it already was."""
        if self.status is OrderStatus.CANCELLED:
            return False
        self.status = OrderStatus.CANCELLED
        self.events.append(events.OrderCancelled(order_id=self.id, user_id=self.user_id, reason=reason))
        return True
