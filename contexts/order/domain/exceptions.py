"""Why an order operation was refused."""

from __future__ import annotations

import uuid
from collections.abc import Collection


class InvalidOrder(ValueError):
    """The order as asked for breaks a rule of what an order may be (a 400, not a conflict)."""


class MixedCurrencies(InvalidOrder):
    def __init__(self, currencies: Collection[str]) -> None:
        super().__init__(f"all lines must share one currency; got {', '.join(sorted(currencies))}")


class UnknownProducts(InvalidOrder):
    def __init__(self, product_ids: Collection[uuid.UUID]) -> None:
        self.product_ids = frozenset(product_ids)
        super().__init__(f"no product with id {', '.join(sorted(map(str, self.product_ids)))}")


class IdempotencyKeyReused(Exception):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request body")


class IdempotencyKeyInFlight(Exception):
    def __init__(self) -> None:
        super().__init__("a request with this Idempotency-Key is still being processed; retry shortly")
