"""How the product context reacts to other contexts' facts."""

from __future__ import annotations

from contexts.order.events import OrderPlaced
from contexts.product.application.handlers import ConfirmReservationHandler


def when_order_placed_confirm_reservation(
    event: OrderPlaced, *, confirm: ConfirmReservationHandler
) -> None:
    confirm(event.order_id)
