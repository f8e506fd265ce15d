"""Which subscriber listens to which event: the event side of the context map, in one place."""

from __future__ import annotations

from app.containers import ApplicationContainer
from contexts.order.events import OrderPlaced


def subscribe_all(container: ApplicationContainer) -> None:
    bus = container.event_bus()
    bus.subscribe(
        OrderPlaced,
        container.product.when_order_placed_confirm_reservation,
        name="product.when_order_placed_confirm_reservation",
    )
