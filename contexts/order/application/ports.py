"""What the order context's use cases need from the outside world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self

from contexts.order.domain import model


@dataclass(frozen=True)
class OrderKey:
    """Where a page of orders, newest first, left off."""

    created_at: datetime
    order_id: uuid.UUID


@dataclass(frozen=True)
class OrderFilter:
    """Which orders an administrator lists: each given criterion must hold; placed in [from, to)."""

    status: model.OrderStatus | None = None
    user_id: uuid.UUID | None = None
    placed_from: datetime | None = None
    placed_to: datetime | None = None


class OrderRepository(Protocol):
    def add(self, order: model.Order) -> None: ...

    def save(self, order: model.Order) -> None: ...

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> model.Order | None: ...

    def list_for_user(self, user_id: uuid.UUID, *, limit: int, before: OrderKey | None) -> list[model.Order]:
        """The user's orders, newest first, older than ``before``."""
        ...

    def list_matching(self, where: OrderFilter, *, limit: int, before: OrderKey | None) -> list[model.Order]:
        """Every customer's orders that match ``where``, newest first, older than ``before``."""
        ...


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an idempotency key: go ahead, or replay what was done."""

    replay: model.Order | None = None


class IdempotencyStore(Protocol):
    def claim(self, *, user_id: uuid.UUID, key: str, fingerprint: str, now: datetime) -> Claim:
        """Start a request under ``key``; raises ``IdempotencyKeyReused`` / ``IdempotencyKeyInFlight``."""
        ...

    def complete(self, *, user_id: uuid.UUID, key: str, order: model.Order) -> None:
        """Remember the placed order as the key's answer (in the order's own transaction)."""

    def forget(self, *, user_id: uuid.UUID, key: str) -> None:
        """Drop a claim whose request failed, so the key can be used again."""


class OrderUnitOfWork(Protocol):
    orders: OrderRepository
    idempotency: IdempotencyStore

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def commit(self) -> None: ...

    def add_and_commit(self, order: model.Order) -> None:
        """``orders.add(order)`` and ``commit()``, as one step of the store where it can (the
        first thing done in a unit of work)."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> OrderUnitOfWork: ...
