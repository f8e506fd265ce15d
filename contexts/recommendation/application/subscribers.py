"""How the recommendation context reacts to other contexts' facts.

Each reaction makes its whole change in one write unit of work: its commit also records the
delivery in this context's inbox, so a redelivered event is refused there and changes nothing.

A cancelled order is subtracted again: counted, a customer placing and cancelling orders
could make any product "popular" for everyone. ``order.OrderCancelled`` carries no lines, so
the counts keep each order's basket to subtract.
"""

from __future__ import annotations

from datetime import datetime, timezone

from contexts.order.events import OrderCancelled, OrderPlaced
from contexts.recommendation.application.ports import UnitOfWorkFactory
from contexts.recommendation.domain import model
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery


def _now() -> datetime:
    return datetime.now(timezone.utc)


def when_user_registered_create_profile(event: UserRegistered, delivery: Delivery, *, uow: UnitOfWorkFactory) -> None:
    """Start the new customer's profile (already there if one of their orders came first)."""
    with uow(delivery=delivery) as work:
        work.profiles.create(event.user_id, now=_now())
        work.commit()


def when_order_placed_record_purchase(event: OrderPlaced, delivery: Delivery, *, uow: UnitOfWorkFactory) -> None:
    """Count the order: the buyer's purchases, each product's popularity, products bought together.

    Events from different publishers are not ordered, so the buyer's ``UserRegistered`` may
    not have arrived yet. The profile is then created here instead of failing: profiles are
    derived data that only this context keeps, nothing in the event can be wrong about the
    buyer (the order context accepted the order from an authenticated user), and waiting for
    the registration would only delay counts that do not depend on it. The late
    ``UserRegistered`` then finds the profile and changes nothing.
    """
    basket = model.Basket.of((line.product_id, line.quantity) for line in event.lines)
    with uow(delivery=delivery) as work:
        work.profiles.create(event.user_id, now=_now())
        work.profiles.record(event.order_id, event.user_id, basket)
        work.commit()


def when_order_cancelled_subtract_purchase(
    event: OrderCancelled, delivery: Delivery, *, uow: UnitOfWorkFactory
) -> None:
    """Take the order out of the counts: what was cancelled was not bought."""
    with uow(delivery=delivery) as work:
        work.profiles.cancel(event.order_id, event.user_id)
        work.commit()
