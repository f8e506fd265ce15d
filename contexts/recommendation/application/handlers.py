"""The recommendation context's read use case: the products to suggest to a customer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from contexts.product.api import ProductApi, ProductDTO
from contexts.recommendation.application.ports import UnitOfWorkFactory
from contexts.recommendation.domain import model


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
