"""Why a fact could not be turned into recommendation counts."""

from __future__ import annotations

import uuid


class InvalidBasket(ValueError):
    """An order line the counts cannot take: a quantity below one."""

    def __init__(self, product_id: uuid.UUID, quantity: int) -> None:
        super().__init__(f"the quantity of product {product_id} in an order must be positive, not {quantity}")
        self.product_id = product_id
        self.quantity = quantity
