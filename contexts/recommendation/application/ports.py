"""What the recommendation context's use cases need from the outside world.

Counts are only ever added to or subtracted from, by the store in one statement per row ("add
one to this pair"), never read in Python and written back, so concurrent deliveries cannot lose
updates.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol, Self

from contexts.recommendation.domain import model
from infrastructure.events.delivery import Delivery


class ProfileRepository(Protocol):
    def create(self, user_id: uuid.UUID, *, now: datetime) -> None:
        """Start the user's profile; nothing happens if it exists already."""

    def record(self, order_id: uuid.UUID, user_id: uuid.UUID, basket: model.Basket) -> None:
        """Add one order to the counts: the user's purchases, each product's popularity
        (orders containing it) and each pair of products bought together; and remember its
        basket. Nothing happens if the order is known already (cancelled before it arrived)."""

    def cancel(self, order_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Subtract a counted order's basket from the counts again, once; an order not counted
        yet is remembered as cancelled, so that :meth:`record` then leaves it out."""

    def history(self, user_id: uuid.UUID, *, top: int) -> model.History:
        """What :func:`~contexts.recommendation.domain.model.recommend` needs to rank the first
        ``top`` products for ``user_id``: what they bought; the ``top`` best candidates bought
        together with those (score, then popularity, then product id), with every pair leading
        to them from what the user bought and their popularity; and the ``top`` most popular
        products (orders count first, then product id) they did not buy. It may hold more pairs
        and products than those; ``recommend`` with ``skip`` of at most ``top`` minus the
        places to fill then ranks exactly as with the whole history."""
        ...


class RecommendationUnitOfWork(Protocol):
    profiles: ProfileRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> RecommendationUnitOfWork:
        """A unit of work; made for ``delivery``, its commit records it in the context's inbox."""
        ...
