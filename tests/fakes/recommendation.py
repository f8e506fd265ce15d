"""The recommendation context's ports in memory, and the product API as it sees it."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Self

from contexts.recommendation.application import ports
from contexts.recommendation.domain import model
from contexts.recommendation.domain.model import (
    Basket,
    History,
)
from infrastructure.events.delivery import Delivery


@dataclass
class Counts:
    """Everything the context stores, as plain dictionaries."""

    profiles: dict[uuid.UUID, datetime] = field(default_factory=dict)
    purchases: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]] = field(default_factory=dict)
    popularity: Counter[uuid.UUID] = field(default_factory=Counter)
    pairs: Counter[model.Pair] = field(default_factory=Counter)
    # each order's basket while counted; None once cancelled
    orders: dict[uuid.UUID, Basket | None] = field(default_factory=dict)

    def copy(self) -> Counts:
        return Counts(
            dict(self.profiles), dict(self.purchases), Counter(self.popularity), Counter(self.pairs), dict(self.orders)
        )


class FakeProfiles:
    def __init__(self, counts: Counts, *, writable: bool) -> None:
        self._counts = counts
        self._writable = writable

    def create(self, user_id: uuid.UUID, *, now: datetime) -> None:
        assert self._writable, "write in a read-only unit of work"
        self._counts.profiles.setdefault(user_id, now)

    def record(self, order_id: uuid.UUID, user_id: uuid.UUID, basket: Basket) -> None:
        assert self._writable, "write in a read-only unit of work"
        if order_id in self._counts.orders:
            return
        self._counts.orders[order_id] = basket
        self._count(user_id, basket, 1)

    def cancel(self, order_id: uuid.UUID, user_id: uuid.UUID) -> None:
        assert self._writable, "write in a read-only unit of work"
        basket = self._counts.orders.get(order_id)
        self._counts.orders[order_id] = None
        if basket is not None:
            self._count(user_id, basket, -1)

    def _count(self, user_id: uuid.UUID, basket: Basket, sign: int) -> None:
        for product_id, units in basket.units.items():
            had_units, had_orders = self._counts.purchases.get((user_id, product_id), (0, 0))
            self._counts.purchases[(user_id, product_id)] = (had_units + sign * units, had_orders + sign)
            if not self._counts.purchases[(user_id, product_id)][1]:
                del self._counts.purchases[(user_id, product_id)]
            self._counts.popularity[product_id] += sign
        for pair in basket.pairs:
            self._counts.pairs[pair] += sign
        self._counts.popularity = +self._counts.popularity
        self._counts.pairs = +self._counts.pairs

    def history(self, user_id: uuid.UUID, *, top: int) -> History:
        bought = frozenset(product for user, product in self._counts.purchases if user == user_id)
        together = {pair: n for pair, n in self._counts.pairs.items() if pair[0] in bought and pair[1] not in bought}
        partners = {other for _, other in together}
        ranked = sorted(
            (product for product in self._counts.popularity if product not in bought),
            key=lambda product: (-self._counts.popularity[product], product),
        )
        kept = set(ranked[:top]) | partners
        return History(
            bought=bought,
            together=together,
            popularity={product: n for product, n in self._counts.popularity.items() if product in kept},
        )


class FakeUnitOfWork:
    profiles: ports.ProfileRepository

    def __init__(self, store: FakeStore, *, write: bool) -> None:
        self._store = store
        self._write = write

    def __enter__(self) -> Self:
        self._draft = self._store.committed.copy()
        self.profiles = FakeProfiles(self._draft, writable=self._write)
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self._draft

    def commit(self) -> None:
        assert self._write, "commit of a read-only unit of work"
        self._store.committed = self._draft
        self._store.commits += 1


class FakeStore:
    """The unit-of-work factory: changes are seen by others only after a commit."""

    def __init__(self) -> None:
        self.committed = Counts()
        self.commits = 0

    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> FakeUnitOfWork:
        """``delivery`` is not recorded: these fakes have no inbox (the real one is tested on the database)."""
        return FakeUnitOfWork(self, write=write)
