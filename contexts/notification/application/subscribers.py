"""How the notification context reacts to other contexts' facts: it writes to the customer.

Learning who a user is and welcoming them are two subscribers, so that a welcome the mail
server keeps refusing (until its delivery is given up) never leaves the user unknown here:
their order confirmations only need the recipient.

Each subscriber that mails checks, reads, sends, then records in ONE write unit of work (which
also puts the delivery into the inbox). The mail goes out before that transaction opens,
because an SMTP conversation may take seconds and must not hold a database writer.

Delivery is therefore *at least once*, not exactly once: if the process dies after the mailer
accepted a message and before the record commits, the event is delivered again and the same
message (same Message-ID, derived from the event id) is sent again. The file mailer then
overwrites the same file, so there is still one email; over SMTP the customer may receive two
copies, which their mail software can recognise as one by the Message-ID. Every other
redelivery finds the event handled and sends nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone

from contexts.notification.application.ports import Mailer, UnitOfWorkFactory
from contexts.notification.domain import messages, model
from contexts.order.events import CANCELLED_BY_CUSTOMER, OrderCancelled, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery


class RecipientUnknown(Exception):
    """An order names a user whose ``UserRegistered`` has not reached this context yet.

    Events of different publishers may arrive in any order; raising makes the dispatcher
    try again later instead of dropping the confirmation.
    """

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"no recipient known for user {user_id} yet")
        self.user_id = user_id


def when_user_registered_remember_recipient(
    event: UserRegistered, delivery: Delivery, *, uow: UnitOfWorkFactory
) -> None:
    """Remember the new user's name and address: their orders' confirmations go there.

    It sends nothing, so it needs no check of its own: a redelivery's commit is refused by the
    inbox and changes nothing."""
    with uow(delivery=delivery) as writing:
        writing.recipients.save(_recipient(event))
        writing.commit()


def when_user_registered_send_welcome(
    event: UserRegistered, delivery: Delivery, *, uow: UnitOfWorkFactory, mailer: Mailer
) -> None:
    """Welcome the new user. The event names them, so the welcome stores nothing but its record."""
    with uow(write=False, delivery=delivery) as reading:
        if reading.already_handled():
            return
    answering = delivery.event_id
    mail = messages.welcome(answering, _recipient(event))
    mailer.send(mail)
    with uow(delivery=delivery) as writing:
        writing.sent.add(model.SentMail.of(mail, event_id=answering, kind=model.MailKind.WELCOME, sent_at=_now()))
        writing.commit()


def when_order_placed_send_confirmation(
    event: OrderPlaced, delivery: Delivery, *, uow: UnitOfWorkFactory, mailer: Mailer
) -> None:
    """Confirm the order to its buyer, listing what they ordered; raises :class:`RecipientUnknown`."""
    _mail_the_buyer(
        delivery,
        event.user_id,
        lambda answering, recipient: messages.order_confirmation(answering, recipient, _placed_order(event)),
        model.MailKind.ORDER_CONFIRMATION,
        uow=uow,
        mailer=mailer,
    )


def when_order_cancelled_send_notice(
    event: OrderCancelled, delivery: Delivery, *, uow: UnitOfWorkFactory, mailer: Mailer
) -> None:
    """Tell the buyer their order is cancelled; raises :class:`RecipientUnknown`.

    The event carries only the buyer's id, as ``OrderPlaced`` does: the address comes from the
    recipient this context remembered from ``UserRegistered``, like the confirmation's."""
    cancelled = model.CancelledOrder(order_id=event.order_id, by_buyer=event.reason == CANCELLED_BY_CUSTOMER)
    _mail_the_buyer(
        delivery,
        event.user_id,
        lambda answering, recipient: messages.order_cancellation(answering, recipient, cancelled),
        model.MailKind.ORDER_CANCELLATION,
        uow=uow,
        mailer=mailer,
    )


def _mail_the_buyer(
    delivery: Delivery,
    user_id: uuid.UUID,
    compose: Callable[[uuid.UUID, model.Recipient], model.Mail],
    kind: model.MailKind,
    *,
    uow: UnitOfWorkFactory,
    mailer: Mailer,
) -> None:
    """Check, read, send, record: the mail answering the delivered event goes to ``user_id`` once
    (see the module's docstring for the one crash that can send it twice)."""
    with uow(write=False, delivery=delivery) as reading:
        answered, recipient = reading.recipient_unless_handled(user_id)
    if answered:
        return
    if recipient is None:
        raise RecipientUnknown(user_id)
    mail = compose(delivery.event_id, recipient)
    mailer.send(mail)
    with uow(delivery=delivery) as writing:
        writing.sent.add(model.SentMail.of(mail, event_id=delivery.event_id, kind=kind, sent_at=_now()))
        writing.commit()


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


def _now() -> datetime:
    return datetime.now(timezone.utc)
