"""What to suggest to a customer next, decided from purchase counts alone (plain Python).

**Bought together.** Two different products *co-occur* when they appear in the same order.
Each order counts once per pair of distinct products in it, whatever the quantities, and in
both directions: an order of A and B adds one to pairs(A, B) and one to pairs(B, A). So
pairs(B, P) is the number of orders that contained both B and P.

**Score.** For customer U and a candidate product P,
``score(P) = sum of pairs(B, P) over every product B that U bought``.
Products U bought are never candidates.

**Ranking.** Candidates with a positive score come first, by score (highest first), ties
broken by popularity (the number of orders containing the product, highest first) and then by
product id (ascending UUID order, the same as the order of their canonical text), so the same
counts always give the same list. If fewer than :data:`MAX_RECOMMENDATIONS` candidates have a
positive score, the list is filled up with the most popular products U has not bought (same
popularity-then-id order), scored 0. A customer with no purchases therefore gets the most
popular products, and an empty list when nothing was ever ordered. At most
:data:`MAX_RECOMMENDATIONS` products are recommended.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from itertools import permutations

from contexts.recommendation.domain import exceptions

MAX_RECOMMENDATIONS = 10

Pair = tuple[uuid.UUID, uuid.UUID]


class Reason(str, Enum):
    BOUGHT_TOGETHER = "bought_together"
    POPULAR = "popular"


@dataclass(frozen=True)
class Basket:
    """What one order adds to the counts: the units of each distinct product in it."""

    units: Mapping[uuid.UUID, int]

    @classmethod
    def of(cls, lines: Iterable[tuple[uuid.UUID, int]]) -> Basket:
        """From ``(product id, quantity)`` lines; a product on several lines is one product."""
        units: dict[uuid.UUID, int] = {}
        for product_id, quantity in lines:
            if quantity < 1:
                raise exceptions.InvalidBasket(product_id, quantity)
            units[product_id] = units.get(product_id, 0) + quantity
        return cls(units=units)

    @property
    def products(self) -> list[uuid.UUID]:
        """The distinct products, in id order (the order rows are written in, so no deadlock)."""
        return sorted(self.units)

    @property
    def pairs(self) -> list[Pair]:
        """Every ordered pair of two different products of the order: each co-occurrence, both ways."""
        return sorted(permutations(self.units, 2))


@dataclass(frozen=True)
class History:
    """What the ranking reads: one customer's purchases and the shop's counts around them.

    ``together`` may hold any pairs and ``popularity`` any products: pairs whose first product
    the customer did not buy are ignored, and a product missing from ``popularity`` counts as
    never ordered.
    """

    bought: frozenset[uuid.UUID] = frozenset()
    together: Mapping[Pair, int] = field(default_factory=dict)
    popularity: Mapping[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    product_id: uuid.UUID
    score: int
    reason: Reason


def recommend(
    history: History, *, skip: Collection[uuid.UUID] = frozenset(), limit: int = MAX_RECOMMENDATIONS
) -> list[Recommendation]:
    """The products to suggest, best first, by the rules of this module's docstring.

    ``skip`` names products that must not be suggested for a reason the counts do not know
    (the catalog no longer has them); the next candidates move up in their place.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    excluded = history.bought | frozenset(skip)
    scores: Counter[uuid.UUID] = Counter()
    for (bought, candidate), count in history.together.items():
        if bought in history.bought and candidate not in excluded and count > 0:
            scores[candidate] += count

    def popularity(product_id: uuid.UUID) -> int:
        return history.popularity.get(product_id, 0)

    together = sorted(scores, key=lambda product_id: (-scores[product_id], -popularity(product_id), product_id))
    picks = [Recommendation(product_id, scores[product_id], Reason.BOUGHT_TOGETHER) for product_id in together[:limit]]
    chosen = {pick.product_id for pick in picks}
    popular = sorted(
        (
            product_id
            for product_id, orders in history.popularity.items()
            if orders > 0 and product_id not in excluded and product_id not in chosen
        ),
        key=lambda product_id: (-popularity(product_id), product_id),
    )
    picks.extend(Recommendation(product_id, 0, Reason.POPULAR) for product_id in popular[: limit - len(picks)])
    return picks
