"""The recommendation context's use cases: keeping the counts it ranks by (a customer's
profile, their purchases, a cancelled order taken out again), and the products to suggest to a
customer.

Each change is one write unit of work: made for the delivery of the event it follows from, its
commit also records the delivery in this context's inbox, so a redelivered event is refused
there and changes nothing.

A cancelled order is subtracted again: counted, a customer placing and cancelling orders
could make any product "popular" for everyone. ``order.OrderCancelled`` carries no lines, so
the counts keep each order's basket to subtract.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from contexts.product.api import ProductApi, ProductDTO
from contexts.recommendation.application.ports import UnitOfWorkFactory
from contexts.recommendation.domain import model
from infrastructure.events.delivery import Delivery


@dataclass(frozen=True)
class CreateProfile:
    user_id: uuid.UUID


@dataclass(frozen=True)
class RecordPurchase:
    order_id: uuid.UUID
    user_id: uuid.UUID
    basket: model.Basket


@dataclass(frozen=True)
class SubtractPurchase:
    order_id: uuid.UUID
    user_id: uuid.UUID


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CreateProfileHandler:
    """Start a customer's profile (already there if one of their orders came first)."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: CreateProfile, *, delivery: Delivery | None = None) -> None:
        with self._uow(delivery=delivery) as work:
            work.profiles.create(command.user_id, now=_now())
            work.commit()


class RecordPurchaseHandler:
    """Count an order: the buyer's purchases, each product's popularity, products bought together.

    Events from different publishers are not ordered, so the buyer's ``UserRegistered`` may
    not have arrived yet. The profile is then created here instead of failing: profiles are
    derived data that only this context keeps, nothing in the event can be wrong about the
    buyer (the order context accepted the order from an authenticated user), and waiting for
    the registration would only delay counts that do not depend on it. The late
    ``UserRegistered`` then finds the profile and changes nothing.
    """

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: RecordPurchase, *, delivery: Delivery | None = None) -> None:
        with self._uow(delivery=delivery) as work:
            work.profiles.create(command.user_id, now=_now())
            work.profiles.record(command.order_id, command.user_id, command.basket)
            work.commit()


class SubtractPurchaseHandler:
    """Take an order out of the counts: what was cancelled was not bought."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: SubtractPurchase, *, delivery: Delivery | None = None) -> None:
        with self._uow(delivery=delivery) as work:
            work.profiles.cancel(command.order_id, command.user_id)
            work.commit()


@dataclass(frozen=True)
class RecommendedProduct:
    """A recommendation with what the catalog says about the product now."""

    product_id: uuid.UUID
    sku: str
    name: str
    price: Decimal
    currency: str
    score: int
    reason: model.Reason


@dataclass(frozen=True)
class Recommend:
    """What to suggest to the customer ``user_id``."""

    user_id: uuid.UUID


def _recommended(pick: model.Recommendation, product: ProductDTO) -> RecommendedProduct:
    return RecommendedProduct(
        product_id=pick.product_id,
        sku=product.sku,
        name=product.name,
        price=product.price,
        currency=product.currency,
        score=pick.score,
        reason=pick.reason,
    )


class RecommendHandler:
    """Ranks from the counts, then describes the picks through the product context's API.

    A product the catalog no longer has is skipped and the ranking is run again without it,
    so the next candidates move up; each round drops at least one product, so this ends, and
    it takes one round unless the catalog lost products that were recommended.
    """

    def __init__(self, *, uow: UnitOfWorkFactory, products: ProductApi) -> None:
        self._uow = uow
        self._products = products

    def __call__(self, query: Recommend) -> list[RecommendedProduct]:
        gone: set[uuid.UUID] = set()
        while True:
            # The candidates of each kind the ranking may need: enough to fill every place even
            # if all places go to one kind and each skipped product is among them.
            with self._uow(write=False) as uow:
                history = uow.profiles.history(query.user_id, top=model.MAX_RECOMMENDATIONS + len(gone))
            picks = model.recommend(history, skip=gone)
            found = self._products.get_products([pick.product_id for pick in picks]) if picks else {}
            missing = {pick.product_id for pick in picks} - set(found)
            if not missing:
                return [_recommended(pick, found[pick.product_id]) for pick in picks]
            gone |= missing
