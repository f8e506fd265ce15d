"""How the notification context reacts to other contexts' facts: each event translated into
what to remember or whom to write to (``handlers``), for its delivery."""

from __future__ import annotations

from contexts.notification.application.handlers import (
    MailTheBuyerHandler,
    RememberRecipient,
    RememberRecipientHandler,
    SendCancellationNotice,
    SendOrderConfirmation,
    SendWelcome,
    SendWelcomeHandler,
)
from contexts.notification.domain import model
from contexts.order.events import CANCELLED_BY_CUSTOMER, OrderCancelled, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery


def when_user_registered_remember_recipient(
    event: UserRegistered, delivery: Delivery, *, remember: RememberRecipientHandler
) -> None:
    remember(RememberRecipient(_recipient(event)), delivery=delivery)


def when_user_registered_send_welcome(
    event: UserRegistered, delivery: Delivery, *, welcome: SendWelcomeHandler
) -> None:
    welcome(SendWelcome(_recipient(event)), delivery=delivery)


def when_order_placed_send_confirmation(
    event: OrderPlaced, delivery: Delivery, *, mail_the_buyer: MailTheBuyerHandler
) -> None:
    mail_the_buyer(SendOrderConfirmation(event.user_id, _placed_order(event)), delivery=delivery)


def when_order_cancelled_send_notice(
    event: OrderCancelled, delivery: Delivery, *, mail_the_buyer: MailTheBuyerHandler
) -> None:
    cancelled = model.CancelledOrder(order_id=event.order_id, by_buyer=event.reason == CANCELLED_BY_CUSTOMER)
    mail_the_buyer(SendCancellationNotice(event.user_id, cancelled), delivery=delivery)


def _recipient(event: UserRegistered) -> model.Recipient:
    return model.Recipient(user_id=event.user_id, email=event.email, name=event.name)


def _placed_order(event: OrderPlaced) -> model.PlacedOrder:
    return model.PlacedOrder(
        order_id=event.order_id,
        items=tuple(
            model.OrderedItem(name=line.name, sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
            for line in event.lines
        ),
        total=event.total,
        currency=event.currency,
    )
