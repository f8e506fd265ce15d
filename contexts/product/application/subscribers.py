"""How the product context reacts to other contexts' facts: each event translated into a
command, run for the delivery (which the command's unit of work records in the inbox)."""

from __future__ import annotations

from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.product.application.handlers import (
    ConfirmReservation,
    ConfirmReservationHandler,
    ReleaseStock,
    ReleaseStockHandler,
)
from infrastructure.events.delivery import Delivery


def when_order_placed_confirm_reservation(
    event: OrderPlaced, delivery: Delivery, *, confirm: ConfirmReservationHandler
) -> None:
    confirm(ConfirmReservation(event.order_id), delivery=delivery)


def when_order_cancelled_release_stock(
    event: OrderCancelled, delivery: Delivery, *, release: ReleaseStockHandler
) -> None:
    """The order context releases a cancelled order's stock at once, when it can reach this
    context; this makes sure of it when it could not (a no-op otherwise: release is idempotent,
    and a confirmation arriving later leaves a released reservation released)."""
    release(ReleaseStock(event.order_id, "order_cancelled"), delivery=delivery)
