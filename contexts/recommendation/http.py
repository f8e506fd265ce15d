"""HTTP endpoint of the recommendation context: the caller's recommendations as JSON."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from dependency_injector.wiring import Provide, inject
from flask import Blueprint
from pydantic import BaseModel, Field

from contexts.recommendation.application import handlers
from contexts.recommendation.domain import model
from infrastructure.auth.bearer import current_principal
from infrastructure.http.openapi import Access, endpoint
from infrastructure.http.schemas import Money, ResponseModel

bp = Blueprint("recommendation", __name__)


class RecommendationOut(ResponseModel):
    product_id: uuid.UUID
    sku: str
    name: str
    price: Money = Field(description="the product's price now")
    currency: str
    score: int = Field(
        ge=0,
        description=(
            "in how many orders this product was bought together with the products the caller bought, "
            "summed over those products; 0 when it is recommended for its popularity alone"
        ),
    )
    reason: Literal["bought_together", "popular"] = Field(
        description="bought_together: scored by co-purchases; popular: fills up the list by popularity"
    )


class RecommendationListOut(BaseModel):
    items: list[RecommendationOut] = Field(
        max_length=model.MAX_RECOMMENDATIONS, description="best first; never a product the caller bought"
    )


def _item(item: handlers.RecommendedProduct) -> dict[str, Any]:
    return RecommendationOut.model_validate(item).model_dump(mode="json")


@bp.get("/users/me/recommendations")
@endpoint(
    summary="Recommend products to the caller",
    tag="recommendations",
    access=Access.CUSTOMER,
    responses={200: RecommendationListOut},
    description=(
        f"At most {model.MAX_RECOMMENDATIONS} products the caller has not bought. First those most often "
        "bought together with what the caller bought (the same order counts as together), ties broken by "
        "popularity then product id; then the most popular products, to fill up the list. Built from events, "
        "so an order shows here a moment after it is placed. Cancelled orders still count."
    ),
)
@inject
def get_recommendations(
    recommend: handlers.RecommendHandler = Provide["recommendation.recommend"],
) -> dict[str, Any]:
    return {"items": [_item(item) for item in recommend(handlers.Recommend(current_principal().user_id))]}
