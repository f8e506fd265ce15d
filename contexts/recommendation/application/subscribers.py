"""How the recommendation context reacts to other contexts' facts: each event translated into
the change of the counts it means, run for its delivery."""

from __future__ import annotations

from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.recommendation.application.handlers import (
    CreateProfile,
    CreateProfileHandler,
    RecordPurchase,
    RecordPurchaseHandler,
    SubtractPurchase,
    SubtractPurchaseHandler,
)
from contexts.recommendation.domain import model
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery


def when_user_registered_create_profile(
    event: UserRegistered, delivery: Delivery, *, create_profile: CreateProfileHandler
) -> None:
    create_profile(CreateProfile(event.user_id), delivery=delivery)


def when_order_placed_record_purchase(
    event: OrderPlaced, delivery: Delivery, *, record_purchase: RecordPurchaseHandler
) -> None:
    basket = model.Basket.of((line.product_id, line.quantity) for line in event.lines)
    record_purchase(RecordPurchase(event.order_id, event.user_id, basket), delivery=delivery)


def when_order_cancelled_subtract_purchase(
    event: OrderCancelled, delivery: Delivery, *, subtract_purchase: SubtractPurchaseHandler
) -> None:
    subtract_purchase(SubtractPurchase(event.order_id, event.user_id), delivery=delivery)
