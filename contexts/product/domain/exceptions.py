"""Why a catalog or inventory operation was refused."""

from __future__ import annotations

import uuid


class SkuAlreadyExists(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with sku {sku!r} already exists")


class StockWouldGoNegative(Exception):
    def __init__(self, product_id: uuid.UUID, delta: int) -> None:
        super().__init__(f"adjusting the stock of product {product_id} by {delta} would make it negative")


class StockWouldExceedMaximum(Exception):
    def __init__(self, product_id: uuid.UUID, delta: int, maximum: int) -> None:
        super().__init__(
            f"adjusting the stock of product {product_id} by {delta} would take it over the maximum of {maximum:,}"
        )


class InvalidInitialStock(ValueError):
    def __init__(self, initial_stock: int, maximum: int) -> None:
        super().__init__(f"the initial stock must be between 0 and {maximum:,}; {initial_stock:,} is not")


class InvalidPrice(ValueError):
    """Prices are non-negative amounts with at most two decimal places."""


class UnknownCurrency(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"{code!r} is not an ISO 4217 currency code")


class ReservationLapsed(Exception):
    """An order was placed for a reservation that had expired, and its stock is gone now."""

    def __init__(self, reservation_id: uuid.UUID) -> None:
        super().__init__(
            f"reservation {reservation_id} expired before its order was confirmed and its stock was sold meanwhile"
        )
