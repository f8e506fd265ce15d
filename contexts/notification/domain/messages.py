"""The texts the shop sends. Each message's id follows from the event it answers, so a
redelivered event produces the very same message (same Message-ID), never a new one."""

from __future__ import annotations

import uuid
from decimal import Decimal

from contexts.notification.domain.model import CancelledOrder, Mail, MailKind, PlacedOrder, Recipient

SHOP_NAME = "modular-shop"
CENT = Decimal("0.01")


def message_id(event_id: uuid.UUID, kind: MailKind) -> str:
    return f"<{event_id}.{kind.value}@{SHOP_NAME}>"


def welcome(event_id: uuid.UUID, recipient: Recipient) -> Mail:
    text = (
        f"Hello {recipient.name},\n"
        "\n"
        f"welcome to {SHOP_NAME}! Your account for {recipient.email} is ready:\n"
        "log in with this address and the password you chose.\n"
        "\n"
        f"The {SHOP_NAME} team\n"
    )
    return Mail(
        message_id=message_id(event_id, MailKind.WELCOME),
        to_address=recipient.email,
        to_name=recipient.name,
        subject=f"Welcome to {SHOP_NAME}, {recipient.name}",
        text=text,
    )


def order_confirmation(event_id: uuid.UUID, recipient: Recipient, order: PlacedOrder) -> Mail:
    lines = [
        f"  {item.name} ({item.sku}): {item.quantity} × {_money(item.unit_price, order.currency)}"
        f" = {_money(item.line_total, order.currency)}"
        for item in order.items
    ]
    text = "\n".join(
        [
            f"Hello {recipient.name},",
            "",
            f"thank you for your order {order.order_id}. You ordered:",
            "",
            *lines,
            "",
            f"Total: {_money(order.total, order.currency)}",
            "",
            f"The {SHOP_NAME} team",
            "",
        ]
    )
    return Mail(
        message_id=message_id(event_id, MailKind.ORDER_CONFIRMATION),
        to_address=recipient.email,
        to_name=recipient.name,
        subject=f"Your {SHOP_NAME} order {order.order_id}",
        text=text,
    )


def order_cancellation(event_id: uuid.UUID, recipient: Recipient, order: CancelledOrder) -> Mail:
    who = "as you asked" if order.by_buyer else "by the shop"
    text = "\n".join(
        [
            f"Hello {recipient.name},",
            "",
            f"your order {order.order_id} has been cancelled {who}.",
            "Nothing of it will be sent to you, and its items are no longer held for you.",
            "",
            f"The {SHOP_NAME} team",
            "",
        ]
    )
    return Mail(
        message_id=message_id(event_id, MailKind.ORDER_CANCELLATION),
        to_address=recipient.email,
        to_name=recipient.name,
        subject=f"Your {SHOP_NAME} order {order.order_id} is cancelled",
        text=text,
    )


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(CENT)} {currency}"
